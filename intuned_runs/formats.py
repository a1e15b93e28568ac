"""`format` keywords of the request schema (docs/validation.md, Formats): annotations, as JSON Schema
2020-12 defines them, so a value that fails its format is a warning, in validate and the emulator alike."""

from __future__ import annotations

import re
from typing import Any

# RFC 3986: a scheme, then only URI characters (no space, no empty string); `(secret:NAME)` placeholders
# stand for values that are not known while validating, so a string holding one is not judged.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {"uri": (_URI, "a URI")}


def format_problem(fmt: Any, value: Any) -> str | None:
    """The warning for a string that fails its `format` (docs/validation.md, Formats), else None."""
    known = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if known is None or not isinstance(value, str) or "(secret:" in value or known[0].fullmatch(value):
        return None
    return f"{value!r} is not {known[1]}; servers that check formats will reject it"
