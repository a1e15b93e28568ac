"""The journal beside the state (docs/apply.md, Crash safety): `STATE.journal`, JSON lines.

An apply appends an intent (fsync'ed) before each request and the outcome after it. `replay` turns a
state plus records into the next state; readers replay and never write, so a process killed at any
instant leaves every journaled submission visible and every other intent `unknown`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from intuned_runs.errors import StateError
from intuned_runs.state import Entry, State, Unknown, json_type

if TYPE_CHECKING:
    from intuned_runs.store import StateStore

INTERRUPTED = "interrupted before the outcome was recorded"


# ----------------------------------------------------------------------------------------- the journal


@dataclass(frozen=True)
class JournalHeader:
    lineage: str
    base_serial: int


@dataclass(frozen=True)
class IntentRecord:
    """Written and fsync'ed before the request is sent."""

    key: str
    fingerprint: str
    request: dict[str, Any]
    at: str


@dataclass(frozen=True)
class SubmittedRecord:
    key: str
    run_id: str
    status: str | None
    at: str


@dataclass(frozen=True)
class FailedRecord:
    """The server surely started nothing: the intent is cancelled, the entry unchanged."""

    key: str
    at: str


@dataclass(frozen=True)
class UnknownRecord:
    key: str
    reason: str
    at: str


@dataclass(frozen=True)
class ForgetRecord:
    key: str
    at: str


@dataclass(frozen=True)
class MoveRecord:
    source: str  # "from" in the journal
    target: str  # "to"
    at: str


@dataclass(frozen=True)
class StatusRecord:
    key: str
    status: str
    at: str


@dataclass(frozen=True)
class WorkspaceRecord:
    workspace_id: str


Record = (
    IntentRecord
    | SubmittedRecord
    | FailedRecord
    | UnknownRecord
    | ForgetRecord
    | MoveRecord
    | StatusRecord
    | WorkspaceRecord
)

# type name -> (class, ((json name, attribute, allowed types), ...))
_STR: tuple[type, ...] = (str,)
_OPT_STR: tuple[type, ...] = (str, type(None))
_RECORDS: dict[str, tuple[type, tuple[tuple[str, str, tuple[type, ...]], ...]]] = {
    "intent": (
        IntentRecord,
        (
            ("key", "key", _STR),
            ("fingerprint", "fingerprint", _STR),
            ("request", "request", (dict,)),
            ("at", "at", _STR),
        ),
    ),
    "submitted": (
        SubmittedRecord,
        (
            ("key", "key", _STR),
            ("run_id", "run_id", _STR),
            ("status", "status", _OPT_STR),
            ("at", "at", _STR),
        ),
    ),
    "failed": (FailedRecord, (("key", "key", _STR), ("at", "at", _STR))),
    "unknown": (UnknownRecord, (("key", "key", _STR), ("reason", "reason", _STR), ("at", "at", _STR))),
    "forget": (ForgetRecord, (("key", "key", _STR), ("at", "at", _STR))),
    "move": (MoveRecord, (("from", "source", _STR), ("to", "target", _STR), ("at", "at", _STR))),
    "status": (StatusRecord, (("key", "key", _STR), ("status", "status", _STR), ("at", "at", _STR))),
    "workspace": (WorkspaceRecord, (("workspace_id", "workspace_id", _STR),)),
}
_TYPE_OF = {cls: name for name, (cls, _) in _RECORDS.items()}


def record_to_json(record: Record | JournalHeader) -> dict[str, Any]:
    if isinstance(record, JournalHeader):
        return {"type": "header", "lineage": record.lineage, "base_serial": record.base_serial}
    name = _TYPE_OF[type(record)]
    out: dict[str, Any] = {"type": name}
    for json_name, attr, _ in _RECORDS[name][1]:
        out[json_name] = getattr(record, attr)
    return out


def record_from_json(raw: object) -> Record:
    """Raises ValueError naming what is wrong; the reader adds the address."""
    if not isinstance(raw, dict):
        raise ValueError(f"a record must be a JSON object, not {json_type(raw)}")
    name = raw.get("type")
    if not isinstance(name, str) or name not in _RECORDS:
        raise ValueError(f"unknown record type {name!r}")
    cls, fields = _RECORDS[name]
    values: dict[str, Any] = {}
    for json_name, attr, types in fields:
        if json_name not in raw:
            raise ValueError(f"{name} record is missing {json_name!r}")
        value = raw[json_name]
        if not isinstance(value, types):
            raise ValueError(f"{name} record field {json_name!r} must not be {json_type(value)}")
        values[attr] = value
    record: Record = cls(**values)
    return record


