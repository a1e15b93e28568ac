"""One clock and one timestamp format for everything the tool records (state, journal, locks, plans).

Timestamps are RFC 3339 UTC with `Z` and seconds precision (`2026-11-28T16:20:00Z`), so they read back
exactly as written in every backend (docs/state.md, State file).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with `Z`, seconds precision: `2026-11-28T16:20:00Z`."""
    if moment.tzinfo is None:
        raise ValueError("timestamp() needs an aware datetime")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
