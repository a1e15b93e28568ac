"""The one argparse tree of every command and option (docs/cli.md). Every command has an example of its own
(each `state` subcommand too) and every option says its default. It imports no heavy module, so
`--version` and `--help` stay fast; shell completion (`completion`) is generated from this same tree."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from intuned_runs.parsing import Parser, duration, non_negative, positive

PROG = "intuned-runs"
EXAMPLES = {
    "init": "mkdir my-runs && cd my-runs && git init && intuned-runs init && intuned-runs apply --emulator --yes",
    "validate": "intuned-runs validate --strict --format github",
    "render": "intuned-runs render 'pricing-scraper/*' --json",
    "plan": "intuned-runs plan --env prod --select 'label:team=pricing' --exclude daily-apac --out plan.json",
    "apply": "INTUNED_API_KEY=... intuned-runs apply --yes   |   intuned-runs apply plan.json",
    "watch": "intuned-runs watch --apply --emulator --select 'label:team=pricing'",
    "status": "intuned-runs status 'pricing-scraper/*' --json",
    "schema": "intuned-runs schema pull --check",
    "schema pull": "intuned-runs schema pull --spec ./openapi/intuned-run-start.yaml --check",
    "schema export": "intuned-runs schema export --out schemas",
    "state": "intuned-runs state list --all",
    "state list": "intuned-runs state list --all --json",
    "state show": "intuned-runs state show pricing-scraper/daily-eu --json",
    "state mv": "intuned-runs state mv pricing-scraper/us-daily pricing-scraper/daily-us",
    "state forget": "intuned-runs state forget 'legacy/*' --yes",
    "state resolve": "intuned-runs state resolve portal/orders --submitted --run-id ru_V1StGXR8_Z5jdHi6B-myT --yes",
    "state adopt": "intuned-runs state adopt catalog/full-export --run-id ru_V1StGXR8_Z5jdHi6B-myT --yes",
    "state migrate": "intuned-runs state migrate --to 'postgresql://ci@db.internal/intuned?name=prod' --yes",
    "state unlock": "intuned-runs state unlock",
    "emulator": "intuned-runs emulator --port 8787 --fail 429:0.1 503:0.05 --result failed:0.2 --seed 7 -v",
    "completion": "intuned-runs completion bash > ~/.local/share/bash-completion/completions/intuned-runs",
}
SELECTOR_HELP = "SEL: a glob on PROJECT/NAME (on NAME when it has no '/'), label:KEY=VALUE or label:KEY!=VALUE"


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Global options, accepted before or after the command name (docs/cli.md, Global options)."""
    default: Any = argparse.SUPPRESS if suppress else None
    flag: Any = argparse.SUPPRESS if suppress else False
    group = parser.add_argument_group("global options")
    group.add_argument(
        "-C",
        dest="chdir",
        metavar="DIR",
        default=default,
        help="run as if started in DIR (default: the current directory)",
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="the config file (default: intuned-runs.yaml, found walking up to the folder holding .git)",
    )
    group.add_argument(
        "--env",
        metavar="NAME",
        default=default,
        help="select an environment of the config (default: INTUNED_RUNS_ENV, else none)",
    )
    group.add_argument(
        "--var",
        # After the command name they are collected apart, or the subcommand's list would replace
        # the one given before it (global options go before or after the command: docs/cli.md, Global options).
        dest="vars_after" if suppress else "vars",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="set vars.KEY; VALUE is read as a YAML scalar (repeatable; default: the config's vars)",
    )
    group.add_argument(
        "--workspace-id",
        metavar="UUID",
        default=default,
        help="the workspace (default: INTUNED_WORKSPACE_ID, else the config's workspace_id)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default,
        help="the Run API's base URL, for every command that talks to it (default: INTUNED_BASE_URL, else the "
        "config's base_url, else https://app.intuned.io/api/v1/workspace)",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=flag, help="also unchanged runs and HTTP timings (default: off)"
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=flag, help="only summaries and problems (default: off)"
    )
    group.add_argument(
        "--debug", action="store_true", default=flag, help="log HTTP requests and responses, redacted (default: off)"
    )
    group.add_argument(
        "--no-color",
        action="store_true",
        default=flag,
        help="no colour, like NO_COLOR (default: colour on a terminal, or with FORCE_COLOR)",
    )


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="SEL",
        help="limit the plan to matching runs, without forcing them (repeatable, OR-ed; default: every run). "
        + SELECTOR_HELP,
    )
    parser.add_argument(
        "--run",
        dest="force",
        action="append",
        default=[],
        metavar="SEL",
        help="force matching runs to be submitted, manual ones included (repeatable; default: none). "
        "--run X alone plans only X",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="SEL",
        help="remove matching runs from the planned set, after --select and --run (repeatable; default: none)",
    )


def _lock_timeout(parser: argparse.ArgumentParser, default: str = "0s") -> None:
    wait = "fail at once" if default == "0s" else default
    parser.add_argument(
        "--lock-timeout",
        type=duration,
        default=default,
        metavar="DUR",
        help=f"wait up to DUR (90s, 15m, 1h) for the state's lock (default: {wait})",
    )


