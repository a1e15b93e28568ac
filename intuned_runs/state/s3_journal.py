"""The S3 state's journal (docs/shared-state-s3.md, Journal): records kept as objects
`KEY.journal/LINEAGE/SEQ`, each created with `If-None-Match: *`.

Each object is a small journal in the file backend's format (`state.journal`): the header line (lineage,
base serial), then the records written since the previous object, so readers parse objects exactly as
they parse the file. One writer thread sends the objects in order (SEQ 1, 2, …): whatever was appended
while one object was being written goes into the next (group commit), and `append_durable` returns once
an object holding its records exists. A record appended without waiting (an outcome) is sent with the
next object, within one write's time; a process killed before then leaves its run unknown, never lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from intuned_runs.errors import StateError
from intuned_runs.state.journal import IntentRecord, JournalHeader, Record, encode
from intuned_runs.state.model import State
from intuned_runs.state.s3_objects import Conflict, Objects

SEQ_DIGITS = 10  # zero-padded, so S3's lexicographic listing is also the numeric order


def object_key(prefix: str, lineage: str, seq: int) -> str:
    return f"{prefix}{lineage}/{seq:0{SEQ_DIGITS}d}"


class ObjectJournal:
    """One apply's journal: `with backend.journal() as journal:`, or `close()`."""

    def __init__(
        self,
        objects: Objects,
        *,
        prefix: str,
        base: State,
        redact: Callable[[str], str],
        check_lock: Callable[[], None],
    ) -> None:
        self.base = base  # the state this journal starts from
        self._objects = objects
        self._prefix = prefix
        self._header = encode(JournalHeader(base.lineage, base.serial))
        self._redact = redact
        self._check_lock = check_lock
        self._cond = threading.Condition()
        self._pending: list[bytes] = []
        self._written = 0  # records appended
        self._kept = 0  # records in objects that exist
        self._seq = 0
        self._closing = False
        self._broken: StateError | None = None
        self.objects_written = 0
        # The journal exists from now on (SEQ 1 is the header alone), as the file journal does once
        # created: a `write` over it is refused until it is folded.
        self._put(self._header)
        self._writer = threading.Thread(target=self._write_loop, name="s3-journal", daemon=True)
        self._writer.start()

    def __enter__(self) -> ObjectJournal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Send what is still pending (best effort: a failure leaves those runs unknown), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._writer.join()

    def _line(self, record: Record) -> bytes:
        return self._redact(encode(record).decode("ascii")).encode("ascii")

    def append(self, record: Record) -> None:
        self._add([self._line(record)])

    def append_durable(self, *records: Record) -> None:
        """Return once the records (and every record before them) are in objects that exist."""
        intents = any(isinstance(r, IntentRecord) for r in records)
        if intents:
            self._check_lock()  # no new request is journaled (so sent) without the lock
        mine = self._add([self._line(r) for r in records])
        with self._cond:
            while self._kept < mine:
                if self._broken is not None:
                    raise self._broken
                self._cond.wait()
        if intents:
            self._check_lock()  # lost while writing: the intents stay, their requests are not sent

    def _add(self, lines: list[bytes]) -> int:
        with self._cond:
            if self._closing:
                raise RuntimeError("journal is closed")
            if self._broken is not None:
                raise self._broken
            self._pending.extend(lines)
            self._written += len(lines)
            self._cond.notify_all()
            return self._written

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending or self._broken is not None:
                    return
                lines, self._pending = self._pending, []
                upto = self._written
            try:
                self._put(self._header + b"".join(lines))
            except StateError as e:
                with self._cond:
                    self._broken = e
                    self._cond.notify_all()
                return
            with self._cond:
                self._kept = upto
                self._cond.notify_all()

    def _put(self, body: bytes) -> None:
        """Create the next object (only the writer thread calls this once it runs)."""
        self._seq += 1
        key = object_key(self._prefix, self.base.lineage, self._seq)
        try:
            self._objects.put(key, body)
        except Conflict:
            raise StateError(
                f"journal object {self._objects.url(key)} exists already: another process is writing this "
                "state's journal; stop it, then retry"
            ) from None
        self.objects_written += 1
