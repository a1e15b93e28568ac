"""`intuned-runs state list|show|mv|forget|resolve|adopt|migrate|unlock` (docs/state.md, state commands).

Edits take the lock, fold any leftover journal, change the state, bump the serial and write it
(`state.edits.carry_out`). forget, resolve and adopt prompt on a TTY and need --yes otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

from intuned_runs.commands.common import backend_of, load_state, open_repository, settings_from, validated
from intuned_runs.errors import EXIT_ERROR, EXIT_OK, LockHeld, Refused, StateError, UsageError
from intuned_runs.location import LocationError, parse_location
from intuned_runs.report.output import Output
from intuned_runs.report.state import list_json, list_lines, show_json, show_lines
from intuned_runs.report.style import plural
from intuned_runs.repository import Repository
from intuned_runs.selection import Selection, parse, pick
from intuned_runs.state import edits
from intuned_runs.state.backend import Backend
from intuned_runs.state.format import dumps
from intuned_runs.state.model import State
from intuned_runs.suggest import closest


def run(args: argparse.Namespace, out: Output) -> int:
    return SUBCOMMANDS[args.state_command](args, out)


def _backend(args: argparse.Namespace, out: Output, repository: Repository | None = None) -> Backend:
    return backend_of(repository or open_repository(settings_from(args), out), out)


def _list(args: argparse.Namespace, out: Output) -> int:
    state = load_state(_backend(args, out))
    entries = sorted((k, e) for k, e in state.entries.items() if args.all or not e.is_tombstone)
    for line in [list_json(entries)] if args.json else list_lines(entries):
        out.out(line)
    return EXIT_OK


def _show(args: argparse.Namespace, out: Output) -> int:
    state = load_state(_backend(args, out))
    entry = state.entries.get(args.key)
    if entry is None:
        match = closest(args.key, state.entries)
        hint = f"did you mean '{match}'?" if match else "see 'intuned-runs state list --all'"
        raise UsageError(f"no state entry {args.key!r}: {hint}")
    for line in [show_json(args.key, entry)] if args.json else show_lines(args.key, entry):
        out.out(line)
    return EXIT_OK


def _confirmation(args: argparse.Namespace, out: Output, question: Callable[[edits.Edit], str]) -> edits.Confirm:
    def confirm(edit: edits.Edit) -> bool:
        if args.yes:
            return True
        text = question(edit)
        if not out.interactive():
            raise Refused(f"{text.rstrip('?')}: this needs confirmation; pass --yes")
        return out.confirm(f"{text} [y/N]")

    return confirm


def _carry_out(
    args: argparse.Namespace,
    out: Output,
    change: Callable[[State, str], edits.Edit],
    confirm: edits.Confirm = lambda edit: True,
    repository: Repository | None = None,
) -> edits.Edit | None:
    return edits.carry_out(
        _backend(args, out, repository),
        change,
        command=f"intuned-runs state {args.state_command}",
        lock_timeout=args.lock_timeout,
        confirm=confirm,
    )


def _mv(args: argparse.Namespace, out: Output) -> int:
    _carry_out(args, out, lambda state, now: edits.move(state, args.old, args.new))
    out.out(f"Moved {args.old} → {args.new}.")
    return EXIT_OK


def _forget(args: argparse.Namespace, out: Output) -> int:
    selectors = parse(args.selectors)
    ask = _confirmation(args, out, lambda edit: f"Forget {plural(len(edit.keys), 'run')} from state?")

    def confirm(edit: edits.Edit) -> bool:
        for key in edit.keys:
            out.err(f"- {key}")
        return ask(edit)

    edit = _carry_out(args, out, lambda state, now: edits.forget(state, selectors, now), confirm)
    if edit is None:
        out.err("Nothing forgotten.")
        return EXIT_ERROR
    out.out(f"Forgot {plural(len(edit.keys), 'run')}.")
    return EXIT_OK


def _resolve(args: argparse.Namespace, out: Output) -> int:
    selectors = parse(args.selectors)
    if args.run_id and not args.submitted:
        raise UsageError("--run-id goes with --submitted")
    verdict = "submitted" if args.submitted else "not submitted"
    confirm = _confirmation(args, out, lambda edit: f"Mark {plural(len(edit.keys), 'run')} as {verdict}?")
    edit = _carry_out(
        args,
        out,
        lambda state, now: edits.resolve(state, selectors, submitted=args.submitted, run_id=args.run_id),
        confirm,
    )
    if edit is None:
        out.err("Nothing resolved.")
        return EXIT_ERROR
    out.out(f"Resolved {plural(len(edit.keys), 'run')} as {verdict}.")
    return EXIT_OK


def _adopt(args: argparse.Namespace, out: Output) -> int:
    """This tool's `import`: the current definitions of the selected runs, recorded as submitted."""
    selectors = parse(args.selectors)
    # Only the selected runs are rendered and validated, as with plan --select (docs/plan.md, Selection).
    repository = open_repository(settings_from(args), out, selection=Selection(select=selectors))
    desired = validated(repository, out)
    if desired is None:
        return EXIT_ERROR
    defined = [*((r.key, r.labels) for r in desired.runs), *((u.key, u.labels) for u in desired.unplanned)]
    keys = set(pick(selectors, defined, "selector"))
    definitions = [edits.Definition(r.key, r.fingerprint, r.request) for r in desired.runs if r.key in keys]
    if args.run_id and len(definitions) != 1:
        chosen = " ".join(repr(s.text) for s in selectors)
        raise UsageError(
            f"--run-id names one run, but {chosen} {'matches' if len(selectors) == 1 else 'match'} "
            f"{plural(len(definitions), 'run')}: select one key"
        )
    ask = _confirmation(args, out, lambda edit: f"Adopt {plural(len(edit.keys), 'run')} as submitted?")

    def confirm(edit: edits.Edit) -> bool:
        for key in edit.keys:
            out.err(f"+ {key}" + (f"  {args.run_id}" if args.run_id else ""))
        return ask(edit)

    edit = _carry_out(
        args, out, lambda state, now: edits.adopt(state, definitions, now, args.run_id), confirm, repository
    )
    if edit is None:
        out.err("Nothing adopted.")
        return EXIT_ERROR
    out.out(f"Adopted {plural(len(edit.keys), 'run')}.")
    return EXIT_OK


