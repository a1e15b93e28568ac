"""`--var KEY=VALUE` flags (docs/configuration.md, --var): VALUE is a YAML 1.2 scalar, KEY may be dotted."""

from __future__ import annotations

from typing import Any

from intuned_runs import documents
from intuned_runs.errors import ProblemsFound
from intuned_runs.problems import Problem, utf8_text

FLAG_VAR = "<flag --var>"


def parse_var(text: str) -> tuple[list[str], Any]:
    """`--var a.b=70` → (['a', 'b'], 70): the value is a YAML 1.2 scalar."""
    key, sep, raw = text.partition("=")

    def problem(path: str, message: str) -> ProblemsFound:  # addressed like any problem (docs/validation.md)
        return ProblemsFound([Problem(FLAG_VAR, None, None, "error", path, message)])

    if not sep or not key or any(not part for part in key.split(".")):
        raise problem("", f"expected KEY=VALUE, got {text!r}")
    if not utf8_text(text):
        raise problem(key, "not valid UTF-8: pass the value as UTF-8 text")
    try:
        value = documents.parse(raw, FLAG_VAR).value if raw.strip() else raw
    except documents.DocumentError as e:
        raise problem(key, e.message) from e
    if isinstance(value, (dict, list)):
        raise problem(key, "the value must be a scalar; quote it")
    return key.split("."), value
