"""Plans as text and JSON, the context line, and watch's plan lines (docs/plan.md, Text output; and
docs/plan.md, JSON output); markdown is in `report.markdown`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from msgspec import Struct

from intuned_runs import FORMAT_VERSION
from intuned_runs.plan import IN_PROGRESS, Plan, PlannedRun
from intuned_runs.problems import Problem
from intuned_runs.report.style import PLAIN, SYMBOL_COLOURS, Palette, plural
from intuned_runs.state.lock import Holder


class Context(Struct, frozen=True):
    """What a plan is made against (docs/plan.md): shown before it, and in its JSON and markdown."""

    env: str | None
    workspace_id: str | None
    state: str | None  # the backend's display: a path, or a URL with its password masked
    since: str | None = None  # plan --since REF: the git revision instead of a workspace and state

    def to_json(self) -> dict[str, Any]:
        document = {"env": self.env, "workspace_id": self.workspace_id, "state": self.state}
        return document if self.since is None else {**document, "since": self.since}

    def line(self) -> str:
        """`Planning against workspace WS (env NAME) with state STATE`: so `apply prod-plan.json` says prod."""
        env = f" (env {self.env})" if self.env else ""
        return f"Planning against workspace {self.workspace_id or '(not set)'}{env} with state {self.state or '(none)'}"


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def change_text(change: Mapping[str, Any], paint: Palette = PLAIN) -> str:
    """`PATH: BEFORE → AFTER`, the old value red and the new green on a colour terminal."""
    before = paint(_value(change["before"]), "red") if "before" in change else "(absent)"
    after = paint(_value(change["after"]), "green") if "after" in change else "(absent)"
    return f"{change['path']}: {before} → {after}"


def summary_line(plan: Plan) -> str:
    """Counts and nouns that agree; unrequested manual runs counted apart from unchanged ones."""
    s = plan.summary
    manual = f", {s['manual']} manual" if s["manual"] else ""
    if not (s["submit"] or s["forget"] or s["blocked"]):
        return f"No changes. {plural(s['unchanged'], 'run')} up to date{manual}."
    return (
        f"Plan: {s['submit']} to submit ({s['new']} new, {s['changed']} changed, {s['requested']} requested, "
        f"{s['always']} always), {s['unchanged']} unchanged{manual}, {s['forget']} to forget, {s['blocked']} blocked."
    )


def plan_run_lines(run: PlannedRun, paint: Palette = PLAIN) -> list[str]:
    where = f"  {run.source.file}:{run.source.line}" if run.source else ""
    moved = f"  → moved from {run.moved_from}" if run.moved_from else ""
    head = paint(f"{run.symbol} {run.key}", SYMBOL_COLOURS.get(run.symbol))
    lines = [f"{head}  {run.reason}{where}{moved}"]
    lines += [f"    {change_text(c, paint)}" for c in run.changes]
    return lines


def shown(run: PlannedRun, verbose: bool) -> bool:
    """Runs the text and markdown plans list: those to act on, renamed ones, in-progress ones, all with -v."""
    return verbose or run.action != "unchanged" or run.moved_from is not None or run.reason == IN_PROGRESS


def plan_text(plan: Plan, verbose: bool, paint: Palette = PLAIN, *, quiet: bool = False) -> list[str]:
    """One line per run that is not unchanged, then the summary; with -q only the summary (docs/plan.md)."""
    if quiet:
        return [summary_line(plan)]
    lines: list[str] = []
    for run in plan.runs:
        if shown(run, verbose):
            lines += plan_run_lines(run, paint)
    if lines:
        lines.append("")
    lines.append(summary_line(plan))
    return lines


def watch_plan_lines(plan: Plan, previous: Plan | None, verbose: bool, paint: Palette = PLAIN) -> list[str]:
    """watch (docs/watch.md): the whole plan at start; after a batch only runs whose action changed."""
    if previous is None:
        return plan_text(plan, verbose, paint)
    before = {r.key: (r.action, r.reason) for r in previous.runs}
    lines: list[str] = []
    for run in plan.runs:
        if before.pop(run.key, None) != (run.action, run.reason):
            lines += plan_run_lines(run, paint)
    lines += [f"  {key}  no longer planned" for key in sorted(before)]
    lines.append(summary_line(plan))
    return lines


def plan_json(plan: Plan | None, context: Context, problems: Sequence[Problem]) -> str:
    """`plan --json` (docs/plan.md, JSON output). With no plan (validation failed): the problems, no runs."""
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "context": context.to_json(),
        "summary": plan.summary if plan is not None else None,
        "moves": [{"from": old, "to": new} for old, new in plan.moves] if plan is not None else [],
        "problems": [p.as_dict() for p in problems],
        "runs": [r.to_json() for r in plan.runs] if plan is not None else [],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def blocked_lines(plan: Plan) -> list[str]:
    lines = []
    for run in plan.blocked:
        unknown = run.entry.unknown if run.entry is not None else None
        detail = f" since {unknown.since} ({unknown.reason})" if unknown else ""
        lines.append(
            f"blocked: {run.key}: outcome unknown{detail}; check it in Intuned, then "
            f"'intuned-runs state resolve {run.key} --submitted|--not-submitted', "
            "or plan with --retry-unknown or --run"
        )
    return lines


def in_progress_lines(plan: Plan, holder: Holder | None) -> list[str]:
    """Runs another apply is sending right now: neither blocked nor to resolve (docs/plan.md)."""
    if holder is None:
        return []
    running = f"an apply is running (pid {holder.pid} on {holder.host} since {holder.since})"
    return [f"in progress: {running}: {run.key}" for run in plan.in_progress]


def workspace_warning(state_workspace: str | None, workspace: str | None) -> str | None:
    """plan warns (apply refuses) when the state belongs to another workspace (docs/apply.md, Workspace)."""
    if workspace and state_workspace and workspace != state_workspace:
        return f"the state belongs to workspace {state_workspace}, but the workspace is {workspace}: apply will refuse"
    return None
