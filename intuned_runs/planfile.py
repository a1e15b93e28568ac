"""Saved plans (docs/plan.md): `plan --out FILE` and `apply FILE`.

A saved plan holds the plan's JSON plus what is needed to re-render the same runs and to notice that
the world moved on: the state's lineage and serial, the workspace, the inputs (env, --var). No secret
value is in it: requests are the redacted view, and the file passes through the redactor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from msgspec import Struct
from msgspec.structs import replace

from intuned_runs import FORMAT_VERSION, __version__
from intuned_runs.clock import timestamp, utc_now
from intuned_runs.errors import StalePlan, UsageError
from intuned_runs.files import write_atomic
from intuned_runs.plan import FORGET, SUBMIT, UNCHANGED, Plan, PlannedRun
from intuned_runs.redaction import Redactor
from intuned_runs.state.model import State

KIND = "intuned-runs-plan"


class SavedPlan(Struct, frozen=True):
    env: str | None
    vars: tuple[str, ...]
    workspace_id: str | None
    state_path: str
    lineage: str
    serial: int
    submit: dict[str, str]  # key -> fingerprint
    forget: dict[str, str]  # key -> fingerprint
    reasons: dict[str, str]  # key -> the reason the plan gave
    planned: frozenset[str] = frozenset()  # every run of its planned set: apply FILE plans exactly these


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
        **plan.to_json(),
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
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as e:
        raise UsageError(f"cannot write the plan to {path}: {e.strerror}") from e


def load(path: Path) -> SavedPlan:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UsageError(f"plan file {path} does not exist") from e
    except (OSError, ValueError) as e:
        raise UsageError(f"{path} is not a saved plan (cannot read it as JSON: {e})") from e
    if not isinstance(raw, dict) or raw.get("kind") != KIND or raw.get("format_version") != FORMAT_VERSION:
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
            planned=frozenset(r["key"] for r in runs),
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


def inputs(
    saved: SavedPlan, name: str, env: str | None, given_vars: Sequence[str]
) -> tuple[str | None, tuple[str, ...]]:
    """The --env and --var a saved plan renders with: its own. Others given with it are refused."""
    if (env is not None and env != saved.env) or (given_vars and list(given_vars) != list(saved.vars)):
        raise UsageError(
            f"apply {name} renders with the plan's own inputs (--env {saved.env}, "
            f"--var {' '.join(saved.vars) or 'none'}): drop --env/--var, or plan again with the new ones"
        )
    return saved.env, saved.vars


def restrict(plan: Plan, saved: SavedPlan) -> Plan:
    """Exactly the saved plan's runs: its submits and forgets; everything else unchanged."""
    return Plan(tuple(_as_saved(run, saved) for run in plan.runs), plan.moves)


def _as_saved(run: PlannedRun, saved: SavedPlan) -> PlannedRun:
    if run.key in saved.submit:
        return replace(run, action=SUBMIT, reason=saved.reasons.get(run.key, run.reason))
    if run.key in saved.forget:
        return replace(run, action=FORGET, reason="removed")
    if run.action in (SUBMIT, FORGET):
        return replace(run, action=UNCHANGED, reason="not in the saved plan")
    return run
