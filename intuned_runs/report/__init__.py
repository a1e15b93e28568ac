"""Everything the user sees (docs/cli.md, Streams and colour): values in, text out.

output     Output: the streams, the redactor every line passes, prompts and the progress bar
problems   problems as text, JSON or GitHub annotations
runs       rendered runs as YAML or JSON
plan       plans as text, JSON or markdown; watch's plan lines
apply      outcome lines, the summary, apply's JSON
status     run results
state      state entries
"""
