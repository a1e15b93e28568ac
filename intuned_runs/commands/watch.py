"""`intuned-runs watch [--apply]` (docs/watch.md): keep a directory planned, or applied, as it is edited."""

from __future__ import annotations

import argparse
import contextlib

from intuned_runs.apply.session import ApplyOptions
from intuned_runs.commands.common import (
    backend_of,
    catching_signals,
    emulated,
    environment,
    report_problems,
    settings_from,
)
from intuned_runs.errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from intuned_runs.plan import Plan
from intuned_runs.problems import Problem
from intuned_runs.report.apply import outcome_line
from intuned_runs.report.output import Output
from intuned_runs.report.plan import blocked_lines, watch_plan_lines
from intuned_runs.repository import Repository
from intuned_runs.state.backend import Backend
from intuned_runs.watch import Watcher, WatchOptions, WatchReport, run_watch


def run(args: argparse.Namespace, out: Output) -> int:
    environ = environment()  # read once (docs/watch.md)
    settings = settings_from(args)
    with contextlib.ExitStack() as stack:
        if args.emulator:
            settings = stack.enter_context(emulated(settings, environ, out))
        if args.apply and not environ.get("INTUNED_API_KEY"):
            raise UsageError("watch --apply needs INTUNED_API_KEY (or --emulator)")

        def show_plan(plan: Plan, previous: Plan | None) -> None:
            for line in blocked_lines(plan):  # every plan lists blocked runs on stderr (docs/plan.md)
                out.err(line)
            for line in watch_plan_lines(plan, previous, out.verbose, out.paint):
                out.out(line)

        def show_problems(problems: list[Problem]) -> None:
            report_problems(out, problems, "text", to_stdout=False)

        report = WatchReport(
            plan=show_plan,
            problems=show_problems,
            outcome=lambda o: out.out(outcome_line(o, out.paint)),
            message=out.err,
            timing=out.err if out.verbose else (lambda text: None),
        )
        options = WatchOptions(
            apply=args.apply,
            api_key=environ.get("INTUNED_API_KEY", ""),
            session=ApplyOptions(
                select=tuple(args.select),
                force=tuple(args.force),
                exclude=tuple(args.exclude),
                concurrency=args.concurrency,
                lock_timeout=args.lock_timeout,
                read_timeout=args.read_timeout,
                interactive=out.interactive(),
                max_submit=args.max_submit,
            ),
        )

        def backend(repository: Repository) -> Backend:
            out.redactor = repository.redactor()  # a reloaded config may name other secrets
            return backend_of(repository, out)

        with catching_signals(out) as signals:
            watcher = Watcher(settings, environ, options, report, signals, backend)
            out.info(
                f"Watching {settings.chdir or '.'} ({'apply' if args.apply else 'plan'} on every change; Ctrl-C stops)."
            )
            run_watch(watcher, signals.stop)
            return EXIT_INTERRUPTED if signals.abandon.is_set() else EXIT_OK
