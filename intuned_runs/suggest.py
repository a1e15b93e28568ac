"""'Did you mean' suggestions for unknown names."""

from __future__ import annotations

from collections.abc import Iterable


def closest(name: str, known: Iterable[str]) -> str | None:
    import difflib  # only once a name is unknown: a valid repository never pays it (docs/performance.md)

    candidates = list(known)
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        hit = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        return lowered[hit[0]] if hit else None
    return matches[0]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    match = closest(name, known)
    return f"; did you mean '{match}'?" if match else ""
