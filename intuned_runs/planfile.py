"""Saved plans (docs/plan.md): `plan --out FILE` and `apply FILE`.

A saved plan holds the plan's JSON plus what is needed to re-render the same runs and to notice that
the world moved on: the state's lineage and serial, the workspace, the inputs (env, --var). No secret
value is in it: requests are the redacted view, and the file passes through the redactor.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from intuned_runs import __version__
from intuned_runs.errors import StalePlan, UsageError
from intuned_runs.plan import FORGET, SUBMIT, Plan
from intuned_runs.redaction import Redactor
from intuned_runs.report import plan_dict
from intuned_runs.state import State, timestamp, utc_now

KIND = "intuned-runs-plan"


@dataclass(frozen=True)
class SavedPlan:
    env: str | None
    vars: tuple[str, ...]
    workspace_id: str | None
    state_path: str
    lineage: str
    serial: int
    submit: dict[str, str]  # key -> fingerprint
    forget: dict[str, str]  # key -> fingerprint
    reasons: dict[str, str]  # key -> the reason the plan gave


def save(
    path: Path,
    plan: Plan,
    state: State,
    *,
    env: str | None,
    vars: tuple[str, ...],
    workspace_id: str | None,
    state_path: str,
    schema_version: str,
    redactor: Redactor,
) -> None:
    document = {
        "kind": KIND,
        **plan_dict(plan),
        "tool_version": __version__,
        "created_at": timestamp(utc_now()),
        "env": env,
        "vars": list(vars),
        "workspace_id": workspace_id,
        "state_path": state_path,
        "lineage": state.lineage,
        "serial": state.serial,
        "schema_version": schema_version,
    }
    text = redactor(json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False)) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load(path: Path) -> SavedPlan:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UsageError(f"plan file {path} does not exist") from e
    except (OSError, ValueError) as e:
        raise UsageError(f"{path} is not a saved plan (cannot read it as JSON: {e})") from e
    if not isinstance(raw, dict) or raw.get("kind") != KIND or raw.get("format_version") != 1:
        raise UsageError(f"{path} is not a saved plan of intuned-runs (write one with 'intuned-runs plan --out FILE')")
    try:
        runs = raw["runs"]
        return SavedPlan(
            env=raw["env"],
            vars=tuple(raw["vars"]),
            workspace_id=raw["workspace_id"],
            state_path=raw["state_path"],
            lineage=raw["lineage"],
            serial=raw["serial"],
            submit={r["key"]: r["fingerprint"] for r in runs if r["action"] == SUBMIT},
            forget={r["key"]: r["fingerprint"] for r in runs if r["action"] == FORGET},
            reasons={r["key"]: r["reason"] for r in runs},
        )
    except (KeyError, TypeError) as e:
        raise UsageError(f"{path} is not a complete saved plan (missing {e})") from e


def check_fresh(
    saved: SavedPlan, state: State, fingerprints: dict[str, str], workspace_id: str | None, state_path: str
) -> None:
    """Raise StalePlan naming the cause when the plan no longer describes what apply would do."""
    if state_path != saved.state_path:
        raise StalePlan(f"it was made for state {saved.state_path}, this apply uses {state_path}")
    # Planned before any state was written: that lineage was made up for one read, so an apply since then
    # shows as the serial change it is, not as a replaced state.
    never_written = saved.serial == 0
    if state.lineage != saved.lineage and not never_written:
        raise StalePlan(f"the state was replaced since the plan (lineage {saved.lineage} → {state.lineage})")
    if state.serial != saved.serial:
        raise StalePlan(f"the state changed since the plan (serial {saved.serial} → {state.serial}): plan again")
    if workspace_id != saved.workspace_id:
        raise StalePlan(f"the workspace is {workspace_id}, the plan was made for {saved.workspace_id}")
    for key, fingerprint in saved.submit.items():
        current = fingerprints.get(key)
        if current is None:
            raise StalePlan(f"run {key} is no longer defined")
        if current != fingerprint:
            raise StalePlan(f"run {key} changed since the plan: plan again")
    for key in saved.forget:
        if key in fingerprints:
            raise StalePlan(f"run {key}, planned to be forgotten, is defined again")
