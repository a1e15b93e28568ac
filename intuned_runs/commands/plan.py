"""`intuned-runs plan` (docs/plan.md): what apply would submit, and why; optionally saved for apply."""

from __future__ import annotations

import argparse
from pathlib import Path

from intuned_runs import planfile
from intuned_runs.commands.common import (
    backend_of,
    context_of,
    load_for_plan,
    open_repository,
    report_problems,
    selection_from,
    settings_from,
)
from intuned_runs.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, ProblemsFound
from intuned_runs.plan import plan_runs
from intuned_runs.problems import Problem, errors_in, strictly
from intuned_runs.report.output import Output
from intuned_runs.report.plan import (
    Context,
    blocked_lines,
    in_progress_lines,
    plan_json,
    plan_text,
    workspace_warning,
)
from intuned_runs.report.problems import resolve_format


def run(args: argparse.Namespace, out: Output) -> int:
    if args.since is not None:  # no state, no workspace: a mode of its own (docs/plan.md)
        from intuned_runs.commands import plan_since

        return plan_since.run(args, out)
    settings = settings_from(args)
    fmt = "json" if args.json else args.format
    context = Context(settings.env, None, None)
    try:
        repository = open_repository(settings, out, selection=selection_from(args), sends=False)
        backend = backend_of(repository, out)
        context = context_of(repository, backend)
        out.info(context.line())
        problems = strictly(repository.desired.problems, args.strict)
    except ProblemsFound as e:  # the config itself: reported like any problem
        problems = list(e.problems)
    report_problems(out, problems, resolve_format("auto"), to_stdout=False)
    if errors_in(problems):
        _failed(out, fmt, context, problems)
        return EXIT_ERROR
    config, desired = repository.config, repository.desired
    state, holder = load_for_plan(backend)
    warning = workspace_warning(state.workspace_id, context.workspace_id)
    if warning:
        out.warning(warning)
    plan = plan_runs(
        desired,
        state,
        repository.schema,
        selection=repository.selection,
        retry_unknown=args.retry_unknown,
        applying=holder is not None,
    )
    for line in [*in_progress_lines(plan, holder), *blocked_lines(plan)]:
        out.err(line)
    if fmt == "json":
        out.out(plan_json(plan, context, problems))
    elif fmt == "markdown":
        from intuned_runs.report.markdown import plan_markdown  # for pull requests only

        out.out(plan_markdown(plan, context, problems))
    else:
        for line in plan_text(plan, out.verbose, out.paint, quiet=out.quiet):
            out.out(line)
    if args.out:
        planfile.save(
            Path(args.out),
            plan,
            state,
            env=config.env_name,
            vars=settings.vars,
            workspace_id=context.workspace_id,
            state_path=backend.display,
            schema_version=repository.schema_version,
            redactor=out.redactor,
        )
        out.info(f"Saved the plan to {args.out}: apply it with 'intuned-runs apply {args.out}'.")
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _failed(out: Output, fmt: str, context: Context, problems: list[Problem]) -> None:
    """Validation failed: JSON and markdown still print a document holding the problems and no runs, so a
    pull-request comment shows why (docs/plan.md, Markdown output)."""
    if fmt == "json":
        out.out(plan_json(None, context, problems))
    elif fmt == "markdown":
        from intuned_runs.report.markdown import failed_markdown

        out.out(failed_markdown(context, problems))
