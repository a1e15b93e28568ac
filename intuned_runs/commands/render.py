"""`intuned-runs render` (docs/validation.md, render): the rendered runs, secrets as placeholders."""

from __future__ import annotations

import argparse

from intuned_runs.commands.common import check_state_file, open_repository, settings_from, validated
from intuned_runs.errors import EXIT_ERROR, EXIT_OK
from intuned_runs.report.output import Output
from intuned_runs.report.runs import render_json, render_yaml
from intuned_runs.selection import Selection, check_all_match, parse


def run(args: argparse.Namespace, out: Output) -> int:
    # As in plan: only the selected runs' requests are rendered (docs/plan.md, Selection).
    repository = open_repository(settings_from(args), out, selection=Selection.of(select=args.selectors))
    desired = validated(repository, out)
    if desired is None:
        return EXIT_ERROR
    check_state_file(repository, out)
    candidates = [*((r.key, r.labels) for r in desired.runs), *((u.key, u.labels) for u in desired.unplanned)]
    check_all_match(parse(args.selectors), candidates, "selector")
    out.out(render_json(desired.runs) if args.json else render_yaml(desired.runs))
    return EXIT_OK
