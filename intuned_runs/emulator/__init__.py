"""A local emulator of the Intuned Run API (docs/emulator.md), to the side of the pipeline.

app      the API: routes, auth, body validation, runs and their results, fault injection
server   the API served over HTTP/1.1 on loopback
"""
