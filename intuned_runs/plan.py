"""The plan (docs/plan.md): a pure function of the desired runs and the state. No I/O, no clock.

The first matching rule decides each run's action:
  1 unknown outcome in state   → submit (with --run: requested; with --retry-unknown: unknown) | blocked;
    an intent without outcome while another apply holds the lock: unchanged/in-progress (--run: requested)
  2 trigger: manual            → submit/requested with --run | unchanged/manual
  3 no live entry              → submit/new (a tombstone with the same fingerprint counts as present)
  4 fingerprint differs        → submit/changed, with field-level changes
  5 matched by --run           → submit/requested
  6 trigger: always            → submit/always
  7 otherwise                  → unchanged/up-to-date
  – in state, no longer defined → forget/removed
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from msgspec import Struct

from intuned_runs import FORMAT_VERSION
from intuned_runs.desired import Desired
from intuned_runs.fingerprint import changes as field_changes
from intuned_runs.fingerprint import fingerprint as fingerprint_of
from intuned_runs.runs import Move, Run, Source
from intuned_runs.selection import EVERYTHING, Candidate, Selection
from intuned_runs.state.model import Entry, State

SUBMIT, UNCHANGED, BLOCKED, FORGET = "submit", "unchanged", "blocked", "forget"
IN_PROGRESS = "in-progress"  # the reason of a run another apply is sending right now
SYMBOLS = {"new": "+", "changed": "~", "requested": "!", "always": "*", "removed": "-", "unknown": "?"}
SUMMARY_KEYS = ("submit", "new", "changed", "requested", "always", "unchanged", "manual", "forget", "blocked")

Fingerprinter = Callable[[str, str, Any], str]  # (project, name, request) -> fingerprint


class PlannedRun(Struct, frozen=True, gc=False):
    key: str
    project: str
    name: str
    action: str
    reason: str
    source: Source | None
    fingerprint: str
    request: Mapping[str, Any]
    changes: tuple[Mapping[str, Any], ...] = ()
    moved_from: str | None = None
    run: Run | None = None
    entry: Entry | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "project": self.project,
            "name": self.name,
            "action": self.action,
            "reason": self.reason,
            "moved_from": self.moved_from,
            "source": None if self.source is None else {"file": self.source.file, "line": self.source.line},
            "fingerprint": self.fingerprint,
            "changes": [dict(c) for c in self.changes],
            "request": self.request,
        }

    @property
    def symbol(self) -> str:
        if self.action == BLOCKED:
            return "?"
        if self.action == SUBMIT and self.reason == "unknown":
            return "!"
        if self.action in (SUBMIT, FORGET):
            return SYMBOLS[self.reason]
        return " "


class Plan(Struct, frozen=True):
    runs: tuple[PlannedRun, ...]  # sorted by key
    moves: tuple[tuple[str, str], ...]  # (old, new) state renames this plan carries out

    def count(self, action: str, reason: str | None = None) -> int:
        return sum(1 for r in self.runs if r.action == action and (reason is None or r.reason == reason))

    @property
    def summary(self) -> dict[str, int]:
        return {
            "submit": self.count(SUBMIT),
            "new": self.count(SUBMIT, "new"),
            "changed": self.count(SUBMIT, "changed"),
            # --retry-unknown is a request too: the four kinds add up to the total
            "requested": self.count(SUBMIT, "requested") + self.count(SUBMIT, "unknown"),
            "always": self.count(SUBMIT, "always"),
            # manual runs nobody requested are neither up to date nor to submit: counted apart (docs/plan.md)
            "unchanged": self.count(UNCHANGED) - self.count(UNCHANGED, "manual"),
            "manual": self.count(UNCHANGED, "manual"),
            "forget": self.count(FORGET),
            "blocked": self.count(BLOCKED),
        }

    @property
    def to_submit(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.action == SUBMIT]

    @property
    def to_forget(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.action == FORGET]

    @property
    def blocked(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.action == BLOCKED]

    @property
    def in_progress(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.reason == IN_PROGRESS]

    @property
    def has_changes(self) -> bool:
        return bool(self.to_submit or self.to_forget)

    def to_json(self) -> dict[str, Any]:
        """The plan as `plan --json` prints it and a saved plan stores it (docs/plan.md, JSON output)."""
        return {
            "format_version": FORMAT_VERSION,
            "summary": self.summary,
            "moves": [{"from": old, "to": new} for old, new in self.moves],
            "runs": [r.to_json() for r in self.runs],
        }


ONCE_PER_WATCH = frozenset({"always", "requested"})


def for_watch(plan: Plan, submitted_once: frozenset[str]) -> Plan:
    """Watch mode (docs/watch.md): an `always` run, and a run forced with --run, is submitted at most once per
    session; a save of another file must not submit it again. (Forgets stay in the plan, shown; watch
    never applies them.)"""
    from msgspec.structs import replace

    runs = []
    for run in plan.runs:
        if run.action == SUBMIT and run.reason in ONCE_PER_WATCH and run.key in submitted_once:
            run = replace(run, action=UNCHANGED, reason=f"{run.reason} (submitted once this session)")
        runs.append(run)
    return Plan(tuple(runs), plan.moves)


def after_apply(plan: Plan, outcomes: Mapping[str, str]) -> Plan:
    """The actions the next plan will show once an apply's outcomes (key → outcome) are recorded: a
    submitted run is up to date (an always or forced one, in watch, submitted once), one whose outcome
    is unknown is blocked, the others stay as they were. For watch's "only what changed" display."""
    from msgspec.structs import replace

    runs = []
    for run in plan.runs:
        outcome = outcomes.get(run.key)
        if outcome == "submitted":
            reason = f"{run.reason} (submitted once this session)" if run.reason in ONCE_PER_WATCH else "up-to-date"
            run = replace(run, action=UNCHANGED, reason=reason)
        elif outcome == "unknown":
            run = replace(run, action=BLOCKED, reason="unknown")
        runs.append(run)
    return Plan(tuple(runs), plan.moves)


