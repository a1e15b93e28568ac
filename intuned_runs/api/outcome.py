"""What became of one run start (docs/apply.md, Outcomes): submitted, failed, unknown or skipped."""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct

Kind = Literal["submitted", "failed", "unknown", "skipped"]


class Outcome(Struct, frozen=True):
    """What became of one run start: the client fills in what the server said; the apply engine adds
    the run's key (and makes the outcomes of runs it never sent, `skipped`)."""

    kind: Kind
    run_id: str | None = None
    status: str | None = None
    http_status: int | None = None
    message: str | None = None
    attempts: int = 1
    key: str = ""
    unreachable: bool = False  # could not connect, after every retry: nothing was started

    @property
    def stops_all(self) -> bool:
        """A 401 or 403 stops every remaining submission (docs/apply.md, Outcomes)."""
        return self.kind == "failed" and self.http_status in (401, 403)

    def as_dict(self) -> dict[str, Any]:
        """The run's line of `apply --json` (docs/apply.md, Output)."""
        error = None
        if self.kind != "submitted" and (self.message or self.http_status):
            error = {"http_status": self.http_status, "message": self.message}
        return {"key": self.key, "outcome": self.kind, "run_id": self.run_id, "status": self.status, "error": error}
