"""The apply engine (docs/apply.md).

signals   what the signal handlers tell the workers
workers   the worker pool: intents durable before sending, outcomes recorded after
guards    every check that refuses before anything is sent
session   one apply, start to end (also each batch of `watch --apply`)
"""
