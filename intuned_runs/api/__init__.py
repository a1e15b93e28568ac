"""The Run API client (docs/apply.md, Sending and Outcomes; docs/run-api.md).

client    one thread-safe `Client`: one connection pool, one retry loop, start and result
outcome   `Outcome`: what became of one run start
wording   what a failed request or the server said, in one line, for users
"""
