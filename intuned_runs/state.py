"""The state store: what was submitted, kept crash-safe (SPEC §7 "Crash safety", §9 state file).

    state.json           the folded state: JSON, indent 2, keys sorted, written atomically
    state.json.journal   JSON lines since the last fold: a header, then intent/outcome records

An apply appends an intent (fsync'ed) before each request and the outcome after it; `fold()` replays the
journal into the state file and removes the journal. Readers replay the journal too and never write, so a
process killed at any instant leaves every journaled submission visible and every other intent `unknown`.
The store keeps whatever requests it is given: callers hand it redacted requests (placeholders for secrets);
an optional Redactor masks any secret value that slipped through, as defence in depth (SPEC §4).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from intuned_runs.errors import StateError
from intuned_runs.redaction import Redactor

VERSION = 1
INTERRUPTED = "interrupted before the outcome was recorded"
GITIGNORE = "*.lock\n*.journal\nemulator/\n"
_RESTORE = "restore it from git or your CI artifacts"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with `Z`, seconds precision: `2026-11-28T16:20:00Z`."""
    if moment.tzinfo is None:
        raise ValueError("timestamp() needs an aware datetime")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------- the data


@dataclass(frozen=True, slots=True)
class Unknown:
    since: str
    reason: str


@dataclass(frozen=True, slots=True)
class Entry:
    fingerprint: str
    request: dict[str, Any]  # redacted, as written (no defaults filled in)
    run_id: str | None = None
    submitted_at: str | None = None
    status: str | None = None
    status_at: str | None = None
    unknown: Unknown | None = None
    removed_at: str | None = None

    @property
    def is_tombstone(self) -> bool:
        """Forgotten: kept so that re-adding the identical run is unchanged, not new (SPEC §6)."""
        return self.removed_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "request": self.request,
            "run_id": self.run_id,
            "submitted_at": self.submitted_at,
            "status": self.status,
            "status_at": self.status_at,
            "unknown": None if self.unknown is None else {"since": self.unknown.since, "reason": self.unknown.reason},
            "removed_at": self.removed_at,
        }


@dataclass(frozen=True, kw_only=True)
class State:
    version: int = VERSION
    lineage: str
    serial: int
    workspace_id: str | None
    fingerprint_version: int
    schema_version: str | None
    entries: Mapping[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A read-only view, so a State handed around can never be edited behind the store's back.
        object.__setattr__(self, "entries", MappingProxyType(dict(self.entries)))

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
        """Recompute every fingerprint (tombstones too) from the stored redacted request (SPEC §6)."""
        entries = {key: replace(entry, fingerprint=fn(key, entry.request)) for key, entry in self.entries.items()}
        return replace(self, entries=entries, fingerprint_version=fingerprint_version, schema_version=schema_version)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "lineage": self.lineage,
            "serial": self.serial,
            "workspace_id": self.workspace_id,
            "fingerprint_version": self.fingerprint_version,
            "schema_version": self.schema_version,
            "entries": {key: entry.to_json() for key, entry in self.entries.items()},
        }


def bump(state: State) -> State:
    return replace(state, serial=state.serial + 1)


def dumps(state: State) -> str:
    """The state file's exact text (SPEC §9): it diffs and merges well in git."""
    return json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"


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
        raise ValueError(f"a record must be a JSON object, not {_json_type(raw)}")
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
            raise ValueError(f"{name} record field {json_name!r} must not be {_json_type(value)}")
        values[attr] = value
    record: Record = cls(**values)
    return record


