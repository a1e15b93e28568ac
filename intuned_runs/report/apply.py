"""apply's output (docs/apply.md, Output): a line per run as it finishes, the summary, the JSON document."""

from __future__ import annotations

import json

from intuned_runs import FORMAT_VERSION
from intuned_runs.api.outcome import Outcome
from intuned_runs.apply.session import ApplyResult
from intuned_runs.plan import Plan
from intuned_runs.report.output import Output
from intuned_runs.report.plan import blocked_lines, plan_text, summary_line
from intuned_runs.results import Waited


def confirm_question(plan: Plan) -> str:
    submit, forget = len(plan.to_submit), len(plan.to_forget)
    if submit:
        return f"Submit {submit} runs? [y/N]"
    if forget:
        return f"Forget {forget} runs from state? [y/N]"
    return f"Record {len(plan.moves)} renamed runs in state? [y/N]"


def outcome_line(outcome: Outcome) -> str:
    if outcome.kind == "submitted":
        return f"✓ {outcome.key}  {outcome.run_id}"
    if outcome.kind == "failed":
        status = f"{outcome.http_status}: " if outcome.http_status else ""
        return f"✗ {outcome.key}  {status}{outcome.message or 'failed'}"
    if outcome.kind == "unknown":
        return f"? {outcome.key}  unknown: {outcome.message or 'no answer'}"
    return f"- {outcome.key}  skipped: {outcome.message or 'not sent'}"


class ApplyProgress:
    """What an apply shows while it runs: the plan it is about to carry out (like terraform), then a line
    per finished run and, on a terminal, a progress bar."""

    def __init__(self, out: Output, *, json_output: bool) -> None:
        self.out = out
        self.json_output = json_output
        self.total = 0
        self.finished = 0

    def plan(self, plan: Plan) -> None:
        for line in blocked_lines(plan):
            self.out.err(line)
        self.total = len(plan.to_submit)
        if not self.json_output and (plan.has_changes or plan.moves or self.out.verbose):
            for line in plan_text(plan, self.out.verbose):
                self.out.out(line)

    def outcome(self, outcome: Outcome) -> None:
        self.finished += 1
        if not self.json_output:
            self.out.out(outcome_line(outcome))
            self.out.progress(self.finished, self.total, "runs")


def apply_summary(result: ApplyResult, waited: Waited | None = None) -> list[str]:
    s = result.summary
    lines = []
    if not result.outcomes and not result.forgotten and not result.plan.moves:
        return [summary_line(result.plan)]
    for key in result.forgotten:
        lines.append(f"- {key}  forgotten (kept as a tombstone)")
    for old, new in result.plan.moves:
        lines.append(f"→ {new}  moved from {old}")
    if waited is not None:
        for run in waited.latest.values():
            lines.append(f"  {run.key}  {run.run_id}  {run.status or run.fetch_error}")
    lines.append(
        f"Apply: {s['submitted']} submitted, {s['failed']} failed, {s['unknown']} unknown, "
        f"{s['skipped']} skipped, {s['forgotten']} forgotten, {s['blocked']} blocked."
    )
    return lines


def apply_json(result: ApplyResult, waited: Waited | None = None) -> str:
    statuses = {k: r.status for k, r in waited.latest.items()} if waited is not None else {}
    runs = []
    for outcome in result.outcomes:
        item = outcome.as_dict()
        if outcome.key in statuses:
            item["status"] = statuses[outcome.key]
        runs.append(item)
    document = {
        "format_version": FORMAT_VERSION,
        "summary": result.summary,
        "runs": runs,
        "forgotten": list(result.forgotten),
    }
    return json.dumps(document, indent=2, ensure_ascii=False)
