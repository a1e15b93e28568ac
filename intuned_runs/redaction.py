"""Defence in depth (docs/secrets.md, Redaction): every output and file passes through a Redactor.

Secret values (and the API key) of 6+ characters are replaced by `***` wherever they appear: as written,
JSON-escaped (once, or twice for a body quoted inside a JSON message), percent-encoded, base64 (standard and
URL-safe, at any alignment, with or without padding) and hex (lower and upper case), and those encodings
applied to the JSON-escaped forms too, since a server that echoes a request body encodes the body's text.

All forms are compiled into one regular expression shaped as a trie (forms sharing a prefix share its
branch), so a line costs one scan whatever the number of forms, and the longest form at a position wins
(a value never leaves a visible tail of a longer form).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import os
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MIN_LENGTH = 6
MASK = "***"
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def unmaskable(value: str) -> bool:
    """Set, but shorter than MIN_LENGTH: the redactor leaves it alone (docs/secrets.md)."""
    return 0 < len(value) < MIN_LENGTH


def _texts(value: str) -> set[str]:
    """The value as text may carry it: as written, quoted with !r by a message (Jinja's "has no attribute
    '…'"), and JSON-escaped once or twice (a body quoted in a JSON error message), ASCII or not, `/` or
    `\\/`."""
    texts = {value, repr(value)[1:-1]}
    for _ in range(2):
        for text in list(texts):
            for ascii_only in (True, False):
                escaped = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
                texts |= {escaped, escaped.replace("/", "\\/")}
    return texts


def _base64_cores(raw: bytes) -> set[str]:
    """base64 of `raw` wherever it sits in a longer encoded string (e.g. `user:password` in a Basic auth
    header, or a whole echoed body): at each of the three byte offsets modulo 3, the characters whose 6
    bits all come from `raw`; plus the whole encoding, with and without padding (the core of offset 0
    stops before its last, partial character)."""
    whole = base64.b64encode(raw).decode("ascii")
    cores = {whole, whole.rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        cores.add(encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6])
    return cores | {core.replace("+", "-").replace("/", "_") for core in cores}


def forms(value: str) -> set[str]:
    """Every form of `value` that the redactor masks (docs/secrets.md, Redaction)."""
    found: set[str] = set()
    for text in _texts(value):
        # An environment value that is not UTF-8 holds surrogate escapes: its bytes are what could leak.
        raw = text.encode("utf-8", "surrogateescape")
        percent = {quote(raw, safe=""), quote_plus(raw), quote(raw)}
        found |= {text, *percent, *(_PERCENT.sub(lambda m: m[0].lower(), p) for p in percent)}
        found |= _base64_cores(raw)
        hexed = binascii.hexlify(raw).decode("ascii")
        found |= {hexed, hexed.upper()}
    return {f for f in found if len(f) >= MIN_LENGTH}


def _trie_pattern(words: list[str]) -> str:
    """One regex matching any of the sorted, distinct `words`, longest first at each position: a trie
    whose shared prefixes are written once. A branch point tries its children (distinct next characters)
    and then, if a word ends there, nothing more (`(?:…)?` is greedy). Built from runs of the sorted list
    rather than character by character: a 4 KB secret (a PEM key) has 80 forms of that length."""
    ends = bool(words) and words[0] == ""
    words = words[1:] if ends else words
    if not words:
        return ""
    branches = []
    for _, run in itertools.groupby(words, key=lambda word: word[0]):
        group = list(run)
        prefix = os.path.commonprefix(group)  # noqa: RUF071 - of characters, as meant: these are not paths
        branches.append(re.escape(prefix) + _trie_pattern([word[len(prefix) :] for word in group]))
    if len(branches) == 1 and not ends:
        return branches[0]
    body = "|".join(branches)
    return f"(?:{body})?" if ends else f"(?:{body})"


class Redactor:
    """Replace known secret values in text. Immutable; `with_values` returns a new one."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = frozenset(v for v in values if v and len(v) >= MIN_LENGTH)
        found: set[str] = set()
        for value in self.values:
            found |= forms(value)
        self._pattern = re.compile(_trie_pattern(sorted(found))) if found else None

    def with_values(self, values: Iterable[str]) -> Redactor:
        return Redactor(self.values | frozenset(values))

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


NO_REDACTION = Redactor()
