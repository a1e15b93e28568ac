"""Defence in depth (docs/secrets.md): every output and file passes through a Redactor.

Secret values (and the API key) of 6+ characters are replaced by `***` wherever they appear, also in
their JSON-escaped, percent-encoded and base64 forms.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MIN_LENGTH = 6
MASK = "***"


def _forms(value: str) -> set[str]:
    forms = {quote(value, safe=""), quote_plus(value), quote(value)}
    # The value as written, or quoted with !r by a message (Jinja's "has no attribute '…'"); each also
    # JSON-escaped, as the JSON reports (ensure_ascii=False) and JSON logs write it.
    for text in (value, repr(value)[1:-1]):
        forms |= {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    raw = value.encode("utf-8")
    # base64 of the value itself, and the stable part of its encoding wherever it sits in a longer
    # encoded string (e.g. `user:password` in a Basic auth header): the characters whose 6 bits all
    # come from the value, at each of the three byte offsets modulo 3.
    forms.add(base64.b64encode(raw).decode("ascii").rstrip("="))
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
        core = encoded[start:end]
        if len(core) >= MIN_LENGTH:
            forms.add(core)
    return {f for f in forms if len(f) >= MIN_LENGTH}


class Redactor:
    """Replace known secret values in text. Immutable; `with_values` returns a new one."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = frozenset(v for v in values if v and len(v) >= MIN_LENGTH)
        forms: set[str] = set()
        for value in self.values:
            forms |= _forms(value)
        # Longest first so a value never leaves a visible tail of a longer form.
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) if forms else None
        )

    def with_values(self, values: Iterable[str]) -> Redactor:
        return Redactor(self.values | frozenset(values))

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


NO_REDACTION = Redactor()
