"""The commands that talk to the Run API: apply, watch and status (docs/apply.md, docs/watch.md, docs/state.md).

Like every handler, each turns arguments into one library call (`apply.run_apply`, `watch.run_watch`,
`results.fetch`) and hands what it returns to the reporter; signals, the emulator and prompts are wired
here because they belong to the process, not to the library.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from intuned_runs.apply import Signals
from intuned_runs.cli import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, settings_from
from intuned_runs.commands import report_problems
from intuned_runs.errors import UsageError
from intuned_runs.output import Output
from intuned_runs.problems import errors_in


@contextlib.contextmanager
def _signals(out: Output, *, interrupt_until_sending: bool = False) -> Iterator[Signals]:
    """SIGINT/SIGTERM: stop new submissions; a second SIGINT abandons in-flight ones (docs/apply.md).
    The previous handlers come back afterwards (main() may be called in-process)."""
    import signal

    signals = Signals.new()

    def handle(signum: int, frame: object) -> None:
        if interrupt_until_sending and not signals.sending.is_set():
            # Nothing sent yet (waiting for the lock, at the prompt): stop right away; run_apply's
            # finally releases the lock and main() exits 130.
            raise KeyboardInterrupt
        if signals.stop.is_set() and signum == signal.SIGINT:
            signals.abandon.set()
            out.err("interrupted again: abandoning in-flight requests (recorded as unknown)")
        else:
            signals.stop.set()
            out.err("interrupted: no new submissions; waiting for in-flight ones (Ctrl-C again to abandon)")

    previous = signal.signal(signal.SIGINT, handle), signal.signal(signal.SIGTERM, handle)
    try:
        yield signals
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _emulated(args: argparse.Namespace, environ: dict[str, str], out: Output):  # type: ignore[no-untyped-def]
    """--emulator: an in-process emulator, a throwaway key and workspace, state of its own (docs/apply.md)."""
    from intuned_runs.config import EMULATOR_WORKSPACE
    from intuned_runs.emulator import Emulator

    emulator = Emulator(complete_after=1.0).start()
    environ["INTUNED_API_KEY"] = "emulator-throwaway-key"
    args.base_url, args.workspace_id = emulator.url, EMULATOR_WORKSPACE
    environ.pop("INTUNED_WORKSPACE_ID", None)
    out.info(f"Using the built-in emulator at {emulator.url} (nothing leaves this machine).")
    return emulator


def apply(args: argparse.Namespace, out: Output) -> int:
    import os

    from intuned_runs import planfile
    from intuned_runs.apply import ApplyOptions, RunOutcome, run_apply
    from intuned_runs.config import Settings
    from intuned_runs.errors import Refused
    from intuned_runs.report import apply_json, apply_summary, blocked_lines, outcome_line, plan_text
    from intuned_runs.repository import Repository

    saved = None
    if args.planfile:
        if args.select or args.force or args.retry_unknown:
            raise UsageError("apply PLANFILE takes no planning options (--select, --run, --retry-unknown)")
        saved = planfile.load(Path(args.planfile))
        given = settings_from(args).vars
        if (args.env is not None and args.env != saved.env) or (given and list(given) != list(saved.vars)):
            raise UsageError(
                f"apply {args.planfile} renders with the plan's own inputs (--env {saved.env}, "
                f"--var {' '.join(saved.vars) or 'none'}): drop --env/--var, or plan again with the new ones"
            )
        args.env, args.vars, args.vars_after = saved.env, list(saved.vars), []
    environ = dict(os.environ)
    emulator = _emulated(args, environ, out) if args.emulator else None
    try:
        settings: Settings = settings_from(args)
        if emulator is not None:
            settings = replace(settings, emulator=True)
        repository = Repository(settings, environ)
        out.redactor = repository.redactor()
        desired = repository.desired
        from intuned_runs.report import resolve_format, strictly

        problems = strictly(desired.problems, args.strict)
        report_problems(out, problems, resolve_format("auto"), to_stdout=False)
        if errors_in(problems):
            return EXIT_ERROR
        interactive = out.interactive() and not args.json

        def confirm(plan) -> bool:  # type: ignore[no-untyped-def]
            if saved is not None or args.yes:
                return True
            if not interactive:
                raise Refused(
                    "apply needs confirmation: run it in a terminal, pass --yes, or apply a saved plan "
                    "(intuned-runs plan --out FILE; intuned-runs apply FILE)"
                )
            submit, forget = len(plan.to_submit), len(plan.to_forget)
            if submit:
                question = f"Submit {submit} runs? [y/N]"
            elif forget:
                question = f"Forget {forget} runs from state? [y/N]"
            else:
                question = f"Record {len(plan.moves)} renamed runs in state? [y/N]"
            return out.confirm(question)

        total = [0]

        def on_plan(plan) -> None:  # type: ignore[no-untyped-def]
            for line in blocked_lines(plan):
                out.err(line)
            total[0] = len(plan.to_submit)
            if not args.json and (plan.has_changes or plan.moves or out.verbose):
                for line in plan_text(plan, out.verbose):  # like terraform: the plan, then the outcomes
                    out.out(line)

        finished = [0]

        def on_outcome(outcome: RunOutcome) -> None:
            finished[0] += 1
            if not args.json:
                out.out(outcome_line(outcome))
                out.progress(finished[0], total[0], "runs")

        options = ApplyOptions(
            select=tuple(args.select),
            force=tuple(args.force),
            retry_unknown=args.retry_unknown,
            concurrency=args.concurrency,
            max_submit=args.max_submit,
            interactive=interactive,
            lock_timeout=args.lock_timeout,
            read_timeout=args.read_timeout,
            saved=saved,
        )
        with _signals(out, interrupt_until_sending=True) as signals:
            result = run_apply(
                repository,
                desired,
                options,
                api_key=environ.get("INTUNED_API_KEY", ""),
                confirm=confirm,
                signals=signals,
                on_outcome=on_outcome,
                on_plan=on_plan,
                log=out.log if out.debug else None,
                timing=out.err if out.verbose else None,
                redactor=out.redactor,
            )
            if not result.confirmed:
                out.err("Apply cancelled: nothing was submitted.")
                return EXIT_ERROR
            waited = None
            if args.wait and any(o.outcome == "submitted" for o in result.outcomes) and not signals.stop.is_set():
                waited = _wait(repository, result, args, out, environ, signals)
            if args.json:
                out.out(apply_json(result, waited))
            else:
                for line in apply_summary(result, waited):
                    out.out(line)
            if signals.abandon.is_set() or signals.stop.is_set():
                return 130
            failed_wait = waited is not None and (
                waited[1] or any(r.status in ("failed", "canceled") for r in waited[0].values())
            )
            if not result.ok or failed_wait:
                return EXIT_ERROR
            if args.detailed_exitcode and (result.summary["submitted"] or result.forgotten):
                return EXIT_CHANGES
            return EXIT_OK
    finally:
        if emulator is not None:
            emulator.stop()


def _wait(repository, result, args, out: Output, environ, signals):  # type: ignore[no-untyped-def]
    """apply --wait: poll each submitted run until final; record final statuses (no serial bump)."""
    from intuned_runs.api import Client
    from intuned_runs.journal import StatusRecord
    from intuned_runs.locking import StateLock
    from intuned_runs.results import Tracked, wait_all

    projects = {r.key: r.project for r in result.plan.runs}
    tracked = [Tracked(o.key, projects[o.key], o.run_id) for o in result.outcomes if o.outcome == "submitted"]

    def on_update(update) -> None:  # type: ignore[no-untyped-def]
        if not args.json:
            out.info(f"  {update.key}  {update.run_id}  {update.status or update.fetch_error}")

    config = repository.config
    with Client(
        config.base_url,
        result.workspace_id,
        environ.get("INTUNED_API_KEY", ""),
        read_timeout=args.read_timeout,
        redactor=out.redactor,
    ) as client:
        latest, timed_out = wait_all(
            client, tracked, timeout=args.timeout, on_update=on_update, should_stop=signals.stop.is_set
        )
    _record_statuses(
        repository, out, [r for r in latest.values() if r.final], StatusRecord, StateLock, args.lock_timeout
    )
    if timed_out:
        out.err(f"--timeout {args.timeout:g}s passed before every run finished; 'intuned-runs status' shows them later")
    return latest, timed_out


def _record_statuses(repository, out: Output, finals, record_type, lock_type, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Record final statuses (no serial bump). A busy lock only costs the record, never the report."""
    from intuned_runs.errors import LockHeld

    if not finals:
        return
    config = repository.config
    try:
        lock = lock_type(config.state_path, "intuned-runs status").acquire(timeout)
    except LockHeld as e:
        out.err(f"warning: final statuses not recorded: {e}")
        return
    with lock:
        store = repository.store(out.redactor)
        with store.journal() as journal:
            for update in finals:
                journal.append(record_type(update.key, update.status, store.now()))
        store.fold()


