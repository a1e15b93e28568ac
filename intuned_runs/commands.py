"""The handlers of the commands that work on files only: validate, render, plan, schema, state, emulator.

Each turns arguments into one library call and hands what it returns to the reporter (apply, watch and
status, which talk to the Run API, are in run_commands.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from intuned_runs.cli import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, settings_from
from intuned_runs.errors import ProblemsFound
from intuned_runs.output import Output
from intuned_runs.problems import errors_in


def _repository(args: argparse.Namespace, out: Output):  # type: ignore[no-untyped-def]
    from intuned_runs.repository import Repository

    repository = Repository(settings_from(args))
    out.redactor = repository.redactor()
    return repository


def report_problems(out: Output, problems: list, fmt: str, *, to_stdout: bool) -> None:  # type: ignore[type-arg]
    from intuned_runs.report import problems_text

    for line in problems_text(problems, fmt):
        (out.out if to_stdout else out.err)(line)


def _validated(args: argparse.Namespace, out: Output):  # type: ignore[no-untyped-def]
    """Every command but validate: the same validation first, problems on stderr; stop on errors."""
    from intuned_runs.report import resolve_format, strictly

    repository = _repository(args, out)
    desired = repository.desired
    problems = strictly(desired.problems, getattr(args, "strict", False))
    report_problems(out, problems, resolve_format("auto"), to_stdout=False)
    if errors_in(problems):
        return repository, None
    return repository, desired


def validate(args: argparse.Namespace, out: Output) -> int:
    from intuned_runs.errors import ProblemsFound
    from intuned_runs.report import resolve_format, strictly

    fmt = resolve_format(args.format)
    runs = 0
    try:  # config problems are reported like any other, in the chosen format (docs/validation.md)
        repository = _repository(args, out)
        problems = list(repository.desired.problems)
        runs = len(repository.desired.runs)
        repository.load_state()  # a state that cannot be trusted is an error for every command (docs/apply.md)
    except ProblemsFound as e:
        problems = list(e.problems)
    problems = strictly(problems, args.strict)
    report_problems(out, problems, fmt, to_stdout=True)
    if fmt == "text" and not problems and not out.quiet:
        out.err(f"{runs} runs valid.")
    return EXIT_ERROR if errors_in(problems) else EXIT_OK


def render(args: argparse.Namespace, out: Output) -> int:
    from intuned_runs import selection
    from intuned_runs.report import render_json, render_yaml

    repository, desired = _validated(args, out)
    if desired is None:
        return EXIT_ERROR
    repository.load_state()  # a state that cannot be trusted is an error for every command (docs/apply.md)
    selectors = selection.parse(args.selectors)
    selection.check_all_match(selectors, ((r.key, r.labels) for r in desired.runs), "selector")
    runs = [r for r in desired.runs if not selectors or selection.any_match(selectors, r.key, r.labels)]
    out.out(render_json(runs) if args.json else render_yaml(runs))
    return EXIT_OK


def schema(args: argparse.Namespace, out: Output) -> int:
    from intuned_runs import schema as schema_module
    from intuned_runs.config import Config

    config = Config(settings_from(args))
    spec = args.spec
    if spec and not spec.startswith(("http://", "https://")) and args.chdir:
        spec = str(Path(args.chdir) / spec)  # -C DIR: as if started in DIR (docs/configuration.md)
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


def emulator(args: argparse.Namespace, out: Output) -> int:
    import signal
    import threading

    from intuned_runs import emulator as emulator_module

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return emulator_module.run_from_args(args, stop, out.err)


def _workspace_warning(repository, state, out: Output) -> None:  # type: ignore[no-untyped-def]
    """plan warns (apply refuses) when the state belongs to another workspace (docs/apply.md)."""
    from intuned_runs.errors import ProblemsFound

    try:
        workspace = repository.config.workspace_id
    except ProblemsFound:
        # An unset or malformed workspace does not stop plan (docs/configuration.md); apply reports it. The
        # --env / INTUNED_WORKSPACE_ID conflict (a ConfigError) does stop it: it is never silent.
        return
    if workspace and state.workspace_id and workspace != state.workspace_id:
        out.err(
            f"warning: the state belongs to workspace {state.workspace_id}, but the workspace is {workspace}: "
            "apply will refuse"
        )


def plan(args: argparse.Namespace, out: Output) -> int:
    from intuned_runs import planfile
    from intuned_runs.report import blocked_lines, plan_dict, plan_markdown, plan_text

    repository, desired = _validated(args, out)
    if desired is None:
        return EXIT_ERROR
    state = repository.load_state()
    _workspace_warning(repository, state, out)
    result = repository.plan(
        state, desired, select=tuple(args.select), force=tuple(args.force), retry_unknown=args.retry_unknown
    )
    for line in blocked_lines(result):
        out.err(line)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        out.out(json.dumps(plan_dict(result), indent=2, ensure_ascii=False))
    elif fmt == "markdown":
        out.out(plan_markdown(result))
    else:
        for line in plan_text(result, out.verbose):
            out.out(line)
    if args.out:
        config = repository.config
        try:
            workspace = config.workspace_id
        except ProblemsFound:  # an unresolvable workspace is recorded as none; apply re-checks it
            workspace = None
        planfile.save(
            Path(args.out),
            result,
            state,
            env=config.env_name,
            vars=settings_from(args).vars,
            workspace_id=workspace,
            state_path=config.relative(config.state_path),
            schema_version=repository.schema_version,
            redactor=out.redactor,
        )
        out.info(f"Saved the plan to {args.out}: apply it with 'intuned-runs apply {args.out}'.")
    if args.detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def state(args: argparse.Namespace, out: Output) -> int:
    from intuned_runs import state_commands

    handler = getattr(state_commands, args.state_command)
    return int(handler(args, out))
