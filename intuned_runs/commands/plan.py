"""`intuned-runs plan` (docs/plan.md): what apply would submit, and why; optionally saved for apply."""

from __future__ import annotations

import argparse
from pathlib import Path

from intuned_runs import planfile
from intuned_runs.commands.common import backend_of, load_state, open_repository, settings_from, validated
from intuned_runs.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from intuned_runs.plan import plan_runs
from intuned_runs.report.output import Output
from intuned_runs.report.plan import blocked_lines, plan_document, workspace_warning


def run(args: argparse.Namespace, out: Output) -> int:
    if args.since is not None:  # no state, no workspace: a mode of its own (docs/plan.md)
        from intuned_runs.commands import plan_since

        return plan_since.run(args, out)
    settings = settings_from(args)
    repository = open_repository(settings, out)
    desired = validated(repository, out, strict=args.strict)
    if desired is None:
        return EXIT_ERROR
    config = repository.config
    backend = backend_of(repository, out)
    state = load_state(backend)
    workspace = config.workspace_if_known()
    warning = workspace_warning(state.workspace_id, workspace)
    if warning:
        out.err(warning)
    plan = plan_runs(
        desired,
        state,
        repository.schema,
        select=tuple(args.select),
        force=tuple(args.force),
        retry_unknown=args.retry_unknown,
    )
    for line in blocked_lines(plan):
        out.err(line)
    for line in plan_document(plan, "json" if args.json else args.format, out.verbose):
        out.out(line)
    if args.out:
        planfile.save(
            Path(args.out),
            plan,
            state,
            env=config.env_name,
            vars=settings.vars,
            workspace_id=workspace,
            state_path=backend.display,
            schema_version=repository.schema_version,
            redactor=out.redactor,
        )
        out.info(f"Saved the plan to {args.out}: apply it with 'intuned-runs apply {args.out}'.")
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK
