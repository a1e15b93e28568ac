"""The state: what was submitted, per run key, and where it is kept (docs/state.md).

model        State, Entry, Unknown: plain immutable data
format       the state file's encoder and decoder
journal      intent/outcome records and their pure replay
writer       the file journal's group-commit appender
lock         the file state's OS lock
store        the file backend
backend      the seam every backend implements, and `open_backend`
upgrade      recomputing stored fingerprints when the rules or the schema change
edits        the `state` commands' edits, as State → State functions
statuses     recording final run statuses (no serial change)
"""