def apply_moves(
    entries: Mapping[str, Entry], moves: Iterable[Move], defined: set[str]
) -> tuple[dict[str, Entry], list[tuple[str, str]]]:
    """Move state entries of renamed runs (`moved:` blocks). A move applies when `from` has a live
    entry, `to` has none and `from` is no longer defined; one whose `from` is not in the state (already
    moved) is a no-op. (Validation refuses a `from` still defined or a `to` not defined: docs/plan.md, Renames.)"""
    result = dict(entries)
    done: list[tuple[str, str]] = []
    for move in moves:
        old = result.get(move.old)
        target = result.get(move.new)
        if old is None or old.is_tombstone or (target is not None and not target.is_tombstone):
            continue
        if move.old in defined:
            continue
        result[move.new] = result.pop(move.old)
        done.append((move.old, move.new))
    return result, done


def make_plan(
    runs: Iterable[Run],
    state: State,
    fingerprint: Fingerprinter,
    *,
    moves: Iterable[Move] = (),
    selection: Selection = EVERYTHING,
    others: Iterable[Candidate] = (),
    retry_unknown: bool = False,
    applying: bool = False,
    changes: Callable[[Any, Any], list[dict[str, Any]]] | None = None,
    memo: dict[str, PlannedRun] | None = None,
) -> Plan:
    """`others`: the (key, labels) of defined runs outside the selection, whose requests were not rendered.
    `applying`: another process holds the state's lock, so intents without outcome are being sent now.
    `memo` (watch): PlannedRuns of an earlier call with the same options; one whose Run and Entry are
    the very same objects is reused, so re-planning after one file changed costs little (docs/performance.md)."""
    runs = list(runs)
    others = list(others)
    defined = {r.key for r in runs}.union(key for key, _ in others)
    entries, done = apply_moves(state.entries, moves, defined)
    moved_to = {new: old for old, new in done}
    if not selection.everything:  # every selector matches a run or a state entry (docs/plan.md, Selection)
        selection.check([*((r.key, r.labels) for r in runs), *others, *((k, None) for k in entries)])

    out: list[PlannedRun] = []
    for run in runs:
        if not selection.planned(run.key, run.labels):
            continue
        entry = entries.get(run.key)
        if memo is not None:
            known = memo.get(run.key)
            if known is not None and known.run is run and known.entry is entry and run.key not in moved_to:
                out.append(known)
                continue
        forced = selection.forced(run.key, run.labels)
        fp = run.fingerprint
        stored_fp = entry.fingerprint if entry is not None else None
        if entry is not None and stored_fp != fp and fingerprint(run.project, run.name, entry.request) == fp:
            # An entry moved here (`moved:` now or in an earlier apply, `state mv`) keeps the hash of its old
            # name: the same request under this key is the same definition, not a change (docs/plan.md).
            stored_fp = fp
        diff: list[dict[str, Any]] = []
        if entry is not None and entry.unknown is not None and entry.unknown.in_flight and applying:
            # Not blocked: the apply holding the lock is sending it (docs/plan.md, Blocked and in-progress runs).
            action, reason = (SUBMIT, "requested") if forced else (UNCHANGED, IN_PROGRESS)
        elif entry is not None and entry.unknown is not None:  # blocked even after a removal and re-add
            if forced or retry_unknown:
                action, reason = SUBMIT, "requested" if forced else "unknown"
            else:
                action, reason = BLOCKED, "unknown"
        elif run.trigger == "manual":
            action, reason = (SUBMIT, "requested") if forced else (UNCHANGED, "manual")
        elif entry is None or (entry.is_tombstone and stored_fp != fp):
            action, reason = SUBMIT, "new"
        elif stored_fp != fp:
            action, reason = SUBMIT, "changed"
            diff = changes(entry.request, run.request) if changes else []
        elif forced:
            action, reason = SUBMIT, "requested"
        elif run.trigger == "always":
            action, reason = SUBMIT, "always"
        else:
            action, reason = UNCHANGED, "up-to-date"
        out.append(
            PlannedRun(
                run.key,
                run.project,
                run.name,
                action,
                reason,
                run.source,
                fp,
                run.request,
                tuple(diff),
                moved_to.get(run.key),
                run,
                entry,
            )
        )
    for key, entry in entries.items():
        if key in defined or entry.is_tombstone or not selection.planned(key, None):
            continue
        project, _, name = key.partition("/")
        out.append(
            PlannedRun(key, project, name, FORGET, "removed", None, entry.fingerprint, entry.request, entry=entry)
        )
    out.sort(key=lambda r: r.key)
    if memo is not None:
        memo.clear()
        memo.update((r.key, r) for r in out if r.run is not None)
    return Plan(tuple(out), tuple(done))


def plan_runs(
    desired: Desired,
    state: State,
    schema: dict[str, Any],
    *,
    selection: Selection = EVERYTHING,
    retry_unknown: bool = False,
    applying: bool = False,
    memo: dict[str, PlannedRun] | None = None,
) -> Plan:
    """The plan of a repository's desired runs against a state, with the schema's fingerprint rules."""
    return make_plan(
        desired.runs,
        state,
        lambda project, name, request: fingerprint_of(project, name, request, schema),
        moves=desired.moves,
        selection=selection,
        others=((u.key, u.labels) for u in desired.unplanned),
        retry_unknown=retry_unknown,
        applying=applying,
        changes=lambda before, after: field_changes(before, after, schema),
        memo=memo,
    )
