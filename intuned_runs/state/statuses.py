"""Recording final run statuses (docs/state.md, status): journaled under the lock and folded, without
raising the serial, so `status` and `apply --wait` never make a saved plan stale."""

from __future__ import annotations

from collections.abc import Iterable

from intuned_runs.errors import LockHeld
from intuned_runs.state.backend import Backend
from intuned_runs.state.journal import StatusRecord


def record_statuses(
    backend: Backend, finals: Iterable[tuple[str, str]], *, command: str, lock_timeout: float
) -> str | None:
    """Record `(key, status)` pairs. A busy lock only costs the record, never the report: it returns
    the warning to show instead of raising."""
    finals = list(finals)
    if not finals:
        return None
    try:
        with backend.lock(command, lock_timeout):
            with backend.journal() as journal:
                for key, status in finals:
                    journal.append(StatusRecord(key, status, backend.now()))
            backend.fold()
    except LockHeld as e:
        return f"final statuses not recorded: {e}"
    return None
