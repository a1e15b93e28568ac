"""The plan of what a change does to the definitions: the runs at a git revision against the runs now
(docs/plan.md, Plan since a git revision). Pure: no state, no lock, no workspace, no clock.

The runs at REF stand in for the state, each as an entry recording its definition, so the plan's own rules
decide: a key absent at REF is `+` new, a different fingerprint `~` changed (with field changes), a run gone
since REF `-` removed, and a `moved:` entry of the current files carries REF's `from` run to the current
`to` run. Triggers are ignored (a new manual run is new, an unchanged `always` run is unchanged): the
question is what the change does, not what an apply would submit.
"""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from intuned_runs.desired import Desired
from intuned_runs.fingerprint import FINGERPRINT_VERSION
from intuned_runs.plan import Plan, plan_runs
from intuned_runs.selection import EVERYTHING, Selection
from intuned_runs.state.model import Entry, State


def as_state(before: Desired, schema_version: str | None) -> State:
    """REF's runs as a state: one entry per key with its fingerprint and redacted request, never submitted."""
    entries = {run.key: Entry(run.fingerprint, run.request) for run in before.runs}
    return replace(State.empty(FINGERPRINT_VERSION, schema_version), lineage="since", entries=entries)


def plan_since(
    before: Desired,
    after: Desired,
    schema: dict[str, Any],
    *,
    schema_version: str | None = None,
    selection: Selection = EVERYTHING,
) -> Plan:
    """The difference from `before` (the runs at REF) to `after` (the runs now), `--select` and `--exclude`
    applied."""
    on_change = replace(after, runs=tuple(replace(run, trigger="on-change") for run in after.runs))
    return plan_runs(on_change, as_state(before, schema_version), schema, selection=selection)
