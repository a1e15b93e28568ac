"""`intuned-runs schema pull` (docs/schema.md, schema pull)."""

from __future__ import annotations

import argparse
from pathlib import Path

from intuned_runs import schema as schema_module
from intuned_runs.commands.common import settings_from
from intuned_runs.config import Config
from intuned_runs.errors import EXIT_ERROR, EXIT_OK
from intuned_runs.report.output import Output


def run(args: argparse.Namespace, out: Output) -> int:
    config = Config(settings_from(args))
    spec = args.spec
    if spec and not spec.startswith(("http://", "https://")) and args.chdir:
        spec = str(Path(args.chdir) / spec)  # -C DIR: as if started in DIR (docs/cli.md, Global options)
    target, changed = schema_module.pull(config.repository, spec, args.check)
    name = config.relative(target)
    if args.check:
        if changed:
            out.err(f"{name} is out of date: run 'intuned-runs schema pull'")
            return EXIT_ERROR
        out.info(f"{name} is up to date.")
        return EXIT_OK
    out.info(f"{name} {'written' if changed else 'unchanged'}.")
    return EXIT_OK
