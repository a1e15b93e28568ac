"""The state-backend seam (docs/state.md; docs/shared-state.md): what plan, apply and the `state` commands
need from wherever the state is kept.

    load()                  the state with its journal replayed; no lock, no write (plan reads this way)
    lock(command, timeout)  hold the one writer's lock, or LockHeld naming the holder
    holder()                who holds that lock now (pid, host, since, command), without taking it; or None
    journal(base)           record an apply's steps: intents durable before a request, outcomes after
    fold()                  replay the journal into the state and clear it (the caller holds the lock)
    write(state)            replace the state (the `state` commands; the journal is folded first)
    force_unlock()          `state unlock`: remove a lock whose holder is known to be dead
    exists()                whether a state (or a journal) is kept there (`state migrate` never overwrites)

The file backend (`state.store.StateStore`) is the one every guarantee was first built on; a shared
backend keeps the same guarantees with its own lock and records.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from intuned_runs.errors import StateError
from intuned_runs.location import FileLocation, Location, PostgresLocation
from intuned_runs.redaction import Redactor
from intuned_runs.state.lock import Holder
from intuned_runs.state.model import State
from intuned_runs.state.store import StateStore

# The journal module is loaded by those who write or replay one (docs/performance.md, What a plan loads).
if TYPE_CHECKING:
    from intuned_runs.state.journal import Record


class Journal(Protocol):
    """One apply's records. `append_durable` returns once the records (and all before them) are kept."""

    @property
    def base(self) -> State: ...

    def append(self, record: Record) -> None: ...

    def append_durable(self, *records: Record) -> None: ...


class Backend(Protocol):
    display: str  # the path, or the URL with its password masked: for messages

    def now(self) -> str: ...

    def load(self) -> State: ...

    def lock(self, command: str, timeout: float = 0.0) -> AbstractContextManager[None]: ...

    def holder(self) -> Holder | None: ...

    def journal(self, base: State | None = None) -> AbstractContextManager[Journal]: ...

    def fold(self) -> State: ...

    def write(self, state: State) -> None: ...

    def force_unlock(self) -> str | None: ...

    def exists(self) -> bool: ...


EXTRAS = {"psycopg": "postgres", "boto3": "s3", "botocore": "s3"}


def open_backend(
    location: Location,
    *,
    redactor: Redactor | None,
    upgrade: Callable[[State], State],
    fingerprint_version: int,
    schema_version: str | None,
) -> Backend:
    """The backend that keeps the state at `location` (docs/shared-state.md). A shared backend's module
    is imported only here, so its library is needed only by those who use it (an extra)."""
    options = {
        "display": location.display,
        "redactor": redactor,
        "upgrade": upgrade,
        "fingerprint_version": fingerprint_version,
        "schema_version": schema_version,
    }
    if isinstance(location, FileLocation):
        return StateStore(location.path, **options)  # type: ignore[arg-type]
    try:
        if isinstance(location, PostgresLocation):
            from intuned_runs.state.postgres import PostgresBackend

            return PostgresBackend(location, **options)  # type: ignore[arg-type]
        from intuned_runs.state.s3 import S3Backend

        return S3Backend(location, **options)  # type: ignore[arg-type]
    except ImportError as e:
        root = (e.name or "").split(".")[0]
        if root not in EXTRAS:
            raise
        extra = EXTRAS[root]
        raise StateError(
            f"state {location.display} needs {root}, which is not installed: pip install 'intuned-runs[{extra}]'"
        ) from None
