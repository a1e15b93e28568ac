"""The state: what was submitted, per run key (docs/state.md). Plain, immutable data; no I/O.

Its file format (encoder and decoder) is `state.format`; the journal (`state.journal`) records an apply's
steps; a backend (`state.backend`) keeps them, crash-safe.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from msgspec import Struct, field
from msgspec.structs import force_setattr, replace

VERSION = 1  # of the state file
HISTORY_LIMIT = 10  # submissions kept per entry, newest first (docs/state.md, History)


class Submission(Struct, frozen=True, gc=False):
    """One item of an entry's history: a submission apply recorded, or an adoption (docs/state.md, History)."""

    run_id: str | None
    submitted_at: str
    fingerprint: str
    status: str | None = None
    adopted: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "submitted_at": self.submitted_at,
            "fingerprint": self.fingerprint,
            "status": self.status,
        }
        if self.adopted:
            out["adopted"] = True
        return out


def with_submission(history: tuple[Submission, ...], item: Submission) -> tuple[Submission, ...]:
    """`history` with `item` first, cut to the last HISTORY_LIMIT submissions."""
    return (item, *history)[:HISTORY_LIMIT]


def with_status(history: tuple[Submission, ...], run_id: str | None, status: str) -> tuple[Submission, ...]:
    """`history` with the newest item of `run_id` given `status` (what `status` and `--wait` learn)."""
    if run_id is None:
        return history
    for index, item in enumerate(history):
        if item.run_id == run_id:
            return (*history[:index], replace(item, status=status), *history[index + 1 :])
    return history


class Unknown(Struct, frozen=True, gc=False):
    since: str
    reason: str
    # The entry as it was before the attempt whose outcome is unknown (a re-run or a change of a run
    # submitted earlier), so `state resolve --not-submitted` can put it back instead of making the run
    # look new and submitting an already-submitted definition again (docs/README.md). Stored only when there
    # was one, without its history (the unknown entry carries it).
    previous: Entry | None = None
    # An intent replayed from the journal without its outcome: an apply may be sending it right now
    # (docs/plan.md, Blocked and in-progress runs). Never stored: once folded it is a plain unknown.
    in_flight: bool = False

    def __eq__(self, other: object) -> bool:  # in_flight is a view of the journal, not part of the value
        if not isinstance(other, Unknown):
            return NotImplemented
        return (self.since, self.reason, self.previous) == (other.since, other.reason, other.previous)

    def __hash__(self) -> int:
        return hash((self.since, self.reason, self.previous))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"since": self.since, "reason": self.reason}
        if self.previous is not None:
            out["previous"] = self.previous.to_json()
        return out


class Entry(Struct, frozen=True, gc=False):
    fingerprint: str
    request: dict[str, Any]  # redacted, as written (no defaults filled in)
    run_id: str | None = None
    submitted_at: str | None = None
    status: str | None = None
    status_at: str | None = None
    unknown: Unknown | None = None
    removed_at: str | None = None
    history: tuple[Submission, ...] = ()  # newest first (docs/state.md, History)

    @property
    def is_tombstone(self) -> bool:
        """Forgotten: kept so that re-adding the identical run is unchanged, not new (docs/plan.md)."""
        return self.removed_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "request": self.request,
            "run_id": self.run_id,
            "submitted_at": self.submitted_at,
            "status": self.status,
            "status_at": self.status_at,
            "unknown": None if self.unknown is None else self.unknown.to_json(),
            "removed_at": self.removed_at,
            "history": [item.to_json() for item in self.history],
        }


class State(Struct, frozen=True, kw_only=True):
    version: int = VERSION
    lineage: str
    serial: int
    workspace_id: str | None
    fingerprint_version: int
    schema_version: str | None
    entries: Mapping[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A read-only view, so a State handed around can never be edited behind the store's back.
        force_setattr(self, "entries", MappingProxyType(dict(self.entries)))

    @classmethod
    def empty(cls, fingerprint_version: int, schema_version: str | None) -> State:
        return cls(
            lineage=str(uuid.uuid4()),
            serial=0,
            workspace_id=None,
            fingerprint_version=fingerprint_version,
            schema_version=schema_version,
        )

    def live(self) -> dict[str, Entry]:
        return {key: entry for key, entry in self.entries.items() if not entry.is_tombstone}

    def with_fingerprints(
        self, fn: Callable[[str, dict[str, Any]], str], fingerprint_version: int, schema_version: str | None
    ) -> State:
        """Recompute every fingerprint (tombstones too) from the stored redacted request (docs/plan.md)."""

        def again(key: str, entry: Entry) -> Entry:
            unknown = entry.unknown
            if unknown is not None and unknown.previous is not None:
                unknown = replace(unknown, previous=again(key, unknown.previous))
            return replace(entry, fingerprint=fn(key, entry.request), unknown=unknown)

        entries = {key: again(key, entry) for key, entry in self.entries.items()}
        return replace(self, entries=entries, fingerprint_version=fingerprint_version, schema_version=schema_version)

    def to_json(self) -> dict[str, Any]:
        return {**self.to_json_head(), "entries": {key: entry.to_json() for key, entry in self.entries.items()}}

    def to_json_head(self) -> dict[str, Any]:
        """Every field but the entries (`state.format` writes those one at a time)."""
        return {
            "version": self.version,
            "lineage": self.lineage,
            "serial": self.serial,
            "workspace_id": self.workspace_id,
            "fingerprint_version": self.fingerprint_version,
            "schema_version": self.schema_version,
        }


def bump(state: State) -> State:
    return replace(state, serial=state.serial + 1)
