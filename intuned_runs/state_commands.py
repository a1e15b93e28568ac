"""`intuned-runs state list|show|mv|forget|resolve|unlock` (docs/state.md).

Edits take the lock, fold any leftover journal, change the state, bump the serial and write it
atomically. forget and resolve prompt on a TTY and need --yes otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace

from intuned_runs.cli import EXIT_ERROR, EXIT_OK, settings_from
from intuned_runs.errors import Refused, UsageError
from intuned_runs.locking import StateLock, force_unlock
from intuned_runs.output import Output
from intuned_runs.repository import Repository
from intuned_runs.selection import any_match, check_all_match
from intuned_runs.selection import parse as parse_selectors
from intuned_runs.state import Entry, State, bump


def _repository(args: argparse.Namespace, out: Output) -> Repository:
    repository = Repository(settings_from(args))
    out.redactor = repository.redactor()
    return repository


def _entry_dict(key: str, entry: Entry) -> dict[str, object]:
    return {"key": key, **entry.to_json()}


def _describe(entry: Entry) -> str:
    if entry.is_tombstone:
        return f"removed {entry.removed_at}"
    if entry.unknown is not None:
        return f"unknown since {entry.unknown.since} ({entry.unknown.reason})"
    status = f"  {entry.status}" if entry.status else ""
    return f"{entry.run_id or '-'}{status}  submitted {entry.submitted_at or '-'}"


def list(args: argparse.Namespace, out: Output) -> int:
    state = _repository(args, out).load_state()
    entries = sorted((k, e) for k, e in state.entries.items() if args.all or not e.is_tombstone)
    if args.json:
        out.out(
            json.dumps(
                {"format_version": 1, "entries": [_entry_dict(k, e) for k, e in entries]}, indent=2, ensure_ascii=False
            )
        )
        return EXIT_OK
    for key, entry in entries:
        out.out(f"{key}  {_describe(entry)}")
    return EXIT_OK


def show(args: argparse.Namespace, out: Output) -> int:
    state = _repository(args, out).load_state()
    entry = state.entries.get(args.key)
    if entry is None:
        raise UsageError(f"no state entry {args.key!r}: see 'intuned-runs state list --all'")
    if args.json:
        out.out(json.dumps(_entry_dict(args.key, entry), indent=2, ensure_ascii=False))
        return EXIT_OK
    out.out(args.key)
    for name, value in entry.to_json().items():
        if name != "request":
            out.out(f"  {name}: {json.dumps(value, ensure_ascii=False)}")
    out.out("  request:")
    for line in json.dumps(entry.request, indent=2, ensure_ascii=False).splitlines():
        out.out(f"    {line}")
    return EXIT_OK


def _edit(args: argparse.Namespace, out: Output, change: Callable[[State, str], State | None], command: str) -> int:
    """Lock, fold, change (given the store's current time), bump the serial, write."""
    repository = _repository(args, out)
    config = repository.config
    with StateLock(config.state_path, f"intuned-runs state {command}").acquire(args.lock_timeout):
        store = repository.store(out.redactor)
        store.ensure_gitignore()
        state = store.fold(upgrade=repository.upgrade)
        changed = change(state, store.now())
        if changed is None:
            return EXIT_ERROR
        store.write(bump(changed))
    return EXIT_OK


def _confirm(args: argparse.Namespace, out: Output, question: str) -> bool:
    if args.yes:
        return True
    if not out.interactive():
        raise Refused(f"{question.rstrip('?')}: this needs confirmation; pass --yes")
    return out.confirm(f"{question} [y/N]")


def mv(args: argparse.Namespace, out: Output) -> int:
    def change(state: State, now: str) -> State:
        entries = dict(state.entries)
        if args.old not in entries or entries[args.old].is_tombstone:
            raise UsageError(f"no state entry {args.old!r}")
        if args.new in entries and not entries[args.new].is_tombstone:
            raise UsageError(f"state entry {args.new!r} exists already")
        if args.new.count("/") != 1:
            raise UsageError(f"{args.new!r} is not a run key PROJECT/NAME")
        entries[args.new] = entries.pop(args.old)
        out.out(f"Moved {args.old} → {args.new}.")
        return replace(state, entries=entries)

    return _edit(args, out, change, "mv")


def forget(args: argparse.Namespace, out: Output) -> int:
    selectors = parse_selectors(args.selectors)

    def change(state: State, now: str) -> State | None:
        live = {k: e for k, e in state.entries.items() if not e.is_tombstone}
        check_all_match(selectors, ((k, None) for k in live), "selector")
        keys = sorted(k for k in live if any_match(selectors, k, None))
        for key in keys:
            out.err(f"- {key}")
        if not _confirm(args, out, f"Forget {len(keys)} runs from state?"):
            out.err("Nothing forgotten.")
            return None
        entries = dict(state.entries)
        for key in keys:
            entries[key] = replace(entries[key], removed_at=now)
        out.out(f"Forgot {len(keys)} runs (kept as tombstones).")
        return replace(state, entries=entries)

    return _edit(args, out, change, "forget")


def resolve(args: argparse.Namespace, out: Output) -> int:
    selectors = parse_selectors(args.selectors)
    if args.run_id and not args.submitted:
        raise UsageError("--run-id goes with --submitted")

    def change(state: State, now: str) -> State | None:
        # Tombstones too: a removed and re-added run is still blocked by its unknown outcome (docs/plan.md).
        unknown = {k: e for k, e in state.entries.items() if e.unknown is not None}
        check_all_match(selectors, ((k, None) for k in unknown), "selector (of runs with an unknown outcome)")
        keys = sorted(k for k in unknown if any_match(selectors, k, None))
        if args.run_id and len(keys) > 1:
            raise UsageError(f"--run-id names one run, but {args.selectors[0]!r} matches {len(keys)}: select one key")
        verdict = "submitted" if args.submitted else "not submitted"
        if not _confirm(args, out, f"Mark {len(keys)} runs as {verdict}?"):
            out.err("Nothing resolved.")
            return None
        entries = dict(state.entries)
        for key in keys:
            entry = entries[key]
            if args.submitted:
                assert entry.unknown is not None
                entries[key] = replace(
                    entry, unknown=None, run_id=args.run_id or entry.run_id, submitted_at=entry.unknown.since
                )
            elif entry.unknown is not None and entry.unknown.previous is not None:
                entries[key] = entry.unknown.previous  # never started: back to the last submission
            else:
                del entries[key]  # never started, never submitted before: the next plan offers it as new
        out.out(f"Resolved {len(keys)} runs as {verdict}.")
        return replace(state, entries=entries)

    return _edit(args, out, change, "resolve")


def unlock(args: argparse.Namespace, out: Output) -> int:
    repository = _repository(args, out)
    holder = force_unlock(repository.config.state_path)
    out.out(f"Removed the lock held by {holder}." if holder else "The state was not locked.")
    return EXIT_OK
