"""Selectors and the planned set (docs/plan.md, Selection).

A selector is a case-sensitive glob on PROJECT/NAME (on NAME alone when it has no `/`), `label:KEY=VALUE`
(exact) or `label:KEY!=VALUE` (the label is absent or differs). The planned set is the `--select` matches
(every run when there is neither `--select` nor `--run`) plus the `--run` matches, minus the `--exclude`
matches. Every selector must match at least one run or state entry; one that matches nothing is an error
suggesting the closest key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from msgspec import Struct

from intuned_runs.errors import UsageError
from intuned_runs.suggest import closest

Labels = Mapping[str, str] | None  # None: a state entry (it has no labels)
Candidate = tuple[str, Labels]


class Selector(Struct, frozen=True):
    text: str

    def __post_init__(self) -> None:
        if not self.text:
            raise UsageError("empty selector")
        if self.text.startswith("label:") and not self._label()[0]:
            raise UsageError(f"selector {self.text!r}: expected label:KEY=VALUE or label:KEY!=VALUE")

    def _label(self) -> tuple[str, bool, str]:
        """(KEY, negated, VALUE) of a label selector; KEY is empty when malformed."""
        body = self.text[len("label:") :]
        name, sep, value = body.partition("=")
        if not sep:
            return "", False, ""
        if name.endswith("!"):
            return name[:-1], True, value
        return name, False, value

    def matches(self, key: str, labels: Labels = None) -> bool:
        if self.text.startswith("label:"):
            name, negated, value = self._label()
            if labels is None:  # a state entry has no labels: no label selector matches it
                return False
            return labels.get(name) != value if negated else labels.get(name) == value
        if "/" in self.text:
            return fnmatchcase(key, self.text)
        return fnmatchcase(key.partition("/")[2], self.text)

    def suggestion(self, candidates: list[Candidate]) -> str | None:
        """The closest key (or label) to what this selector probably meant."""
        if self.text.startswith("label:"):
            negated = self._label()[1]
            pairs = sorted(
                {f"label:{k}{'!=' if negated else '='}{v}" for _, ls in candidates for k, v in (ls or {}).items()}
            )
            return closest(self.text, pairs)
        keys = [key for key, _ in candidates]
        if "/" in self.text:
            return closest(self.text, keys)
        by_name = {key.partition("/")[2]: key for key in reversed(keys)}  # the first key of each name
        nearest = closest(self.text, by_name)
        return by_name[nearest] if nearest is not None else None


def parse(texts: Iterable[str]) -> tuple[Selector, ...]:
    return tuple(Selector(t) for t in texts)


def any_match(selectors: tuple[Selector, ...], key: str, labels: Labels) -> bool:
    return any(s.matches(key, labels) for s in selectors)


def unmatched(selectors: tuple[Selector, ...], candidates: list[Candidate], flag: str) -> list[str]:
    """What to say of each selector that matches nothing: its flag, its text and the closest key."""
    messages = []
    for selector in selectors:
        if not any(selector.matches(k, labels) for k, labels in candidates):
            match = selector.suggestion(candidates)
            hint = f"did you mean '{match}'?" if match else "check the key (PROJECT/NAME) or label"
            messages.append(f"{flag} {selector.text!r} matches no run or state entry: {hint}")
    return messages


def check_all_match(selectors: tuple[Selector, ...], candidates: Iterable[Candidate], flag: str) -> None:
    """Raise UsageError naming every selector that matches nothing, each with the closest key."""
    messages = unmatched(selectors, list(candidates), flag)
    if messages:
        raise UsageError("; ".join(messages))


def pick(selectors: tuple[Selector, ...], candidates: Iterable[Candidate], flag: str) -> list[str]:
    """The keys of `candidates` that any selector matches (every key when there are no selectors),
    after checking that each selector matches at least one (UsageError naming one that does not)."""
    items = list(candidates)
    check_all_match(selectors, items, flag)
    if not selectors:
        return [key for key, _ in items]
    return [key for key, labels in items if any_match(selectors, key, labels)]


class Selection(Struct, frozen=True):
    """`--select`, `--run` and `--exclude` of plan, apply and watch; or the runs of a saved plan (`keys`)."""

    select: tuple[Selector, ...] = ()
    force: tuple[Selector, ...] = ()
    exclude: tuple[Selector, ...] = ()
    keys: frozenset[str] | None = None  # exactly these (apply PLANFILE)

    @classmethod
    def of(cls, select: Iterable[str] = (), force: Iterable[str] = (), exclude: Iterable[str] = ()) -> Selection:
        return cls(parse(select), parse(force), parse(exclude))

    @property
    def everything(self) -> bool:
        return not (self.select or self.force or self.exclude) and self.keys is None

    def forced(self, key: str, labels: Labels) -> bool:
        return any_match(self.force, key, labels) and not any_match(self.exclude, key, labels)

    def planned(self, key: str, labels: Labels) -> bool:
        """Whether a run (or a state entry) is in the planned set; no check that selectors match."""
        if self.keys is not None:
            return key in self.keys
        if any_match(self.exclude, key, labels):
            return False
        if not (self.select or self.force):
            return True
        return any_match(self.select, key, labels) or any_match(self.force, key, labels)

    def check(self, candidates: Iterable[Candidate]) -> None:
        """Every selector matches at least one run or state entry (UsageError with the closest key)."""
        items = list(candidates)
        flags = ((self.select, "--select"), (self.force, "--run"), (self.exclude, "--exclude"))
        messages = [m for selectors, flag in flags for m in unmatched(selectors, items, flag)]
        if messages:
            raise UsageError("; ".join(messages))


EVERYTHING = Selection()
