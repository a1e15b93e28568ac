"""`intuned-runs schema pull` and `schema export` (docs/schema.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from intuned_runs import editor_schemas
from intuned_runs import schema as schema_module
from intuned_runs.commands.common import settings_from
from intuned_runs.config import Config
from intuned_runs.errors import EXIT_ERROR, EXIT_OK
from intuned_runs.report.output import Output


def _as_given(args: argparse.Namespace, path: str) -> str:
    """A path of a flag, relative to DIR under -C DIR: as if started in DIR (docs/cli.md, Global options)."""
    if not path.startswith(("http://", "https://")) and args.chdir:
        return str(Path(args.chdir) / path)
    return path


def run(args: argparse.Namespace, out: Output) -> int:
    config = Config(settings_from(args))
    if args.schema_command == "export":
        return _export(args, config, out)
    spec = _as_given(args, args.spec) if args.spec else None
    target, was = schema_module.pull(config.repository, spec, args.check)
    name = config.relative(target)
    if args.check:
        if was != "up to date":  # `is missing` in a new repository, not "out of date" (docs/schema.md)
            out.err(f"{name} is {was}: run 'intuned-runs schema pull'")
            return EXIT_ERROR
        out.info(f"{name} is up to date.")
        return EXIT_OK
    out.info(f"{name} {'unchanged' if was == 'up to date' else 'written'}.")
    return EXIT_OK


def _export(args: argparse.Namespace, config: Config, out: Output) -> int:
    """The request schema validate uses (the config's `schema:`, else the packaged one), templated."""
    schema_path = config.schema_path
    request = schema_module.load(str(schema_path) if schema_path else None)
    directory = Path(_as_given(args, args.out)).resolve() if args.out else config.repository / "schemas"
    for target, changed in editor_schemas.export(directory, request):
        out.info(f"{config.relative(target)} {'written' if changed else 'unchanged'}.")
    return EXIT_OK
