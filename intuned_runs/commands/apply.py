"""`intuned-runs apply` (docs/apply.md): submit the runs that changed or were requested."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from msgspec.structs import replace

from intuned_runs import planfile
from intuned_runs.apply.guards import NEEDS_CONFIRMATION
from intuned_runs.apply.session import ApplyOptions, ApplyResult, run_apply
from intuned_runs.apply.signals import Signals
from intuned_runs.commands.common import (
    backend_of,
    catching_signals,
    context_of,
    emulated,
    environment,
    open_repository,
    settings_from,
    validated,
)
from intuned_runs.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, Refused, UsageError
from intuned_runs.plan import Plan
from intuned_runs.report.apply import ApplyProgress, WaitProgress, apply_json, apply_summary, confirm_question
from intuned_runs.report.output import Output
from intuned_runs.repository import Repository
from intuned_runs.results import Waited
from intuned_runs.state.backend import Backend


def run(args: argparse.Namespace, out: Output) -> int:
    saved = None
    settings = settings_from(args)
    if args.planfile:
        if args.select or args.force or args.exclude or args.retry_unknown:
            raise UsageError("apply PLANFILE takes no planning options (--select, --run, --exclude, --retry-unknown)")
        saved = planfile.load(Path(args.planfile))
        env, given = planfile.inputs(saved, args.planfile, args.env, settings.vars)
        settings = replace(settings, env=env, vars=given)
    environ = environment()
    with contextlib.ExitStack() as stack:
        if args.emulator:
            settings = stack.enter_context(emulated(settings, environ, out))
        interactive = out.interactive() and not args.json
        options = ApplyOptions(
            select=tuple(args.select),
            force=tuple(args.force),
            exclude=tuple(args.exclude),
            retry_unknown=args.retry_unknown,
            concurrency=args.concurrency,
            max_submit=args.max_submit,
            interactive=interactive,
            lock_timeout=args.lock_timeout,
            read_timeout=args.read_timeout,
            saved=saved,
        )
        repository = open_repository(settings, out, environ, selection=options.selection)
        backend = backend_of(repository, out)
        out.info(context_of(repository, backend).line())
        desired = validated(repository, out, strict=args.strict)
        if desired is None:
            return EXIT_ERROR

        def confirm(plan: Plan) -> bool:
            if saved is not None or args.yes:
                return True
            if not interactive:
                raise Refused(NEEDS_CONFIRMATION)
            return out.confirm(confirm_question(plan))

        progress = ApplyProgress(out, json_output=args.json)
        api_key = environ.get("INTUNED_API_KEY", "")
        with catching_signals(out, interrupt_until_sending=True) as signals:
            result = run_apply(
                repository,
                backend,
                desired,
                options,
                api_key=api_key,
                confirm=confirm,
                signals=signals,
                on_outcome=progress.outcome,
                on_plan=progress.plan,
                log=out.log if out.debug else None,
                timing=out.err if out.verbose else None,
            )
            if not result.confirmed:
                out.err("Apply cancelled: nothing was submitted.")
                return EXIT_ERROR
            waited = None
            if args.wait and result.summary["submitted"] and not signals.stop.is_set():
                waited = _wait(repository, backend, result, args, out, api_key, signals)
        for line in [apply_json(result, waited)] if args.json else apply_summary(result, waited, quiet=out.quiet):
            out.out(line)
        return _exit_code(result, waited, signals, detailed=args.detailed_exitcode)


def _exit_code(result: ApplyResult, waited: Waited | None, signals: Signals, *, detailed: bool) -> int:
    if signals.interrupted:
        return EXIT_INTERRUPTED
    if not result.ok or (waited is not None and waited.failed):
        return EXIT_ERROR
    if detailed and (result.summary["submitted"] or result.forgotten):
        return EXIT_CHANGES
    return EXIT_OK


def _wait(
    repository: Repository,
    backend: Backend,
    result: ApplyResult,
    args: argparse.Namespace,
    out: Output,
    api_key: str,
    signals: Signals,
) -> Waited:
    """apply --wait: poll each submitted run until final; record final statuses (no serial bump)."""
    from intuned_runs.api.client import Client
    from intuned_runs.results import Tracked, wait_all
    from intuned_runs.state.statuses import record_statuses

    projects = {r.key: r.project for r in result.plan.runs}
    submitted = [o for o in result.outcomes if o.run_id is not None]
    tracked = [Tracked(o.key, projects[o.key], o.run_id) for o in submitted if o.run_id is not None]
    progress = WaitProgress(out, {o.key: o.status for o in submitted}, json_output=args.json)
    with Client(
        repository.config.base_url,
        result.workspace_id,
        api_key,
        read_timeout=args.read_timeout,
        redactor=out.redactor,
    ) as client:
        try:
            waited = wait_all(
                client, tracked, timeout=args.timeout, on_update=progress.update, should_stop=signals.stop.is_set
            )
        finally:
            progress.done()
    warning = record_statuses(backend, waited.finals, command="intuned-runs status", lock_timeout=args.lock_timeout)
    if warning:
        out.warning(warning)
    if waited.timed_out:
        out.err(f"--timeout {args.timeout:g}s passed before every run finished; 'intuned-runs status' shows them later")
    return waited
