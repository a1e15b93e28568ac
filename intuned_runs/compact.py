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
_CONTAINERS = frozenset({dict, list})
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
        """`value` (a JSON value) with its strings and small maps shared with equal ones seen before.

        One call per map or list, none per scalar: this walk runs over every request of a 100,000-run plan."""
        cls = value.__class__
        if cls is str:
            return self.string(value)
        if cls is list:
            return [self.value(v) if v.__class__ in _CONTAINERS else self._scalar(v) for v in value]
        if cls is not dict:
            return value
        strings, shared = self._strings, self._shared
        out = {}
        key: list[tuple[Any, ...]] | None = [] if len(value) <= 8 else None
        for k, v in value.items():
            if k.__class__ is str and len(k) <= SHORT:
                k = strings.setdefault(k, k)
            cls = v.__class__
            if cls is str:
                if len(v) <= SHORT:
                    v = strings.setdefault(v, v)
            elif cls is dict or cls is list:
                v = self.value(v)
                cls = v.__class__
            out[k] = v
            if key is not None:
                # The class is part of the key: 1, 1.0 and True are equal in Python but not in JSON.
                if cls in _SCALARS:
                    key.append((k, cls, v))
                elif cls is dict and id(v) in shared:
                    key.append((k, cls, id(v)))
                else:
                    key = None
        if key is None:
            return out
        found = self._maps.get(tuple(key))
        if found is not None:
            return found
        if len(self._maps) < MAX_MAPS:
            self._maps[tuple(key)] = out
            shared.add(id(out))
        return out

    def _scalar(self, value: Any) -> Any:
        return self.string(value) if value.__class__ is str else value
