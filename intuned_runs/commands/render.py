"""`intuned-runs render` (docs/validation.md, render): the rendered runs, secrets as placeholders."""

from __future__ import annotations

import argparse

from intuned_runs import selection
from intuned_runs.commands.common import backend_of, load_state, open_repository, settings_from, validated
from intuned_runs.errors import EXIT_ERROR, EXIT_OK
from intuned_runs.report.output import Output
from intuned_runs.report.runs import render_json, render_yaml


def run(args: argparse.Namespace, out: Output) -> int:
    repository = open_repository(settings_from(args), out)
    desired = validated(repository, out)
    if desired is None:
        return EXIT_ERROR
    load_state(backend_of(repository, out))  # a state that cannot be trusted is an error for every command
    chosen = set(selection.pick(selection.parse(args.selectors), ((r.key, r.labels) for r in desired.runs), "selector"))
    runs = [r for r in desired.runs if r.key in chosen]
    out.out(render_json(runs) if args.json else render_yaml(runs))
    return EXIT_OK