def watch(args: argparse.Namespace, out: Output) -> int:
    import os

    from intuned_runs.config import Settings
    from intuned_runs.report import blocked_lines, outcome_line, watch_plan_lines
    from intuned_runs.watch import Watcher, WatchOptions, WatchReport, run_watch

    environ = dict(os.environ)  # read once (docs/watch.md)
    emulator = _emulated(args, environ, out) if args.emulator else None
    try:
        settings: Settings = settings_from(args)
        if emulator is not None:
            settings = replace(settings, emulator=True)
        if args.apply and not environ.get("INTUNED_API_KEY"):
            raise UsageError("watch --apply needs INTUNED_API_KEY (or --emulator)")

        def show_plan(plan, previous) -> None:  # type: ignore[no-untyped-def]
            for line in blocked_lines(plan):  # every plan lists blocked runs on stderr (docs/plan.md)
                out.err(line)
            for line in watch_plan_lines(plan, previous, out.verbose):
                out.out(line)

        def show_problems(problems) -> None:  # type: ignore[no-untyped-def]
            report_problems(out, problems, "text", to_stdout=False)

        report = WatchReport(
            plan=show_plan,
            problems=show_problems,
            outcome=lambda o: out.out(outcome_line(o)),
            message=out.err,
            timing=out.err if out.verbose else (lambda text: None),
        )
        options = WatchOptions(
            select=tuple(args.select),
            force=tuple(args.force),
            apply=args.apply,
            concurrency=args.concurrency,
            lock_timeout=args.lock_timeout,
            read_timeout=args.read_timeout,
            api_key=environ.get("INTUNED_API_KEY", ""),
            interactive=out.interactive(),
            max_submit=args.max_submit,
        )
        with _signals(out) as signals:
            watcher = Watcher(settings, environ, options, report, signals, redactor=out.redactor)
            out.info(
                f"Watching {settings.chdir or '.'} ({'apply' if args.apply else 'plan'} on every change; Ctrl-C stops)."
            )
            run_watch(watcher, signals.stop)
            return 130 if signals.abandon.is_set() else EXIT_OK
    finally:
        if emulator is not None:
            emulator.stop()