def _migrate(args: argparse.Namespace, out: Output) -> int:
    """Copy the folded state to another backend or path, holding both locks (docs/shared-state.md,
    Migrating from a file). The source is left as it was; a target that holds a state is refused."""
    repository = open_repository(settings_from(args), out)
    try:
        location = parse_location(args.to, repository.config.repository)
    except LocationError as e:
        raise UsageError(f"--to: {e}") from None
    out.redactor = out.redactor.with_values(location.secrets)
    source = backend_of(repository, out)
    target = backend_of(repository, out, location)
    if location == repository.config.state_location:
        raise UsageError(f"--to names the state itself ({target.display})")
    question = f"Copy state {source.display} to {target.display}?"
    command = "intuned-runs state migrate"
    with contextlib.ExitStack() as locks:
        locks.enter_context(source.lock(command, args.lock_timeout))
        try:
            locks.enter_context(target.lock(command, args.lock_timeout))
        except LockHeld as e:  # say which of the two (docs/shared-state.md, Migrating from a file)
            raise LockHeld(f"the target {target.display}: {e} (with --state {target.display})") from None
        if not source.exists():
            raise Refused(f"there is no state at {source.display} to copy: check --state or the config's state")
        if target.exists():
            held = target.load()
            raise Refused(
                f"state {target.display} already holds a state (lineage {held.lineage}, serial {held.serial}): "
                "refusing to overwrite it; migrate to an empty location, or remove that state first"
            )
        state = source.fold()
        if not args.yes:
            if not out.interactive():
                raise Refused(f"{question.rstrip('?')}: this needs confirmation; pass --yes")
            if not out.confirm(f"{question} [y/N]"):
                out.err("Nothing copied.")
                return EXIT_ERROR
        target.write(state)
        if dumps(target.load()) != dumps(state):  # every value must read back exactly (timestamps included)
            raise StateError(f"state {target.display} does not read back as it was written: keep using the source")
    count = len(state.entries)
    entries = f"{count} {'entry' if count == 1 else 'entries'}"
    out.out(
        f"Copied state {source.display} to {target.display} "
        f"(lineage {state.lineage}, serial {state.serial}, {entries})."
    )
    hint = " (its password goes in PGPASSWORD or ~/.pgpass, not in the file)" if location.secrets else ""
    out.out(f"Put this in the config{hint}:")
    out.out(f"state: {target.display}")
    return EXIT_OK


def _unlock(args: argparse.Namespace, out: Output) -> int:
    holder = _backend(args, out).force_unlock()
    out.out(f"Removed the lock held by {holder}." if holder else "The state was not locked.")
    return EXIT_OK


SUBCOMMANDS: dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "list": _list,
    "show": _show,
    "mv": _mv,
    "forget": _forget,
    "resolve": _resolve,
    "adopt": _adopt,
    "migrate": _migrate,
    "unlock": _unlock,
}
