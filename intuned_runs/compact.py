"""Compact in-memory JSON values, for repositories and states of 100,000 runs (docs/performance.md, Memory).

100,000 requests written alike repeat the same keys, the same short strings ("webhook", a URL, a header
name) and the same small maps (`retry`, `headers`), each as objects of its own: most of the memory of a
large plan. An `Interner` hands back equal values that share those objects. Shared maps are never changed:
no stage edits a request in place, each builds a new value (docs/architecture.md, Conventions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_SCALARS = frozenset({str, int, float, bool, type(None)})
SHORT = 200  # longer strings are rarely repeated: not worth a table entry
EMPTY: Mapping[str, Any] = {}  # one empty map for all (a run without a matrix); templates cannot change it


def to_json(value: Any) -> bytes:
    """`value` as compact JSON text: a sixth of the memory of the dicts, read back by `from_json`."""
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def from_json(text: bytes) -> Any:
    return json.loads(text)


MAX_MAPS = 2_000  # distinct small maps remembered: unique ones (a run's parameters) stop filling the table


class Interner:
    """One table of shared strings and small maps; `value` gives an equal value that uses them."""

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._maps: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._shared: set[int] = set()  # ids of the maps in `_maps` (alive as long as the table)
        self._sets: dict[frozenset[str], frozenset[str]] = {}

    def string(self, text: str) -> str:
        if len(text) > SHORT:
            return text
        return self._strings.setdefault(text, text)

    def names(self, names: frozenset[str]) -> frozenset[str]:
        return self._sets.setdefault(names, names)

    def value(self, value: Any) -> Any:
        """`value` (a JSON value) with its strings and small maps of scalars shared with equal ones seen before."""
        cls = value.__class__
        if cls is str:
            return self.string(value)
        if cls is dict:
            string = self.string
            item = self.value
            return self.mapping({string(k) if k.__class__ is str else k: item(v) for k, v in value.items()})
        if cls is list:
            return [self.value(v) for v in value]
        return value

    def mapping(self, value: dict[str, Any]) -> dict[str, Any]:
        """`value`, whose items are shared already, or an equal map seen before: maps of scalars and of such
        shared maps are shared."""
        if len(value) > 8:
            return value
        # The class is part of the key: 1, 1.0 and True are equal in Python but not in JSON.
        key = []
        for k, v in value.items():
            cls = v.__class__
            if cls in _SCALARS:
                key.append((k, cls, v))
            elif cls is dict and id(v) in self._shared:
                key.append((k, cls, id(v)))
            else:
                return value
        found = self._maps.get(tuple(key))
        if found is not None:
            return found
        if len(self._maps) < MAX_MAPS:
            self._maps[tuple(key)] = value
            self._shared.add(id(value))
        return value
