"""The commands, one module each, each with `run(args, out) -> int` (docs/cli.md).

A handler turns its arguments into settings, makes one library call, hands the value to the reporter and
returns the exit code. Modules are imported by name only when their command runs (as pip's
`commands/__init__.py` does), so `--version` and `--help` pay for none of httpx, jsonschema or jinja2.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from intuned_runs import heap

if TYPE_CHECKING:
    import argparse

    from intuned_runs.report.output import Output

Handler = Callable[["argparse.Namespace", "Output"], int]

COMMANDS = {
    name: f"intuned_runs.commands.{name}"
    for name in (
        "init",
        "validate",
        "render",
        "plan",
        "apply",
        "watch",
        "status",
        "state",
        "schema",
        "emulator",
        "completion",
    )
}


def handler(name: str) -> Handler:
    # A command's imports build thousands of long-lived objects and no garbage: collecting meanwhile only
    # walks them again (docs/performance.md, What a plan loads).
    with heap.loading():
        run: Handler = importlib.import_module(COMMANDS[name]).run
    return run
