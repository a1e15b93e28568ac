"""The plan as markdown, for a pull-request comment (docs/plan.md, Markdown output).

A heading naming env, workspace and state; the summary as a table; the renames; each run to act on in a
`<details>` block whose ```` ```diff ```` lines start with `-` (before) and `+` (after); the problems. At
most 200 runs are listed, and the whole comment stays under 65,000 characters (a pull-request comment's
limit): per-run details are cut first, then runs, and the comment says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from intuned_runs.plan import FORGET, SUMMARY_KEYS, Plan, PlannedRun
from intuned_runs.problems import Problem
from intuned_runs.report.plan import Context, shown, summary_line
from intuned_runs.report.style import plural

MAX_RUNS = 200
MAX_CHARS = 65_000


def _md(text: str) -> str:
    """Text safe in a table cell or an HTML summary."""
    return text.replace("&", "&amp;").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return f"<code>{_md(text)}</code>"


def _fence(kind: str, lines: list[str]) -> list[str]:
    """A fenced block longer than any run of backticks inside it."""
    longest = max((len(m) for line in lines for m in re.findall("`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{kind}", *lines, fence]


def heading(context: Context) -> str:
    env = f"`{context.env}`" if context.env else "(none)"
    if context.since is not None:
        return f"### intuned-runs plan: env {env}, since git revision `{context.since}` (no state)"
    workspace = f"`{context.workspace_id}`" if context.workspace_id else "(not set)"
    state = f"`{context.state}`" if context.state else "(none)"
    return f"### intuned-runs plan: env {env}, workspace {workspace}, state {state}"


def _diff(run: PlannedRun) -> list[str]:
    """What the run changes, as diff lines: field changes; a new run's request added; a removed one's gone."""
    if run.changes:
        lines = []
        for change in run.changes:
            if "before" in change:
                lines.append(f"- {change['path']}: {json.dumps(change['before'], ensure_ascii=False)}")
            if "after" in change:
                lines.append(f"+ {change['path']}: {json.dumps(change['after'], ensure_ascii=False)}")
        return _fence("diff", lines)
    body = json.dumps(run.request, indent=2, ensure_ascii=False).splitlines()
    if run.reason == "new":
        return _fence("diff", [f"+ {line}" for line in body])
    if run.action == FORGET:
        return _fence("diff", [f"- {line}" for line in body])
    return _fence("json", body)


def _summary(run: PlannedRun) -> str:
    where = f" — {_code(f'{run.source.file}:{run.source.line}')}" if run.source else ""
    moved = f" — moved from {_code(run.moved_from)}" if run.moved_from else ""
    return f"{_code(f'{run.symbol} {run.key}')} {run.action} / {run.reason}{where}{moved}"


def _run_block(run: PlannedRun, details: bool) -> list[str]:
    if not details or (run.action == "unchanged" and not run.changes):
        return [f"- {_summary(run)}"]
    return [f"<details><summary>{_summary(run)}</summary>", "", *_diff(run), "", "</details>", ""]


def _problems_table(problems: Sequence[Problem], limit: int) -> list[str]:
    rows = ["#### Problems", "", "| where | severity | path | message |", "|---|---|---|---|"]
    for p in problems[:limit]:
        where = p.file if p.line is None else f"{p.file}:{p.line}:{p.col or 1}"
        rows.append(f"| `{_md(where)}` | {p.severity} | {_md(p.path)} | {_md(p.message)} |")
    if len(problems) > limit:
        rows.append(f"\n… and {plural(len(problems) - limit, 'more problem')} (see `intuned-runs validate`).")
    return [*rows, ""]


def _summary_table(summary: Mapping[str, int]) -> list[str]:
    return [
        "| " + " | ".join(SUMMARY_KEYS) + " |",
        "|" + "---:|" * len(SUMMARY_KEYS),
        "| " + " | ".join(str(summary[k]) for k in SUMMARY_KEYS) + " |",
        "",
    ]


def _document(
    plan: Plan, context: Context, problems: Sequence[Problem], *, runs: int, details: bool, problem_rows: int
) -> str:
    rows = [heading(context), "", summary_line(plan), "", *_summary_table(plan.summary)]
    if plan.moves:
        rows += ["#### Renames", "", "| from | to |", "|---|---|"]
        rows += [f"| `{_md(old)}` | `{_md(new)}` |" for old, new in plan.moves]
        rows.append("")
    if problems:
        rows += _problems_table(problems, problem_rows)
    listed = [run for run in plan.runs if shown(run, False)]
    if listed:
        rows += ["#### Runs", ""]
        for run in listed[:runs]:
            rows += _run_block(run, details)
        if not details:
            rows.append("")
        if len(listed) > runs:
            rows.append(
                f"… and {plural(len(listed) - runs, 'more run')} to act on: `intuned-runs plan` lists them all."
            )
            rows.append("")
        if not details:
            rows.append(f"Per-run details were cut to keep this comment under {MAX_CHARS:,} characters.")
    return "\n".join(rows).rstrip("\n")


def plan_markdown(plan: Plan, context: Context, problems: Sequence[Problem] = ()) -> str:
    """The plan under MAX_CHARS: cut details first, then list fewer runs (and problems), saying so."""
    runs, details, problem_rows = MAX_RUNS, True, len(problems)
    text = _document(plan, context, problems, runs=runs, details=details, problem_rows=problem_rows)
    while len(text) >= MAX_CHARS and (details or runs > 0 or problem_rows > 0):
        if details:
            details = False
        elif runs > 0:
            runs //= 2
        else:
            problem_rows //= 2
        text = _document(plan, context, problems, runs=runs, details=details, problem_rows=problem_rows)
    return text


def failed_markdown(context: Context, problems: Sequence[Problem]) -> str:
    """When validation fails: the heading and a Problems table, no runs (so the comment shows why)."""
    errors = sum(1 for p in problems if p.severity == "error")
    head = [heading(context), "", f"Validation failed with {plural(errors, 'error')}: nothing was planned.", ""]
    limit = len(problems)
    text = "\n".join([*head, *_problems_table(problems, limit)]).rstrip("\n")
    while len(text) >= MAX_CHARS and limit > 0:
        limit //= 2
        text = "\n".join([*head, *_problems_table(problems, limit)]).rstrip("\n")
    return text