def replay(state: State, records: Iterable[Record], *, source: str = "journal") -> State:
    """Apply journal records to a state: pure, no I/O, no clock.

    The serial rises by exactly 1 when the records hold a submission, an outcome other than `failed`
    (an intent left without outcome counts as one), a forget, a move or a workspace; status-only and
    failed-only journals leave it as it was (docs/state.md).
    """
    entries = dict(state.entries)
    workspace_id = state.workspace_id
    pending: dict[str, IntentRecord] = {}
    changed = False

    def intent_of(record: SubmittedRecord | FailedRecord | UnknownRecord, kind: str) -> IntentRecord:
        intent = pending.pop(record.key, None)
        if intent is None:
            raise StateError(f"{source} records {kind} for {record.key!r} without an intent before it")
        return intent

    for record in records:
        if isinstance(record, IntentRecord):
            pending[record.key] = record
        elif isinstance(record, SubmittedRecord):
            intent = intent_of(record, "a submission")
            entries[record.key] = Entry(
                fingerprint=intent.fingerprint,
                request=intent.request,
                run_id=record.run_id,
                submitted_at=record.at,
                status=record.status,
                status_at=record.at if record.status is not None else None,
            )
            changed = True
        elif isinstance(record, UnknownRecord):
            intent = intent_of(record, "an unknown outcome")
            entries[record.key] = _unknown_entry(intent, record.at, record.reason, entries.get(record.key))
            changed = True
        elif isinstance(record, FailedRecord):
            intent_of(record, "a failure")
        elif isinstance(record, ForgetRecord):
            if record.key in entries:
                entries[record.key] = replace(entries[record.key], removed_at=record.at)
            changed = True
        elif isinstance(record, MoveRecord):
            if record.source in entries:
                entries[record.target] = entries.pop(record.source)
            changed = True
        elif isinstance(record, StatusRecord):
            if record.key in entries:
                entries[record.key] = replace(entries[record.key], status=record.status, status_at=record.at)
        else:
            workspace_id = record.workspace_id
            changed = True
    for intent in pending.values():
        entries[intent.key] = _unknown_entry(intent, intent.at, INTERRUPTED, entries.get(intent.key))
        changed = True
    return replace(
        state,
        serial=state.serial + 1 if changed else state.serial,
        workspace_id=workspace_id,
        entries=entries,
    )


def _unknown_entry(intent: IntentRecord, since: str, reason: str, before: Entry | None) -> Entry:
    """The intent's definition, marked unknown, remembering the last submitted entry it replaces."""
    previous = before
    if before is not None and before.unknown is not None:
        previous = before.unknown.previous  # unknown again: the last known submission stays
    if previous is not None and (previous.is_tombstone or previous.run_id is None):
        previous = None
    return Entry(fingerprint=intent.fingerprint, request=intent.request, unknown=Unknown(since, reason, previous))


def read_journal(path: Path, display: str) -> tuple[JournalHeader | None, list[Record]]:
    """Parse a journal; a torn (unparsable) last line is what a crash leaves and is ignored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, []
    except OSError as e:
        raise StateError(f"cannot read journal {display}: {e.strerror}") from e
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    header: JournalHeader | None = None
    records: list[Record] = []
    for number, line in enumerate(lines, 1):
        try:
            raw = json.loads(line)
        except ValueError as e:  # UnicodeDecodeError is a ValueError too
            if number == len(lines):
                break
            raise StateError(
                f"journal {display} line {number} is damaged and is not the last line, so it cannot be "
                "trusted: inspect it (it records runs that may have been submitted), repair or remove "
                "that line, then retry"
            ) from e
        try:
            if number == 1:
                header = _header_from_json(raw)
            else:
                records.append(record_from_json(raw))
        except ValueError as e:
            raise StateError(f"journal {display} line {number}: {e}") from e
    return header, records


def _header_from_json(raw: object) -> JournalHeader:
    if not isinstance(raw, dict) or raw.get("type") != "header":
        raise ValueError("the first line must be the journal header")
    lineage, base_serial = raw.get("lineage"), raw.get("base_serial")
    if not isinstance(lineage, str) or type(base_serial) is not int:
        raise ValueError("the header needs a string 'lineage' and an integer 'base_serial'")
    return JournalHeader(lineage, base_serial)


class Journal:
    """One apply's journal. Appends are whole lines; durable appends share fsyncs (group commit).

    A thread that wants durability waits until an fsync that started after its record was written has
    finished; whoever finds no fsync running starts one covering every record written so far.
    """

    def __init__(self, store: StateStore, base: State | None = None) -> None:
        self._given = base
        self._store = store
        self._fd = -1
        self._cond = threading.Condition()
        self._size = 0  # bytes of whole lines written; a failed write is cut back to it
        self._written = 0  # records written
        self._synced = 0  # records known to be on disk
        self._syncing = False
        # After a failed write or fsync nothing more is appended: Linux may report a later fsync as
        # successful although the failed pages were dropped, and the apply must stop sending anyway.
        self._broken: StateError | None = None
        self._base: State | None = None
        self.fsyncs = 0

    @property
    def base(self) -> State:
        """The state this journal starts from (after folding a crashed apply's journal)."""
        if self._base is None:
            raise RuntimeError("journal is not open")
        return self._base

    def __enter__(self) -> Journal:
        store = self._store
        # An existing journal is a crashed apply's: fold it first so this one starts from a clean base.
        base = store.fold() if store.journal_path.exists() else (self._given or store.load())
        header = _encode(record_to_json(JournalHeader(base.lineage, base.serial)))
        try:
            store.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(store.journal_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        except OSError as e:
            raise StateError(f"cannot create journal {store.journal_display}: {e.strerror}") from e
        try:
            write_all(fd, header)
            if store.fsync:
                os.fsync(fd)
                fsync_dir(store.path.parent)
        except BaseException as e:
            os.close(fd)
            store.journal_path.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise StateError(f"cannot write journal {store.journal_display}: {e.strerror}") from e
            raise
        self._fd, self._size, self._base = fd, len(header), base
        store.ensure_gitignore()
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
        return self._store.redact_text(_encode(record_to_json(record)).decode("ascii")).encode("ascii")

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
            if not self._store.fsync:
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
        return StateError(f"cannot write journal {self._store.journal_display}: {e.strerror}")


def _encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
