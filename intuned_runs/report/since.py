"""A plan since a git revision (docs/plan.md, Plan since a git revision): what it is made against, and its
JSON and markdown, which name the revision where a plan names its workspace and state."""

from __future__ import annotations

from collections.abc import Sequence

from intuned_runs.plan import Plan
from intuned_runs.problems import Problem
from intuned_runs.report.markdown import failed_markdown, plan_markdown
from intuned_runs.report.plan import Context, plan_json


def context(ref: str, env: str | None) -> Context:
    """No workspace and no state are read; the revision is."""
    return Context(env, None, None, since=ref)


def context_line(ref: str, env: str | None) -> str:
    shown = f" (env {env})" if env else ""
    return f"Planning against git revision {ref}{shown} with no state"


def since_json(plan: Plan | None, ref: str, env: str | None, problems: Sequence[Problem]) -> str:
    return plan_json(plan, context(ref, env), problems)


def since_markdown(plan: Plan, ref: str, env: str | None) -> str:
    return plan_markdown(plan, context(ref, env))


def since_failed_markdown(ref: str, env: str | None, problems: Sequence[Problem]) -> str:
    return failed_markdown(context(ref, env), problems)
