"""`intuned-runs completion bash|zsh|fish` (docs/cli.md, completion): a shell completion script.

The script is argcomplete's: the shell asks `intuned-runs` itself for the candidates, which `cli.main`
answers from the one argparse tree (`arguments.build_parser`), so completion always matches the
installed version and nothing is written by hand.
"""

from __future__ import annotations

import argparse

from intuned_runs.errors import EXIT_OK
from intuned_runs.report.output import Output

EXECUTABLE = "intuned-runs"  # the console script of pyproject.toml, which the shell completes


def run(args: argparse.Namespace, out: Output) -> int:
    from argcomplete.shell_integration import shellcode

    out.out(shellcode([EXECUTABLE], shell=args.shell).rstrip("\n"))
    return EXIT_OK