def replay(state: State, records: Iterable[Record], *, source: str = "journal") -> State:
    """Apply journal records to a state: pure, no I/O, no clock.

    The serial rises by exactly 1 when the records hold a submission, an outcome other than `failed`
    (an intent left without outcome counts as one), a forget, a move or a workspace; status-only and
    failed-only journals leave it as it was (SPEC §9).
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
            entries[record.key] = _unknown_entry(intent, record.at, record.reason)
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
        entries[intent.key] = _unknown_entry(intent, intent.at, INTERRUPTED)
        changed = True
    return replace(
        state,
        serial=state.serial + 1 if changed else state.serial,
        workspace_id=workspace_id,
        entries=entries,
    )


def _unknown_entry(intent: IntentRecord, since: str, reason: str) -> Entry:
    return Entry(fingerprint=intent.fingerprint, request=intent.request, unknown=Unknown(since, reason))


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

    def __init__(self, store: StateStore) -> None:
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
        base = store.fold() if store.journal_path.exists() else store.load()
        header = _encode(record_to_json(JournalHeader(base.lineage, base.serial)))
        try:
            store.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(store.journal_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        except OSError as e:
            raise StateError(f"cannot create journal {store.journal_display}: {e.strerror}") from e
        try:
            _write_all(fd, header)
            if store.fsync:
                os.fsync(fd)
                _fsync_dir(store.path.parent)
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

    def append(self, record: Record) -> None:
        """Write one record (it survives the process being killed, not necessarily a power loss)."""
        line = _encode(self._store.redact(record_to_json(record)))
        with self._cond:
            self._write(line)

    def append_durable(self, record: Record) -> None:
        """Write one record and return only once it (and every record before it) is on disk."""
        line = _encode(self._store.redact(record_to_json(record)))
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
            _write_all(self._fd, line)
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------- the store


class StateStore:
    """The state file at `path` and its journal `<path>.journal`.

    Reading (`load`) never writes. `journal`, `fold` and `write` change files: the caller holds the
    state lock (`intuned_runs.locking.StateLock`).
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        fsync: bool = True,
        redactor: Redactor | None = None,
        display: str | None = None,
        fingerprint_version: int = 0,
        schema_version: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.clock = clock
        self.fsync = fsync
        self.display = display if display is not None else str(path)
        self.journal_display = self.display + ".journal"
        self._redactor = redactor
        # What a missing state file loads as; the caller recomputes when its versions differ.
        self._fingerprint_version = fingerprint_version
        self._schema_version = schema_version

    def now(self) -> str:
        return timestamp(self.clock())

    def redact(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self._redactor is None or not self._redactor.values:
            return obj
        redacted: dict[str, Any] = _redact_strings(obj, self._redactor)
        return redacted

    # -- reading

    def load(self) -> State:
        # The journal is read before the state file: a fold in between then shows up as a newer serial
        # (journal ignored) instead of a state that has lost the journal's records.
        header, records = read_journal(self.journal_path, self.journal_display)
        state = self.read_file()
        if header is None:
            return state if state is not None else self._empty()
        if state is None:
            return replay(replace(self._empty(), lineage=header.lineage), records, source=self.journal_display)
        if header.lineage != state.lineage:
            raise StateError(
                f"journal {self.journal_display} belongs to another state (lineage {header.lineage}, "
                f"while {self.display} has lineage {state.lineage}): restore the state file it belongs "
                "to, or remove the journal if you are sure it is stale"
            )
        if state.serial > header.base_serial:
            return state  # already folded: a crash came between the rename and the journal's removal
        return replay(state, records, source=self.journal_display)

    def read_file(self) -> State | None:
        """The state file alone, without the journal; None only when it does not exist."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"cannot read state file {self.display}: {e.strerror}") from e
        return self._parse(data)

    def _empty(self) -> State:
        return State.empty(self._fingerprint_version, self._schema_version)

    def _fail(self, what: str) -> StateError:
        return StateError(f"state file {self.display} {what}: {_RESTORE}; refusing to treat it as empty")

    def _parse(self, data: bytes) -> State:
        if not data.strip():
            raise self._fail("is empty")
        try:
            raw = json.loads(data)
        except UnicodeDecodeError as e:
            raise self._fail("is not valid UTF-8") from e
        except json.JSONDecodeError as e:
            raise self._fail(f"is not valid JSON (line {e.lineno})") from e
        if not isinstance(raw, dict):
            raise self._fail(f"holds {_json_type(raw)}, not a JSON object")
        if "version" not in raw:
            raise self._fail("has no 'version'")
        version = raw["version"]
        if version != VERSION or type(version) is not int:
            if type(version) is int and version > VERSION:
                raise StateError(
                    f"state file {self.display} has version {version}, written by a newer intuned-runs "
                    f"(this one reads version {VERSION}): upgrade intuned-runs"
                )
            raise self._fail(f"has unknown version {json.dumps(version)}")
        lineage = self._field(raw, "lineage", _STR, "a string")
        serial = self._field(raw, "serial", (int,), "an integer")
        workspace_id = self._field(raw, "workspace_id", _OPT_STR, "a string or null")
        fingerprint_version = self._field(raw, "fingerprint_version", (int,), "an integer")
        schema_version = self._field(raw, "schema_version", _OPT_STR, "a string or null")
        raw_entries = self._field(raw, "entries", (dict,), "an object")
        entries = {key: self._entry(key, value) for key, value in raw_entries.items()}
        return State(
            version=version,
            lineage=lineage,
            serial=serial,
            workspace_id=workspace_id,
            fingerprint_version=fingerprint_version,
            schema_version=schema_version,
            entries=entries,
        )

    def _field(self, raw: dict[str, Any], name: str, types: tuple[type, ...], expected: str) -> Any:
        if name not in raw:
            raise self._fail(f"is missing {name!r}")
        value = raw[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise self._fail(f"has {_json_type(value)} for {name!r}, expected {expected}")
        return value

    def _entry(self, key: str, raw: Any) -> Entry:
        # The hot path of a 10,000-entry load: one dict lookup per field and one type test each.
        if type(raw) is not dict:
            raise self._fail(f"has {_json_type(raw)} for entry {key!r}, expected an object")
        try:
            fingerprint = raw["fingerprint"]
            request = raw["request"]
            run_id = raw["run_id"]
            submitted_at = raw["submitted_at"]
            status = raw["status"]
            status_at = raw["status_at"]
            unknown_raw = raw["unknown"]
            removed_at = raw["removed_at"]
        except KeyError as e:
            raise self._fail(f"is missing {e.args[0]!r} in entry {key!r}") from None
        if not (
            type(fingerprint) is str
            and type(request) is dict
            and (run_id is None or type(run_id) is str)
            and (submitted_at is None or type(submitted_at) is str)
            and (status is None or type(status) is str)
            and (status_at is None or type(status_at) is str)
            and (removed_at is None or type(removed_at) is str)
        ):
            raise self._fail(f"has a field of the wrong type in entry {key!r}")
        unknown = None
        if unknown_raw is not None:
            if not (
                type(unknown_raw) is dict
                and type(unknown_raw.get("since")) is str
                and type(unknown_raw.get("reason")) is str
            ):
                raise self._fail(f"has a malformed 'unknown' in entry {key!r}")
            unknown = Unknown(unknown_raw["since"], unknown_raw["reason"])
        return Entry(fingerprint, request, run_id, submitted_at, status, status_at, unknown, removed_at)

    # -- writing (the caller holds the lock)

    def journal(self) -> Journal:
        """`with store.journal() as journal:` for one apply; an existing journal is folded first."""
        return Journal(self)

    def fold(self, *, upgrade: Callable[[State], State] | None = None) -> State:
        """Replay the journal into the state file, then remove the journal.

        `upgrade` (e.g. recomputing fingerprints with `State.with_fingerprints`) is applied before
        writing, so recomputed fingerprints are stored once instead of on every load. It returns the
        very same State when there is nothing to upgrade; then, with no journal, no file is touched.
        """
        had_journal = self.journal_path.exists()
        loaded = self.load()
        state = loaded if upgrade is None else upgrade(loaded)
        if had_journal or state is not loaded:
            self._write_atomic(state)
        if had_journal:
            self.journal_path.unlink(missing_ok=True)
            if self.fsync:
                _fsync_dir(self.path.parent)
        return state

    def write(self, state: State) -> None:
        """Replace the state file (for `state` commands; the serial is the caller's, see `bump`)."""
        if self.journal_path.exists():
            # Writing over an unfolded journal would hide its intents behind a newer serial.
            raise RuntimeError("fold() the journal before write()")
        self._write_atomic(state)

    def _write_atomic(self, state: State) -> None:
        """Temp file in the same directory, fsync, rename, fsync the directory: never half-written."""
        directory = self.path.parent
        data = json.dumps(self.redact(state.to_json()), indent=2, sort_keys=True).encode("ascii") + b"\n"
        temp = directory / f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                _write_all(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
            if self.fsync:
                _fsync_dir(directory)
        except BaseException as e:
            temp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise StateError(f"cannot write state file {self.display}: {e.strerror}") from e
            raise
        self.ensure_gitignore()

    def ensure_gitignore(self) -> None:
        """Write `.intuned-runs/.gitignore` if absent (SPEC §9).

        Only in a directory named `.intuned-runs` (the state's own, or its parent for the emulator's
        state): a state kept elsewhere lives in the user's directory, where a `*.lock` rule could hide
        their lock files (Cargo.lock, poetry.lock) from git.
        """
        for directory in (self.path.parent, self.path.parent.parent):
            if directory.name == ".intuned-runs":
                try:
                    fd = os.open(directory / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                except (FileExistsError, FileNotFoundError):
                    return
                try:
                    _write_all(fd, GITIGNORE.encode("ascii"))
                finally:
                    os.close(fd)
                return


def _redact_strings(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {redactor(k): _redact_strings(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v, redactor) for v in value]
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
