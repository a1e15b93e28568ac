"""Run results: fetch, poll with backoff until final, record final statuses (docs/apply.md, Waiting;
docs/state.md, status).

Statuses the tool does not know are shown as they come; only completed, failed and canceled are final.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from msgspec import Struct

from intuned_runs.errors import ApiError
from intuned_runs.selection import Selector, pick
from intuned_runs.state.model import State

FINAL = frozenset({"completed", "failed", "canceled"})
FIRST_DELAY, MAX_DELAY = 2.0, 30.0


class Fetcher(Protocol):
    def result(self, project: str, run_id: str) -> dict[str, Any]: ...


class Tracked(Struct, frozen=True):
    key: str
    project: str
    run_id: str


class RunResult(Struct, frozen=True):
    key: str
    run_id: str
    status: str | None
    error: Any = None
    result: Any = None
    fetch_error: str | None = None  # the fetch itself failed

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def as_dict(self) -> dict[str, Any]:
        error = self.error
        if self.fetch_error is not None:
            error = {"message": self.fetch_error}
        return {"key": self.key, "run_id": self.run_id, "status": self.status, "error": error, "result": self.result}


class Waited(Struct, frozen=True):
    """What `apply --wait` saw last of each run, and whether its --timeout passed first."""

    latest: dict[str, RunResult]
    timed_out: bool

    @property
    def finals(self) -> list[tuple[str, str]]:
        return finals(list(self.latest.values()))

    @property
    def failed(self) -> bool:
        return self.timed_out or any(r.status in ("failed", "canceled") for r in self.latest.values())


def tracked(state: State, selectors: tuple[Selector, ...]) -> list[Tracked]:
    """The runs in state that `status` fetches: those with a run ID, among the selected entries."""
    keys = set(pick(selectors, ((key, None) for key in state.entries), "selector"))
    return [
        Tracked(key, key.partition("/")[0], entry.run_id)
        for key, entry in sorted(state.entries.items())
        if entry.run_id and key in keys
    ]


def finals(results: Sequence[RunResult]) -> list[tuple[str, str]]:
    """(key, status) of the runs whose status is final: what the state records."""
    return [(r.key, r.status) for r in results if r.status is not None and r.final]


def fetch(client: Fetcher, run: Tracked) -> RunResult:
    try:
        body = client.result(run.project, run.run_id)
    except ApiError as e:
        return RunResult(run.key, run.run_id, None, fetch_error=str(e))
    status = body.get("status")
    error = body.get("error") if body.get("error") is not None else body.get("reason")
    return RunResult(run.key, run.run_id, str(status) if status is not None else None, error, body.get("result"))


def wait_all(
    client: Fetcher,
    runs: Sequence[Tracked],
    *,
    timeout: float,
    on_update: Callable[[RunResult], None],
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited:
    """Poll until every run is final, `timeout` passes or `should_stop()`."""
    deadline = clock() + timeout
    latest: dict[str, RunResult] = {}
    waiting = list(runs)
    delay = FIRST_DELAY
    while waiting:
        still = []
        for run in waiting:
            result = fetch(client, run)
            previous = latest.get(run.key)
            latest[run.key] = result
            if previous is None or previous.status != result.status:
                on_update(result)
            if not result.final:
                still.append(run)
        waiting = still
        if not waiting:
            return Waited(latest, False)
        remaining = deadline - clock()
        if remaining <= 0 or should_stop():
            return Waited(latest, remaining <= 0)
        sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY)
    return Waited(latest, False)
