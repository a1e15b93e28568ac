"""Command line (docs/cli.md): parse, dispatch to the command's handler, map errors to exit codes.

`main` is the only place that turns an exception into an exit code: IntunedRunsError is one line and 1,
Ctrl-C is 130, anything unexpected prints "unexpected error" with the (redacted) traceback and exits 1.
Heavy modules (httpx, jsonschema, jinja2, watchfiles) are imported by the handlers only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence

from intuned_runs import __version__
from intuned_runs.arguments import build_parser
from intuned_runs.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Interrupted,
    IntunedRunsError,
    ProblemsFound,
)
from intuned_runs.report.output import Output


def schema_version() -> str:
    """The packaged schema's info.version, read without jsonschema (start-up stays light)."""
    from intuned_runs.schema import PACKAGED_SCHEMA, version

    try:
        return version(json.loads(PACKAGED_SCHEMA.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return "unknown"


def complete() -> None:
    """Answer a completion request of the script `intuned-runs completion SHELL` printed, from the one
    parser; argcomplete exits when done."""
    import argcomplete

    argcomplete.autocomplete(build_parser(), exclude=["-h"])


def main(argv: Sequence[str] | None = None, output: Output | None = None) -> int:
    if "_ARGCOMPLETE" in os.environ and output is None:  # the shell asking for completions (commands.completion)
        complete()
    out = output or Output()
    arguments = list(sys.argv[1:] if argv is None else argv)
    out.use_colour(no_color="--no-color" in arguments)  # a usage error is red too (docs/cli.md)
    try:
        with contextlib.redirect_stdout(out.stdout):  # --help is a report: it goes where reports go
            args = build_parser().parse_args(arguments)
        out.verbose, out.quiet, out.debug = args.verbose, args.quiet, args.debug
        out.use_colour(no_color=args.no_color)
        if args.version:
            out.out(f"intuned-runs {__version__} (Run API schema {schema_version()})")
            return EXIT_OK
        if not args.command:
            build_parser().print_help(out.stdout)
            return EXIT_ERROR
        from intuned_runs.commands import handler

        return handler(args.command)(args, out)
    except ProblemsFound as e:
        from intuned_runs.report.problems import problems_text, resolve_format

        for line in problems_text(e.problems, resolve_format("auto"), out.paint_err):
            out.err(line)
        return EXIT_ERROR
    except Interrupted as e:
        out.err(f"interrupted: {e}")
        return EXIT_INTERRUPTED
    except IntunedRunsError as e:
        out.error(str(e))
        return EXIT_ERROR
    except KeyboardInterrupt:
        out.err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    except SystemExit as e:  # --help (argparse exits 0 after printing it)
        return e.code if isinstance(e.code, int) else EXIT_OK
    except Exception:
        import traceback  # only when something went wrong: every start-up pays its import (docs/performance.md)

        out.err("unexpected error (please report it with the traceback below)")
        out.err(traceback.format_exc().rstrip())
        return EXIT_ERROR
