"""Run results as `status` prints them (docs/state.md, status)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from intuned_runs import FORMAT_VERSION
from intuned_runs.results import RunResult


def status_line(result: RunResult) -> str:
    shown = result.status if result.fetch_error is None else f"error: {result.fetch_error}"
    return f"{result.key}  {result.run_id}  {shown}"


def status_json(results: Sequence[RunResult]) -> str:
    document = {"format_version": FORMAT_VERSION, "runs": [r.as_dict() for r in results]}
    return json.dumps(document, indent=2, ensure_ascii=False)
