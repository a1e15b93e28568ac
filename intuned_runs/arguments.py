"""The one argparse tree of every command and option (docs/cli.md). It imports no heavy module, so
`--version` and `--help` stay fast."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from intuned_runs.errors import UsageError

EXAMPLES = {
    "validate": "intuned-runs validate --strict --format github",
    "render": "intuned-runs render 'pricing-scraper/*' --json",
    "plan": "intuned-runs plan --env prod --out plan.json --detailed-exitcode",
    "apply": "INTUNED_API_KEY=... intuned-runs apply --yes   |   intuned-runs apply plan.json",
    "watch": "intuned-runs watch --apply --select 'label:team=pricing'",
    "schema": "intuned-runs schema pull --check",
    "state": "intuned-runs state list --all   |   intuned-runs state resolve my-project/daily --submitted --yes",
    "status": "intuned-runs status 'pricing-scraper/*' --json",
    "emulator": "intuned-runs emulator --port 8787 --fail 429:0.1 --result failed:0.2",
}


def duration(text: str) -> float:
    """DUR is an integer with a unit: `90s`, `15m`, `1h` (docs/apply.md)."""
    units = {"s": 1, "m": 60, "h": 3600}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use an integer with a unit, like 90s, 15m or 1h")
    return int(text[:-1]) * units[text[-1]]


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, never argparse's 2 (2 means "changes present" with --detailed-exitcode)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Global options, accepted before or after the command name."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("global options")
    group.add_argument("-C", dest="chdir", metavar="DIR", default=default, help="run as if started in DIR")
    group.add_argument("--config", metavar="FILE", default=default, help="config file (default: discovered)")
    group.add_argument("--env", metavar="NAME", default=default, help="select an environment of the config")
    group.add_argument(
        "--var",
        # After the command name they are collected apart, or the subcommand's list would replace
        # the one given before it (global options go before or after the command: docs/cli.md, Global options).
        dest="vars_after" if suppress else "vars",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="set vars.KEY (repeatable)",
    )
    group.add_argument("--workspace-id", metavar="UUID", default=default)
    group.add_argument("--base-url", metavar="URL", default=default)
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS if suppress else False)
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS if suppress else False)
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if suppress else False)
    group.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS if suppress else False)


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="SEL",
        help="limit to matching runs (repeatable; glob on PROJECT/NAME or label:KEY=VALUE)",
    )
    parser.add_argument(
        "--run",
        dest="force",
        action="append",
        default=[],
        metavar="SEL",
        help="force matching runs to be submitted (repeatable)",
    )


def _format(parser: argparse.ArgumentParser, choices: Sequence[str], default: str) -> None:
    parser.add_argument("--format", choices=choices, default=default)


def _subcommand(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    help_text: str,
    example: str,
) -> argparse.ArgumentParser:
    """A command with its help, an example (docs/cli.md) and the global options."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"Example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _globals(parser, suppress=True)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="intuned-runs",
        description="Intuned runs as code: validate, plan and apply Run API definitions kept in Git.",
        epilog="Example:\n  intuned-runs plan && intuned-runs apply --yes\n\nTry it with no account:\n"
        "  intuned-runs apply --emulator --yes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and the schema's version")
    _globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return _subcommand(sub, name, help_text, EXAMPLES[name])

    p = command("validate", "load, render and validate every run file")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    _format(p, ("text", "json", "github", "auto"), "auto")

    p = command("render", "print the rendered runs (secrets as placeholders)")
    p.add_argument("selectors", nargs="*", metavar="SEL")
    p.add_argument("--json", action="store_true")

    p = command("plan", "show what apply would submit")
    _selection(p)
    p.add_argument("--out", metavar="FILE", help="save the plan for `intuned-runs apply FILE`")
    _format(p, ("text", "json", "markdown"), "text")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when something would be submitted or forgotten",
    )
    p.add_argument("--retry-unknown", action="store_true", help="plan runs with an unknown outcome for submission")
    p.add_argument("--strict", action="store_true", help="treat validation warnings as errors")
    p.add_argument(
        "--since",
        metavar="REF",
        help="plan the difference from git revision REF, with no state and no secrets (default: off)",
    )

    p = command("apply", "submit the runs that changed or were requested")
    p.add_argument("planfile", nargs="?", metavar="PLANFILE", help="a plan saved with plan --out")
    _selection(p)
    p.add_argument("--yes", "-y", action="store_true", help="do not prompt")
    p.add_argument("--concurrency", type=positive, default=8, metavar="N")
    p.add_argument("--max-submit", type=non_negative, default=None, metavar="N")
    p.add_argument("--wait", action="store_true", help="poll each submitted run until it is final")
    p.add_argument("--timeout", type=duration, default="30m", metavar="DUR", help="with --wait (default 30m)")
    p.add_argument("--retry-unknown", action="store_true")
    p.add_argument("--lock-timeout", type=duration, default="0s", metavar="DUR")
    p.add_argument("--read-timeout", type=duration, default="60s", metavar="DUR")
    p.add_argument("--json", action="store_true")
    p.add_argument("--detailed-exitcode", action="store_true")
    p.add_argument("--strict", action="store_true")
    p.add_argument("--emulator", action="store_true", help="apply to a built-in emulator (no account needed)")

    p = command("watch", "keep a directory planned (or applied) as it is edited")
    _selection(p)
    p.add_argument("--apply", action="store_true")
    p.add_argument("--concurrency", type=positive, default=8, metavar="N")
    p.add_argument("--max-submit", type=non_negative, default=None, metavar="N")
    p.add_argument("--lock-timeout", type=duration, default="0s", metavar="DUR")
    p.add_argument("--read-timeout", type=duration, default="60s", metavar="DUR")
    p.add_argument("--emulator", action="store_true")

    p = command("schema", "pull the request schema from the OpenAPI spec, export the editor schemas")
    schema_sub = p.add_subparsers(dest="schema_command", metavar="pull|export", parser_class=_Parser, required=True)
    pull = _subcommand(schema_sub, "pull", "extract the request-body schema", EXAMPLES["schema"])
    pull.add_argument("--spec", metavar="PATH_OR_URL")
    pull.add_argument("--check", action="store_true", help="exit 1 if the file would change")
    export = _subcommand(
        schema_sub,
        "export",
        "write the JSON Schemas of run files and the config, for editors",
        "intuned-runs schema export --out schemas",
    )
    export.add_argument(
        "--out", metavar="DIR", help="where to write runs-file.schema.json and config.schema.json (default: schemas)"
    )

    p = command("state", "inspect and edit the state")
    state_sub = p.add_subparsers(dest="state_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)

    def state_command(name: str, help_text: str) -> argparse.ArgumentParser:
        s = _subcommand(state_sub, name, help_text, EXAMPLES["state"])
        s.add_argument("--lock-timeout", type=duration, default="0s", metavar="DUR")
        return s

    s = state_command("list", "list the state's entries")
    s.add_argument("--all", action="store_true", help="include tombstones")
    s.add_argument("--json", action="store_true")
    s = state_command("show", "show one entry")
    s.add_argument("key")
    s.add_argument("--json", action="store_true")
    s = state_command("mv", "rename an entry")
    s.add_argument("old")
    s.add_argument("new")
    s = state_command("forget", "remove entries (kept as tombstones)")
    s.add_argument("selectors", nargs="+", metavar="SEL")
    s.add_argument("--yes", "-y", action="store_true")
    s = state_command("resolve", "settle an unknown outcome")
    s.add_argument("selectors", nargs=1, metavar="SEL")
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--submitted", action="store_true")
    group.add_argument("--not-submitted", action="store_true")
    s.add_argument("--run-id", metavar="ID")
    s.add_argument("--yes", "-y", action="store_true")
    state_command("unlock", "remove a stale lock (for filesystems without flock)")

    p = command("status", "fetch the current result of runs in state")
    p.add_argument("selectors", nargs="*", metavar="SEL")
    p.add_argument("--json", action="store_true")
    p.add_argument("--detailed-exitcode", action="store_true")
    p.add_argument("--read-timeout", type=duration, default="60s", metavar="DUR")
    p.add_argument(
        "--lock-timeout",
        type=duration,
        default="30s",
        metavar="DUR",
        help="how long to wait for the lock to record final statuses (default 30s)",
    )

    p = command("emulator", "serve a local emulator of the Run API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--api-key", default=None)
    p.add_argument("--complete-after", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--latency", type=int, default=0, metavar="MS")
    p.add_argument(
        "--fail",
        action="extend",
        nargs="+",
        default=[],
        metavar="STATUS:RATE",
        help="inject failures, e.g. --fail 429:0.1 503:0.05 (repeatable)",
    )
    p.add_argument("--result", default=None, metavar="failed:RATE,canceled:RATE")
    p.add_argument("--seed", type=int, default=None, metavar="N")
    return parser