def status(args: argparse.Namespace, out: Output) -> int:
    import os

    from intuned_runs import selection
    from intuned_runs.api import Client
    from intuned_runs.errors import Refused
    from intuned_runs.journal import StatusRecord
    from intuned_runs.locking import StateLock
    from intuned_runs.repository import Repository
    from intuned_runs.results import Tracked, fetch

    repository = Repository(settings_from(args))
    out.redactor = repository.redactor()
    state = repository.load_state()
    selectors = selection.parse(args.selectors)
    selection.check_all_match(selectors, ((k, None) for k in state.entries), "selector")
    tracked = [
        Tracked(key, key.partition("/")[0], entry.run_id)
        for key, entry in sorted(state.entries.items())
        if entry.run_id and (not selectors or selection.any_match(selectors, key, None))
    ]
    api_key = os.environ.get("INTUNED_API_KEY", "")
    if not api_key:
        raise Refused("INTUNED_API_KEY is not set: export the workspace's API key")
    workspace = repository.config.require_workspace_id()
    with Client(
        repository.config.base_url,
        workspace,
        api_key,
        read_timeout=args.read_timeout,
        redactor=out.redactor,
        log=out.log if out.debug else None,
        timing=out.err if out.verbose else None,
    ) as client:
        results = [fetch(client, run) for run in tracked]
    if args.json:
        out.out(json.dumps({"format_version": 1, "runs": [r.as_dict() for r in results]}, indent=2, ensure_ascii=False))
    else:
        for r in results:
            out.out(f"{r.key}  {r.run_id}  {r.status if r.fetch_error is None else 'error: ' + r.fetch_error}")
        if not results:
            out.info("No runs with a run ID in state.")
    _record_statuses(repository, out, [r for r in results if r.final], StatusRecord, StateLock, args.lock_timeout)
    if any(r.fetch_error is not None for r in results):
        return EXIT_ERROR
    if args.detailed_exitcode and any(r.status in ("failed", "canceled") for r in results):
        return EXIT_CHANGES
    return EXIT_OK
