"""`intuned-runs validate` (docs/validation.md): every problem of the repository, on stdout."""

from __future__ import annotations

import argparse

from intuned_runs.commands.common import check_state_file, open_repository, report_problems, settings_from
from intuned_runs.errors import EXIT_ERROR, EXIT_OK, ProblemsFound
from intuned_runs.problems import errors_in, strictly
from intuned_runs.report.output import Output
from intuned_runs.report.problems import resolve_format
from intuned_runs.report.style import plural


def run(args: argparse.Namespace, out: Output) -> int:
    fmt = resolve_format(args.format)
    runs = 0
    try:  # config problems are reported like any other, in the chosen format (docs/validation.md)
        repository = open_repository(settings_from(args), out)
        problems = list(repository.desired.problems)
        runs = len(repository.desired.runs)
        check_state_file(repository, out)
    except ProblemsFound as e:
        problems = list(e.problems)
    problems = strictly(problems, args.strict)
    report_problems(out, problems, fmt, to_stdout=True)
    if fmt == "text" and not problems and not out.quiet:
        out.err(f"{plural(runs, 'run')} valid.")
    return EXIT_ERROR if errors_in(problems) else EXIT_OK
