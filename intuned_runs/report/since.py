"""A plan since a git revision (docs/plan.md, Plan since a git revision): what it is made against, and its
JSON and markdown, which name the revision where a plan names its workspace and state."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from intuned_runs import FORMAT_VERSION
from intuned_runs.plan import Plan
from intuned_runs.problems import Problem
from intuned_runs.report.plan import plan_markdown


def context(ref: str, env: str | None) -> dict[str, Any]:
    """The JSON `context`: no workspace and no state are read, the revision is."""
    return {"env": env, "workspace_id": None, "state": None, "since": ref}


def context_line(ref: str, env: str | None) -> str:
    shown = f" (env {env})" if env else ""
    return f"Planning against git revision {ref}{shown} with no state"


def since_json(plan: Plan, ref: str, env: str | None, problems: Sequence[Problem]) -> str:
    document = {
        "format_version": FORMAT_VERSION,
        "context": context(ref, env),
        "summary": plan.summary,
        "moves": [{"from": old, "to": new} for old, new in plan.moves],
        "problems": [p.as_dict() for p in problems],
        "runs": [{**r.to_json(), "moved_from": r.moved_from} for r in plan.runs],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def since_markdown(plan: Plan, ref: str, env: str | None) -> str:
    shown = f"`{env}`" if env else "(none)"
    heading = f"### intuned-runs plan: env {shown}, since git revision `{ref}` (no state)"
    body = plan_markdown(plan).split("\n", 1)[1]  # the plan's own heading names a workspace and state
    return f"{heading}\n{body}"
