"""apply's output (docs/apply.md, Output and Waiting): a line per run as it finishes, the summary, the JSON
document, and the progress of `--wait`."""

from __future__ import annotations

import json

from intuned_runs import FORMAT_VERSION
from intuned_runs.api.outcome import Outcome
from intuned_runs.apply.session import ApplyResult
from intuned_runs.plan import Plan
from intuned_runs.report.output import Output
from intuned_runs.report.plan import blocked_lines, plan_text, summary_line
from intuned_runs.report.style import PLAIN, Palette, plural
from intuned_runs.results import FINAL, RunResult, Waited

OUTCOME_COLOURS = {"submitted": "green", "failed": "red", "unknown": "magenta", "skipped": "yellow"}


def confirm_question(plan: Plan) -> str:
    submit, forget = len(plan.to_submit), len(plan.to_forget)
    if submit:
        return f"Submit {plural(submit, 'run')}? [y/N]"
    if forget:
        return f"Forget {plural(forget, 'run')} from state? [y/N]"
    return f"Record {plural(len(plan.moves), 'renamed run')} in state? [y/N]"


def outcome_line(outcome: Outcome, paint: Palette = PLAIN) -> str:
    colour = OUTCOME_COLOURS[outcome.kind]
    if outcome.kind == "submitted":
        return f"{paint(f'✓ {outcome.key}', colour)}  {outcome.run_id}"
    if outcome.kind == "failed":
        status = f"{outcome.http_status}: " if outcome.http_status else ""
        return f"{paint(f'✗ {outcome.key}', colour)}  {status}{outcome.message or 'failed'}"
    if outcome.kind == "unknown":
        return f"{paint(f'? {outcome.key}', colour)}  unknown: {outcome.message or 'no answer'}"
    return f"{paint(f'- {outcome.key}', colour)}  skipped: {outcome.message or 'not sent'}"


class ApplyProgress:
    """What an apply shows while it runs: the plan it is about to carry out (like terraform), then a line
    per finished run and, on a terminal, a progress bar. With -q only the runs that failed or are unknown."""

    def __init__(self, out: Output, *, json_output: bool) -> None:
        self.out = out
        self.json_output = json_output
        self.total = 0
        self.finished = 0

    def plan(self, plan: Plan) -> None:
        for line in blocked_lines(plan):
            self.out.err(line)
        self.total = len(plan.to_submit)
        if self.json_output or self.out.quiet:
            return
        if plan.has_changes or plan.moves or self.out.verbose:
            for line in plan_text(plan, self.out.verbose, self.out.paint):
                self.out.out(line)

    def outcome(self, outcome: Outcome) -> None:
        self.finished += 1
        if self.json_output:
            return
        if not self.out.quiet or outcome.kind in ("failed", "unknown"):
            self.out.out(outcome_line(outcome, self.out.paint))
        self.out.progress(self.finished, self.total, "runs")


class WaitProgress:
    """`apply --wait` (docs/apply.md, Waiting): on a TTY a live line `waiting: C completed, F failed, P
    pending`; without one a line per change to a status that is not final. The final statuses are printed
    once, by `apply_summary`."""

    def __init__(self, out: Output, statuses: dict[str, str | None], *, json_output: bool) -> None:
        self.out = out
        self.statuses = dict(statuses)  # key -> the last status seen (the start's `pending` first)
        self.json_output = json_output

    def line(self) -> str:
        values = list(self.statuses.values())
        completed = values.count("completed")
        failed = values.count("failed") + values.count("canceled")
        return f"waiting: {completed} completed, {failed} failed, {len(values) - completed - failed} pending"

    def update(self, result: RunResult) -> None:
        previous = self.statuses.get(result.key)
        status = result.status
        if status is not None:
            self.statuses[result.key] = status
        if self.out.interactive():
            self.out.live(self.line())
        elif not (self.json_output or self.out.quiet) and status != previous:
            if result.fetch_error is not None:
                self.out.err(f"  {result.key}  {result.run_id}  {result.fetch_error}")
            elif status not in FINAL:
                self.out.err(f"  {result.key}  {result.run_id}  {status}")

    def done(self) -> None:
        self.out.end_live()


def apply_summary(result: ApplyResult, waited: Waited | None = None, *, quiet: bool = False) -> list[str]:
    s = result.summary
    lines = []
    if not result.outcomes and not result.forgotten and not result.plan.moves:
        return [summary_line(result.plan)]
    if not quiet:
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
