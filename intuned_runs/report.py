"""Formatting of problems and rendered runs (docs/validation.md): text, json, github annotations, YAML.

Functions here return strings; the CLI hands them to Output, which redacts and writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from intuned_runs.apply import ApplyResult, RunOutcome
from intuned_runs.plan import SUMMARY_KEYS, Plan, PlannedRun
from intuned_runs.problems import Problem
from intuned_runs.runs import Run

FORMAT_VERSION = 1


def resolve_format(fmt: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if fmt == "auto":
        return "github" if env.get("GITHUB_ACTIONS") == "true" else "text"
    return fmt


def strictly(problems: Iterable[Problem], strict: bool) -> list[Problem]:
    """--strict makes warnings errors."""
    if not strict:
        return list(problems)
    return [Problem(p.file, p.line, p.col, "error", p.path, p.message) for p in problems]


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(problem: Problem) -> str:
    props = [f"file={_escape_property(problem.file)}"]
    if problem.line is not None:
        props += [f"line={problem.line}", f"col={problem.col or 1}"]
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    return f"::{problem.severity} {','.join(props)}::{_escape_data(message)}"


def problems_text(problems: list[Problem], fmt: str) -> list[str]:
    """Lines for the problems in the given format (`text`, `github`); json is one document."""
    if fmt == "json":
        return [
            json.dumps(
                {"format_version": FORMAT_VERSION, "problems": [p.as_dict() for p in problems]},
                indent=2,
                ensure_ascii=False,
            )
        ]
    if fmt == "github":
        return [github_line(p) for p in problems]
    return [p.as_text() for p in problems]


def run_dict(run: Run) -> dict[str, Any]:
    return {
        "key": run.key,
        "project": run.project,
        "name": run.name,
        "labels": dict(run.labels),
        "trigger": run.trigger,
        "source": {"file": run.source.file, "line": run.source.line},
        "request": run.request,
    }


def render_json(runs: Iterable[Run]) -> str:
    return json.dumps(
        {"format_version": FORMAT_VERSION, "runs": [run_dict(r) for r in runs]}, indent=2, ensure_ascii=False
    )


def render_yaml(runs: Iterable[Run]) -> str:
    """helmfile-template style: one YAML document per run that reads back to the same values."""
    import yaml

    from intuned_runs.documents import plain_scalar

    class Dumper(yaml.SafeDumper):
        pass

    def string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # PyYAML quotes by YAML 1.1 rules; also quote what a YAML 1.2 reader (this tool) would not
        # read back as this string, such as 0o17 or 1e3.
        quote = value and not isinstance(plain_scalar(value), str)
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'" if quote else None)

    Dumper.add_representer(str, string)
    documents = []
    for run in runs:
        # No line folding: a folded secret could slip past the redactor, which sees whole lines.
        body = yaml.dump(
            run_dict(run),
            Dumper=Dumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
            width=float("inf"),
        )
        documents.append(f"---\n# Source: {run.source.file}:{run.source.line}\n{body}")
    return "".join(documents).rstrip("\n")


# -- plans -------------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def change_text(change: Mapping[str, Any]) -> str:
    before = _value(change["before"]) if "before" in change else "(absent)"
    after = _value(change["after"]) if "after" in change else "(absent)"
    return f"{change['path']}: {before} → {after}"


def planned_dict(run: PlannedRun) -> dict[str, Any]:
    return {
        "key": run.key,
        "project": run.project,
        "name": run.name,
        "action": run.action,
        "reason": run.reason,
        "source": None if run.source is None else {"file": run.source.file, "line": run.source.line},
        "fingerprint": run.fingerprint,
        "changes": [dict(c) for c in run.changes],
        "request": run.request,
    }


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "summary": plan.summary,
        "runs": [planned_dict(r) for r in plan.runs],
    }


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


# -- apply ---------------------------------------------------------------------------------------------


def outcome_line(outcome: RunOutcome) -> str:
    if outcome.outcome == "submitted":
        return f"✓ {outcome.key}  {outcome.run_id}"
    if outcome.outcome == "failed":
        status = f"{outcome.http_status}: " if outcome.http_status else ""
        return f"✗ {outcome.key}  {status}{outcome.message or 'failed'}"
    if outcome.outcome == "unknown":
        return f"? {outcome.key}  unknown: {outcome.message or 'no answer'}"
    return f"- {outcome.key}  skipped: {outcome.message or 'not sent'}"


def apply_summary(result: ApplyResult, waited: Any = None) -> list[str]:
    s = result.summary
    lines = []
    if not result.outcomes and not result.forgotten and not result.plan.moves:
        return [summary_line(result.plan)]
    for key in result.forgotten:
        lines.append(f"- {key}  forgotten (kept as a tombstone)")
    for old, new in result.plan.moves:
        lines.append(f"→ {new}  moved from {old}")
    if waited is not None:
        for run in waited[0].values():
            lines.append(f"  {run.key}  {run.run_id}  {run.status or run.fetch_error}")
    lines.append(
        f"Apply: {s['submitted']} submitted, {s['failed']} failed, {s['unknown']} unknown, "
        f"{s['skipped']} skipped, {s['forgotten']} forgotten, {s['blocked']} blocked."
    )
    return lines


def apply_json(result: ApplyResult, waited: Any = None) -> str:
    statuses = {k: r.status for k, r in waited[0].items()} if waited is not None else {}
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
