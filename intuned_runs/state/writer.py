"""The file backend's journal writer (docs/apply.md, Crash safety): whole lines appended to an open file,
durable appends sharing fsyncs (group commit).

A thread that wants durability waits until an fsync that started after its record was written has
finished; whoever finds no fsync running starts one covering every record written so far. The store
(`state.store`) creates the file and its header; this class only appends.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from types import TracebackType

from intuned_runs.errors import StateError
from intuned_runs.files import write_all
from intuned_runs.state.journal import Record, encode
from intuned_runs.state.model import State


class FileJournal:
    """One apply's journal file, open for appending: `with store.journal() as journal:`, or `close()`."""

    def __init__(
        self, fd: int, *, size: int, base: State, display: str, redact: Callable[[str], str], fsync: bool
    ) -> None:
        self.base = base  # the state this journal starts from (after folding a crashed apply's journal)
        self._fd = fd
        self._display = display
        self._redact = redact
        self._fsync = fsync
        self._cond = threading.Condition()
        self._size = size  # bytes of whole lines written; a failed write is cut back to it
        self._written = 0  # records written
        self._synced = 0  # records known to be on disk
        self._syncing = False
        # After a failed write or fsync nothing more is appended: Linux may report a later fsync as
        # successful although the failed pages were dropped, and the apply must stop sending anyway.
        self._broken: StateError | None = None
        self.fsyncs = 0

    def __enter__(self) -> FileJournal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _line(self, record: Record) -> bytes:
        # One pass of the redactor over the encoded line (it knows JSON-escaped forms): per record on
        # the hot path of apply, cheaper than walking every string of the request.
        return self._redact(encode(record).decode("ascii")).encode("ascii")

    def append(self, record: Record) -> None:
        """Write one record (it survives the process being killed, not necessarily a power loss)."""
        line = self._line(record)
        with self._cond:
            self._write(line)

    def append_durable(self, *records: Record) -> None:
        """Write records (in one write) and return only once they (and every record before them) are
        on disk."""
        line = b"".join(self._line(record) for record in records)
        with self._cond:
            mine = self._write(line)
            if not self._fsync:
                return
            while self._synced < mine:
                if self._broken is not None:
                    raise self._broken
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target = self._written
                self._cond.release()
                try:
                    os.fsync(self._fd)
                except OSError as e:
                    self._broken = self._error(e)
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                if self._broken is not None:
                    raise self._broken
                self.fsyncs += 1
                self._synced = max(self._synced, target)

    def _write(self, line: bytes) -> int:
        if self._fd < 0:
            raise RuntimeError("journal is not open")
        if self._broken is not None:
            raise self._broken
        try:
            write_all(self._fd, line)
        except BaseException as e:
            # Never leave a partial line that a later record would turn into a damaged middle line.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            if isinstance(e, OSError):
                self._broken = self._error(e)
                raise self._broken from e
            raise
        self._size += len(line)
        self._written += 1
        return self._written

    def _error(self, e: OSError) -> StateError:
        return StateError(f"cannot write journal {self._display}: {e.strerror}")
