"""Stored fingerprints follow the tool's rules and the schema (docs/plan.md, Fingerprint): when either
changes, they are recomputed from the stored redacted requests, never turned into mass "changed"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from intuned_runs import schema as schema_module
from intuned_runs.fingerprint import FINGERPRINT_VERSION, fingerprint
from intuned_runs.state.model import State


def upgrader(schema: dict[str, Any]) -> Callable[[State], State]:
    """A function returning the state with current fingerprints (the very same State when they are)."""
    schema_version = schema_module.version(schema)

    def refingerprint(key: str, request: dict[str, Any]) -> str:
        project, _, name = key.partition("/")
        return fingerprint(project, name, request, schema)

    def upgrade(state: State) -> State:
        if state.fingerprint_version == FINGERPRINT_VERSION and state.schema_version == schema_version:
            return state
        return state.with_fingerprints(refingerprint, FINGERPRINT_VERSION, schema_version)

    return upgrade