def _state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="STATE",
        help="the state: a path, postgresql://… or s3://… (default: the config's state, "
        ".intuned-runs/state.json, or .intuned-runs/NAME.json with --env NAME)",
    )


def _read_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-timeout", type=duration, default="60s", metavar="DUR", help="wait up to DUR per response (default: 60s)"
    )


def _flag(parser: argparse._ActionsContainer, *names: str, help: str) -> None:
    parser.add_argument(*names, action="store_true", help=f"{help} (default: off)")


def _subcommand(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    help_text: str,
    example_key: str,
    description: str = "",
) -> argparse.ArgumentParser:
    """A command with its help, an example of its own (docs/cli.md) and the global options."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=textwrap.fill(f"{help_text[0].upper()}{help_text[1:]}. {description}".strip(), 100),
        epilog=f"Example:\n  {EXAMPLES[example_key]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _globals(parser, suppress=True)
    return parser


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Intuned runs as code: validate, plan and apply Run API definitions kept in Git.",
        epilog="Example:\n  intuned-runs plan && intuned-runs apply --yes\n\nTry it with no account:\n"
        "  intuned-runs init && intuned-runs apply --emulator --yes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and the schema's version, then exit")
    _globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, help_text: str, description: str = "") -> argparse.ArgumentParser:
        return _subcommand(sub, name, help_text, name, description)

    p = command(
        "init",
        "start a repository: a commented config, example runs and .intuned-runs/.gitignore",
        "It never overwrites a file.",
    )
    p.add_argument("directory", nargs="?", default=".", metavar="DIR", help="where (default: the current directory)")

    p = command("validate", "load, render and validate every run file")
    _state(p)
    _flag(p, "--strict", help="treat warnings as errors")
    p.add_argument(
        "--format",
        choices=("text", "json", "github", "auto"),
        default="auto",
        help="how to print problems; auto is github when GITHUB_ACTIONS=true, else text (default: auto)",
    )

    p = command("render", "print the rendered runs, secrets as placeholders")
    p.add_argument(
        "selectors", nargs="*", metavar="SEL", help=f"only matching runs (default: every run). {SELECTOR_HELP}"
    )
    _flag(p, "--json", help="one JSON document instead of YAML")
    _state(p)

    p = command(
        "plan",
        "show what apply would submit, and why",
        "The planned set is the --select matches (every run without --select and --run) plus the --run "
        "matches, minus the --exclude matches: so --run X alone plans only X.",
    )
    _selection(p)
    _state(p)
    p.add_argument("--out", metavar="FILE", help="save the plan for 'intuned-runs apply FILE' (default: not saved)")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text", help="the output (default: text)")
    _flag(p, "--json", help="the same as --format json")
    _flag(p, "--detailed-exitcode", help="exit 2 when something would be submitted or forgotten")
    _flag(p, "--retry-unknown", help="plan runs whose outcome is unknown for submission")
    _flag(p, "--strict", help="treat validation warnings as errors")
    p.add_argument(
        "--since",
        metavar="REF",
        help="plan the difference from git revision REF, with no state and no secrets (default: off)",
    )

    p = command(
        "apply",
        "submit the runs that changed or were requested",
        "Selection works as in plan: --run X alone plans and submits only X.",
    )
    p.add_argument(
        "planfile", nargs="?", metavar="PLANFILE", help="apply exactly a plan saved with plan --out (default: plan now)"
    )
    _selection(p)
    _state(p)
    _flag(p, "--yes", "-y", help="do not ask for confirmation")
    p.add_argument(
        "--concurrency", type=positive, default=8, metavar="N", help="requests in flight at once (default: 8)"
    )
    p.add_argument(
        "--max-submit",
        type=non_negative,
        default=None,
        metavar="N",
        help="without a TTY, refuse plans submitting more runs (default: the config's max_submit, 100)",
    )
    _flag(p, "--wait", help="poll each submitted run until it is final")
    p.add_argument(
        "--timeout", type=duration, default="30m", metavar="DUR", help="how long --wait waits (default: 30m)"
    )
    _flag(p, "--retry-unknown", help="submit runs whose outcome is unknown again")
    _lock_timeout(p)
    _read_timeout(p)
    _flag(p, "--json", help="print one JSON document; never prompts")
    _flag(p, "--detailed-exitcode", help="exit 2 instead of 0 when anything was submitted or forgotten")
    _flag(p, "--strict", help="treat validation warnings as errors")
    _flag(p, "--emulator", help="apply to a built-in emulator, with its own state: no account needed")

    p = command("watch", "keep a directory planned (or applied) as it is edited")
    _selection(p)
    _state(p)
    _flag(p, "--apply", help="apply after every change, without a prompt")
    p.add_argument(
        "--concurrency", type=positive, default=8, metavar="N", help="requests in flight at once (default: 8)"
    )
    p.add_argument(
        "--max-submit",
        type=non_negative,
        default=None,
        metavar="N",
        help="without a TTY, refuse batches submitting more runs (default: the config's max_submit, 100)",
    )
    _lock_timeout(p)
    _read_timeout(p)
    _flag(p, "--emulator", help="apply to a built-in emulator, with its own state")

    p = command("schema", "pull the request schema from the OpenAPI description, export the editor schemas")
    schema_sub = p.add_subparsers(dest="schema_command", metavar="pull|export", parser_class=Parser, required=True)
    pull = _subcommand(schema_sub, "pull", "extract the request-body schema into schemas/", "schema pull")
    pull.add_argument(
        "--spec",
        metavar="PATH_OR_URL",
        help="the OpenAPI 3.1 description (default: the vendored schemas/openapi/run-start.yaml)",
    )
    _flag(pull, "--check", help="write nothing; exit 1 if the file is missing or out of date")
    export = _subcommand(
        schema_sub, "export", "write the JSON Schemas of run files and the config, for editors", "schema export"
    )
    export.add_argument(
        "--out", metavar="DIR", help="where to write runs-file.schema.json and config.schema.json (default: schemas)"
    )

    _state_commands(command("state", "inspect and edit the state"))

    p = command("status", "fetch the current result of runs in the state")
    p.add_argument("selectors", nargs="*", metavar="SEL", help=f"only matching entries (default: all). {SELECTOR_HELP}")
    _flag(p, "--json", help="one JSON document")
    _flag(p, "--detailed-exitcode", help="exit 2 when a run failed or was canceled")
    _state(p)
    _read_timeout(p)
    _lock_timeout(p, "30s")

    _emulator_options(command("emulator", "serve a local emulator of the Run API on loopback"))

    p = command("completion", "print a shell completion script")
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete for")
    return parser


def _state_commands(parser: argparse.ArgumentParser) -> None:
    state_sub = parser.add_subparsers(dest="state_command", metavar="SUBCOMMAND", parser_class=Parser, required=True)

    def state_command(name: str, help_text: str, *, writes: bool = True) -> argparse.ArgumentParser:
        s = _subcommand(state_sub, name, help_text, f"state {name}")
        _state(s)
        if writes:
            _lock_timeout(s)
        return s

    s = state_command("list", "list the state's entries, key first", writes=False)
    _flag(s, "--all", help="include tombstones")
    _flag(s, "--json", help="one JSON document")
    s = state_command("show", "show one entry", writes=False)
    s.add_argument("key", metavar="KEY", help="the run key, PROJECT/NAME")
    _flag(s, "--json", help="one JSON document")
    s = state_command("mv", "rename an entry, as a moved: block does")
    s.add_argument("old", metavar="OLD", help="the key it has")
    s.add_argument("new", metavar="NEW", help="the key it gets")
    s = state_command("forget", "remove entries from the state; nothing is sent")
    s.add_argument("selectors", nargs="+", metavar="SEL", help=SELECTOR_HELP)
    _flag(s, "--yes", "-y", help="do not ask for confirmation")
    s = state_command("resolve", "settle a run whose outcome is unknown")
    s.add_argument("selectors", nargs=1, metavar="SEL", help=SELECTOR_HELP)
    group = s.add_mutually_exclusive_group(required=True)
    _flag(group, "--submitted", help="it did start")
    _flag(group, "--not-submitted", help="it did not start: offer it again")
    s.add_argument("--run-id", metavar="ID", help="with --submitted: its run ID (default: none)")
    _flag(s, "--yes", "-y", help="do not ask for confirmation")
    s = state_command("adopt", "record defined runs as submitted, as they are now; nothing is sent")
    s.add_argument("selectors", nargs="+", metavar="SEL", help=SELECTOR_HELP)
    s.add_argument("--run-id", metavar="ID", help="the run ID, when one run is selected (default: none)")
    _flag(s, "--yes", "-y", help="do not ask for confirmation")
    s = state_command("migrate", "copy the state to another backend or path; the source is left as it was")
    s.add_argument(
        "--to",
        required=True,
        metavar="STATE",
        help="the target: a path, postgresql://… or s3://… (default: none, required)",
    )
    _flag(s, "--yes", "-y", help="do not ask for confirmation")
    state_command("unlock", "remove a stale lock (for filesystems without flock)", writes=False)


def _emulator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="a loopback address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8787, help="the port (default: 8787)")
    p.add_argument(
        "--api-key", default=None, metavar="KEY", help="the only x-api-key accepted (default: any non-empty key)"
    )
    p.add_argument(
        "--complete-after",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long a run takes to reach its final status (default: 2)",
    )
    p.add_argument("--latency", type=int, default=0, metavar="MS", help="latency added to every response (default: 0)")
    p.add_argument(
        "--fail",
        action="extend",
        nargs="+",
        default=[],
        metavar="STATUS:RATE",
        help="answer this share of start requests with STATUS, e.g. --fail 429:0.1 503:0.05 (default: none)",
    )
    p.add_argument(
        "--result",
        default=None,
        metavar="failed:RATE,canceled:RATE",
        help="the share of runs that end failed or canceled (default: every run completes)",
    )
    p.add_argument("--seed", type=int, default=None, metavar="N", help="seed the random choices (default: random)")
