"""The `state` commands' edits (docs/state.md, state commands): pure `State → Edit` functions, and the one
way to carry one out — lock, fold, edit, confirm, bump the serial, write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from intuned_runs.errors import UsageError
from intuned_runs.selection import Selector, pick
from intuned_runs.state.backend import Backend
from intuned_runs.state.model import Entry, State, Submission, bump, with_submission


class Edit(Struct, frozen=True):
    state: State  # the edited state, serial not yet bumped
    keys: tuple[str, ...]  # the entries it changes, sorted


Confirm = Callable[[Edit], bool]


def move(state: State, old: str, new: str) -> Edit:
    entries = dict(state.entries)
    if old not in entries or entries[old].is_tombstone:
        raise UsageError(f"no state entry {old!r}")
    if new in entries and not entries[new].is_tombstone:
        raise UsageError(f"state entry {new!r} exists already")
    if new.count("/") != 1:
        raise UsageError(f"{new!r} is not a run key PROJECT/NAME")
    entries[new] = entries.pop(old)
    return Edit(replace(state, entries=entries), (old, new))


def forget(state: State, selectors: tuple[Selector, ...], now: str) -> Edit:
    """Remove entries entirely, leaving no tombstone: a forgotten run still defined is planned as new
    again (docs/state.md, forget). A run removed from the files keeps a tombstone instead."""
    live = [(k, None) for k, e in state.entries.items() if not e.is_tombstone]
    keys = tuple(sorted(pick(selectors, live, "selector")))
    entries = {k: e for k, e in state.entries.items() if k not in set(keys)}
    return Edit(replace(state, entries=entries), keys)


def resolve(state: State, selectors: tuple[Selector, ...], *, submitted: bool, run_id: str | None) -> Edit:
    """Settle unknown outcomes: submitted (with the run ID, when known), or never started."""
    # Tombstones too: a removed and re-added run is still blocked by its unknown outcome (docs/plan.md).
    unknown = [(k, None) for k, e in state.entries.items() if e.unknown is not None]
    keys = tuple(sorted(pick(selectors, unknown, "selector (of runs with an unknown outcome)")))
    if run_id and len(keys) > 1:
        raise UsageError(f"--run-id names one run, but {selectors[0].text!r} matches {len(keys)}: select one key")
    entries = dict(state.entries)
    for key in keys:
        entry = entries[key]
        assert entry.unknown is not None
        if submitted:
            run = run_id or entry.run_id
            history = with_submission(entry.history, Submission(run, entry.unknown.since, entry.fingerprint))
            entries[key] = replace(entry, unknown=None, run_id=run, submitted_at=entry.unknown.since, history=history)
        elif entry.unknown.previous is not None:
            # never started: back to the last submission (the unknown entry carries the history)
            entries[key] = replace(entry.unknown.previous, history=entry.history)
        else:
            del entries[key]  # never started, never submitted before: the next plan offers it as new
    return Edit(replace(state, entries=entries), keys)


class Definition(Struct, frozen=True):
    """A defined run as `adopt` records it: its key, fingerprint and redacted request."""

    key: str
    fingerprint: str
    request: dict[str, Any]


def adopt(state: State, definitions: Sequence[Definition], now: str, run_id: str | None) -> Edit:
    """Record the current definitions as submitted (with `run_id`, when known), sending nothing: this
    tool's `import` (docs/state.md, adopt). An unknown outcome is settled by it; the history goes on."""
    entries = dict(state.entries)
    for definition in definitions:
        before = entries.get(definition.key)
        item = Submission(run_id, now, definition.fingerprint, adopted=True)
        entries[definition.key] = Entry(
            fingerprint=definition.fingerprint,
            request=definition.request,
            run_id=run_id,
            submitted_at=now,
            history=with_submission(before.history if before is not None else (), item),
        )
    return Edit(replace(state, entries=entries), tuple(sorted(d.key for d in definitions)))


def carry_out(
    backend: Backend,
    change: Callable[[State, str], Edit],
    *,
    command: str,
    lock_timeout: float,
    confirm: Confirm = lambda edit: True,
) -> Edit | None:
    """Lock, fold, change (given the backend's current time), confirm, bump the serial, write.

    Returns the edit written, or None when `confirm` declined (nothing is written)."""
    with backend.lock(command, lock_timeout):
        state = backend.fold()
        edit = change(state, backend.now())
        if not confirm(edit):
            return None
        backend.write(bump(edit.state))
        return edit
