"""`intuned-runs plan --since REF` (docs/plan.md, Plan since a git revision): the difference the change makes
to the definitions, from git history. It opens no state, takes no lock, needs no workspace and no secret."""

from __future__ import annotations

import argparse

from intuned_runs.commands.common import open_repository, settings_from, validated
from intuned_runs.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, UsageError
from intuned_runs.problems import errors_in, strictly
from intuned_runs.report.output import Output
from intuned_runs.report.plan import plan_text
from intuned_runs.report.since import context_line, since_failed_markdown, since_json, since_markdown
from intuned_runs.report.style import plural
from intuned_runs.revision import desired_at
from intuned_runs.selection import Selection
from intuned_runs.since import plan_since

REFUSED = (("force", "--run"), ("retry_unknown", "--retry-unknown"), ("out", "--out"))


def run(args: argparse.Namespace, out: Output) -> int:
    ref: str = args.since
    for attribute, flag in REFUSED:
        if getattr(args, attribute):
            raise UsageError(f"{flag} cannot be used with --since: a plan since a git revision submits nothing")
    selection = Selection.of(args.select, (), args.exclude)
    repository = open_repository(settings_from(args), out, selection=selection)
    config = repository.config
    before = desired_at(repository, ref)  # first: an unknown REF is the one line shown
    out.info(context_line(ref, config.env_name))
    if errors_in(list(before.problems)):
        errors = sum(1 for p in before.problems if p.severity == "error")
        out.err(
            f"warning: the run files at {ref} have {plural(errors, 'error')}: the runs that did not load there"
            " show as new"
        )
    fmt = "json" if args.json else args.format
    desired = validated(repository, out, strict=args.strict)
    if desired is None:  # JSON and markdown still print a document holding the problems (docs/plan.md)
        problems = strictly(repository.desired.problems, args.strict)
        if fmt == "json":
            out.out(since_json(None, ref, config.env_name, problems))
        elif fmt == "markdown":
            out.out(since_failed_markdown(ref, config.env_name, problems))
        return EXIT_ERROR
    plan = plan_since(before, desired, repository.schema, schema_version=repository.schema_version, selection=selection)
    if fmt == "json":
        out.out(since_json(plan, ref, config.env_name, desired.problems))
    elif fmt == "markdown":
        out.out(since_markdown(plan, ref, config.env_name))
    else:
        for line in plan_text(plan, out.verbose, out.paint, quiet=out.quiet):
            out.out(line)
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK
