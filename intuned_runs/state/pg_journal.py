"""The postgresql backend's journal writer (docs/shared-state.md, PostgreSQL): records as rows, committed
by one thread in batches (group commit).

Every record handed in is queued; a flusher thread inserts whatever is queued in one statement (one
commit), again and again. `append_durable` returns once a commit holding its records has finished. After a
failed commit nothing more is accepted: the connection (and with it the lock) may be gone, so the apply
must stop sending; the records not committed read as unknown to the next reader.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from intuned_runs.errors import StateError
from intuned_runs.state.journal import Record, encode
from intuned_runs.state.model import State


def lost(display: str, e: BaseException) -> StateError:
    text = str(e).strip().splitlines()
    detail = text[0] if text else type(e).__name__
    return StateError(
        f"lost the connection to state {display}: {detail}; no more runs are submitted, and any run whose "
        "outcome could not be recorded reads as unknown"
    )


class RowJournal:
    """One apply's journal rows: `with backend.journal() as journal:`, or `close()`."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        insert: sql.Composed,
        *,
        name: str,
        base: State,
        display: str,
        redact: Callable[[str], str],
    ) -> None:
        self.base = base
        self._conn = conn
        self._insert = insert
        self._name = name
        self._display = display
        self._redact = redact
        self._cond = threading.Condition()
        self._queue: list[str] = []
        self._handed = 0  # records handed in
        self._committed = 0  # records known to be committed
        self._closing = False
        self._broken: StateError | None = None
        self.commits = 0
        self._flusher = threading.Thread(target=self._flush_loop, name="journal-commit", daemon=True)
        self._flusher.start()

    def __enter__(self) -> RowJournal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Commit what is queued (unless the connection is lost) and stop the flusher."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._flusher.join()

    def _line(self, record: Record) -> str:
        return self._redact(encode(record).decode("ascii")).rstrip("\n")

    def _hand_in(self, records: tuple[Record, ...]) -> int:
        lines = [self._line(record) for record in records]
        with self._cond:
            if self._broken is not None:
                raise self._broken
            if self._closing:
                raise RuntimeError("journal is closed")
            self._queue.extend(lines)
            self._handed += len(lines)
            self._cond.notify_all()
            return self._handed

    def append(self, record: Record) -> None:
        """Queue one record; the flusher commits it within one round trip."""
        self._hand_in((record,))

    def append_durable(self, *records: Record) -> None:
        """Queue records and return only once they (and every record before them) are committed."""
        mine = self._hand_in(records)
        with self._cond:
            while self._committed < mine:
                if self._broken is not None:
                    raise self._broken
                self._cond.wait()

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._broken is not None:
                    return
                batch, self._queue = self._queue, []
                first = self._committed + 1
            try:
                seqs = list(range(first, first + len(batch)))
                self._conn.execute(self._insert, (self._name, seqs, batch))
            except psycopg.Error as e:
                with self._cond:
                    self._broken = lost(self._display, e)
                    self._queue.clear()
                    self._cond.notify_all()
                return
            with self._cond:
                self._committed += len(batch)
                self.commits += 1
                self._cond.notify_all()
