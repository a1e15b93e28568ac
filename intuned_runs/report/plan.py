"""Plans as text, JSON or markdown, and watch's plan lines (docs/plan.md, Text output)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from intuned_runs.plan import SUMMARY_KEYS, Plan, PlannedRun


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def change_text(change: Mapping[str, Any]) -> str:
    before = _value(change["before"]) if "before" in change else "(absent)"
    after = _value(change["after"]) if "after" in change else "(absent)"
    return f"{change['path']}: {before} → {after}"


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, ensure_ascii=False)


def summary_line(plan: Plan) -> str:
    s = plan.summary
    if not (s["submit"] or s["forget"] or s["blocked"]):
        return f"No changes. {s['unchanged']} runs up to date."
    return (
        f"Plan: {s['submit']} to submit ({s['new']} new, {s['changed']} changed, {s['requested']} requested, "
        f"{s['always']} always), {s['unchanged']} unchanged, {s['forget']} to forget, {s['blocked']} blocked."
    )


def plan_run_lines(run: PlannedRun) -> list[str]:
    where = f"  {run.source.file}:{run.source.line}" if run.source else ""
    moved = f"  → moved from {run.moved_from}" if run.moved_from else ""
    lines = [f"{run.symbol} {run.key}  {run.reason}{where}{moved}"]
    lines += [f"    {change_text(c)}" for c in run.changes]
    return lines


def plan_text(plan: Plan, verbose: bool) -> list[str]:
    lines: list[str] = []
    for run in plan.runs:
        if verbose or run.action != "unchanged" or run.moved_from:
            lines += plan_run_lines(run)
    if lines:
        lines.append("")
    lines.append(summary_line(plan))
    return lines


def watch_plan_lines(plan: Plan, previous: Plan | None, verbose: bool) -> list[str]:
    """watch (docs/watch.md): the whole plan at start; after a batch only runs whose action changed."""
    if previous is None:
        return plan_text(plan, verbose)
    before = {r.key: (r.action, r.reason) for r in previous.runs}
    lines: list[str] = []
    for run in plan.runs:
        if before.pop(run.key, None) != (run.action, run.reason):
            lines += plan_run_lines(run)
    lines += [f"  {key}  no longer planned" for key in sorted(before)]
    lines.append(summary_line(plan))
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def plan_markdown(plan: Plan) -> str:
    s = plan.summary
    rows = [
        "### intuned-runs plan",
        "",
        summary_line(plan),
        "",
        "| " + " | ".join(SUMMARY_KEYS) + " |",
        "|" + "---:|" * len(SUMMARY_KEYS),
        "| " + " | ".join(str(s[k]) for k in SUMMARY_KEYS) + " |",
        "",
    ]
    for run in plan.runs:
        if run.action == "unchanged" and not run.moved_from:
            continue
        where = f" — `{run.source.file}:{run.source.line}`" if run.source else ""
        rows.append(
            f"<details><summary><code>{run.symbol}</code> <code>{_md(run.key)}</code> "
            f"{run.action} / {run.reason}{_md(where)}</summary>"
        )
        rows.append("")
        if run.changes:
            rows += ["```diff", *(f"{_md(change_text(c))}" for c in run.changes), "```"]
        else:
            rows += ["```json", json.dumps(run.request, indent=2, ensure_ascii=False), "```"]
        rows += ["", "</details>", ""]
    return "\n".join(rows).rstrip("\n")


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


def workspace_warning(state_workspace: str | None, workspace: str | None) -> str | None:
    """plan warns (apply refuses) when the state belongs to another workspace (docs/apply.md, Workspace)."""
    if workspace and state_workspace and workspace != state_workspace:
        return (
            f"warning: the state belongs to workspace {state_workspace}, but the workspace is {workspace}: "
            "apply will refuse"
        )
    return None


def plan_document(plan: Plan, fmt: str, verbose: bool) -> list[str]:
    """The plan in the chosen format (text, json, markdown), as lines for stdout."""
    if fmt == "json":
        return [plan_json(plan)]
    if fmt == "markdown":
        return [plan_markdown(plan)]
    return plan_text(plan, verbose)
