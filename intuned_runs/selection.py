"""Selectors (docs/plan.md): a case-sensitive glob on PROJECT/NAME (on NAME alone when it has no `/`),
or `label:KEY=VALUE`. Every selector must match at least one run or state entry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from intuned_runs.errors import UsageError


@dataclass(frozen=True)
class Selector:
    text: str

    def __post_init__(self) -> None:
        if self.text.startswith("label:") and "=" not in self.text:
            raise UsageError(f"selector {self.text!r}: expected label:KEY=VALUE")
        if not self.text:
            raise UsageError("empty selector")

    def matches(self, key: str, labels: Mapping[str, str] | None = None) -> bool:
        if self.text.startswith("label:"):
            name, _, value = self.text[len("label:") :].partition("=")
            return labels is not None and labels.get(name) == value
        if "/" in self.text:
            return fnmatchcase(key, self.text)
        return fnmatchcase(key.partition("/")[2], self.text)


def parse(texts: Iterable[str]) -> tuple[Selector, ...]:
    return tuple(Selector(t) for t in texts)


def any_match(selectors: tuple[Selector, ...], key: str, labels: Mapping[str, str] | None) -> bool:
    return any(s.matches(key, labels) for s in selectors)


def check_all_match(
    selectors: tuple[Selector, ...], candidates: Iterable[tuple[str, Mapping[str, str] | None]], flag: str
) -> None:
    """Raise UsageError naming every selector that matches nothing."""
    items = list(candidates)
    unmatched = [s.text for s in selectors if not any(s.matches(k, labels) for k, labels in items)]
    if unmatched:
        names = ", ".join(repr(u) for u in unmatched)
        raise UsageError(f"{flag} {names} matches no run or state entry: check the key (PROJECT/NAME) or label")


def pick(
    selectors: tuple[Selector, ...], candidates: Iterable[tuple[str, Mapping[str, str] | None]], flag: str
) -> list[str]:
    """The keys of `candidates` that any selector matches (every key when there are no selectors),
    after checking that each selector matches at least one (UsageError naming those that do not)."""
    items = list(candidates)
    check_all_match(selectors, items, flag)
    if not selectors:
        return [key for key, _ in items]
    return [key for key, labels in items if any_match(selectors, key, labels)]
