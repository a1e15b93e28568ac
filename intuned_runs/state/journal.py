"""Journal records and their replay (docs/state.md, Journal): pure data and functions, no I/O.

An apply records an intent (durable) before each request and the outcome after it. `replay` turns a state
plus records into the next state; readers replay and never write, so a process killed at any instant
leaves every journaled submission visible and every other intent `unknown`. Backends keep the records
their own way (JSON lines in a file, rows, objects); the file backend's lines are `encode(record)`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import msgspec
from msgspec import Struct
from msgspec.structs import replace

from intuned_runs.compact import Interner
from intuned_runs.errors import StateError
from intuned_runs.problems import JSON_FILE_WORDS, json_type
from intuned_runs.state.model import Entry, State, Submission, Unknown, with_status, with_submission

_T = TypeVar("_T")

# An intent replayed without its outcome: the process died (or lost its store) after sending.
NO_OUTCOME = "interrupted before the outcome was recorded"


class JournalHeader(Struct, frozen=True):
    lineage: str
    base_serial: int


class IntentRecord(Struct, frozen=True):
    """Written and fsync'ed before the request is sent."""

    key: str
    fingerprint: str
    request: dict[str, Any]
    at: str


class SubmittedRecord(Struct, frozen=True):
    key: str
    run_id: str
    status: str | None
    at: str


class FailedRecord(Struct, frozen=True):
    """The server surely started nothing: the intent is cancelled, the entry unchanged."""

    key: str
    at: str


class UnknownRecord(Struct, frozen=True):
    key: str
    reason: str
    at: str


class ForgetRecord(Struct, frozen=True):
    key: str
    at: str


class MoveRecord(Struct, frozen=True):
    source: str  # "from" in the journal
    target: str  # "to"
    at: str


class StatusRecord(Struct, frozen=True):
    key: str
    status: str
    at: str


class WorkspaceRecord(Struct, frozen=True):
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
        raise ValueError(f"a record must be a JSON object, not {JSON_FILE_WORDS[json_type(raw)]}")
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
            raise ValueError(f"{name} record field {json_name!r} must not be {JSON_FILE_WORDS[json_type(value)]}")
        values[attr] = value
    record: Record = cls(**values)
    return record


def replay(state: State, records: Iterable[Record], *, source: str = "journal") -> State:
    """Apply journal records to a state: pure, no I/O, no clock.

    The serial rises by exactly 1 when the records hold a submission, an outcome other than `failed`
    (an intent left without outcome counts as one), a forget, a move or a workspace; status-only and
    failed-only journals leave it as it was (docs/state.md).

    Each submission goes first into its entry's history (the last 10, docs/state.md, History); a status
    updates the history item of the entry's run ID. An intent left without outcome reads as unknown and
    `in_flight`: a plan tells it apart while an apply holds the lock.
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
            before = entries.get(record.key)  # a tombstone or an unknown too: the history goes on
            submission = Submission(record.run_id, record.at, intent.fingerprint, record.status)
            entries[record.key] = Entry(
                fingerprint=intent.fingerprint,
                request=intent.request,
                run_id=record.run_id,
                submitted_at=record.at,
                status=record.status,
                status_at=record.at if record.status is not None else None,
                history=with_submission(before.history if before is not None else (), submission),
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
            entry = entries.get(record.key)
            if entry is not None:
                history = with_status(entry.history, entry.run_id, record.status)
                entries[record.key] = replace(entry, status=record.status, status_at=record.at, history=history)
        else:
            workspace_id = record.workspace_id
            changed = True
    for intent in pending.values():
        entries[intent.key] = _unknown_entry(intent, intent.at, NO_OUTCOME, entries.get(intent.key), in_flight=True)
        changed = True
    return replace(
        state,
        serial=state.serial + 1 if changed else state.serial,
        workspace_id=workspace_id,
        entries=entries,
    )


def _unknown_entry(
    intent: IntentRecord, since: str, reason: str, before: Entry | None, *, in_flight: bool = False
) -> Entry:
    """The intent's definition, marked unknown, remembering the last submitted entry it replaces; the
    history stays on the entry (an unknown outcome is no submission of its own until resolved)."""
    previous = before
    if before is not None and before.unknown is not None:
        previous = before.unknown.previous  # unknown again: the last known submission stays
    if previous is not None and (previous.is_tombstone or previous.run_id is None):
        previous = None
    if previous is not None and previous.history:
        previous = replace(previous, history=())
    return Entry(
        fingerprint=intent.fingerprint,
        request=intent.request,
        unknown=Unknown(since, reason, previous, in_flight),
        history=before.history if before is not None else (),
    )


def combine(
    state: State | None,
    header: JournalHeader | None,
    records: Iterable[Record],
    empty: Callable[[], State],
    *,
    display: str,
    journal_display: str,
) -> State:
    """What a reader sees, from the folded state (None: there is none) and the journal beside it, the same
    for every backend: a journal of another lineage is an error, one already folded (the state's serial is
    past its base) is ignored."""
    if header is None:
        return state if state is not None else empty()
    if state is None:
        return replay(replace(empty(), lineage=header.lineage), records, source=journal_display)
    if header.lineage != state.lineage:
        raise StateError(
            f"journal {journal_display} belongs to another state (lineage {header.lineage}, "
            f"while {display} has lineage {state.lineage}): restore the state file it belongs "
            "to, or remove the journal if you are sure it is stale"
        )
    if state.serial > header.base_serial:
        return state  # already folded: a crash came between writing the state and removing the journal
    return replay(state, records, source=journal_display)


def parse_journal(data: bytes, display: str) -> tuple[JournalHeader | None, list[Record]]:
    """Parse a journal's lines; a torn (unparsable) last line is what a crash leaves and is ignored."""
    header, records = read_journal(data, display)
    return header, list(records)


def read_journal(data: bytes, display: str) -> tuple[JournalHeader | None, Iterator[Record]]:
    """As `parse_journal`, with the records parsed as they are consumed: a fold of 100,000 never holds them
    all (docs/performance.md, Memory). A damaged line raises when the records reach it."""
    lines = _parsed_lines(data, display)
    first = next(lines, None)
    header = None if first is None else _checked(display, first[0], header_from_json, first[1])
    return header, (_checked(display, number, record_from_json, raw) for number, raw in lines)


def _checked(display: str, number: int, parse: Callable[[object], _T], raw: object) -> _T:
    try:
        return parse(raw)
    except ValueError as e:
        raise StateError(f"journal {display} line {number}: {e}") from e


def _parsed_lines(data: bytes, display: str) -> Iterator[tuple[int, Any]]:
    # Line by line, never a list of every line; requests share what they can (docs/performance.md, Memory).
    stream, compact = io.BytesIO(data), Interner()
    for number, line in enumerate(stream, 1):
        try:
            raw = json.loads(line.removesuffix(b"\n"))
            if type(raw) is dict and type(raw.get("request")) is dict:
                raw["request"] = compact.value(raw["request"])
        except ValueError as e:  # UnicodeDecodeError is a ValueError too
            if stream.tell() == len(data):  # the last line (the final newline may be missing or not)
                return
            raise StateError(
                f"journal {display} line {number} is damaged and is not the last line, so it cannot be "
                "trusted: inspect it (it records runs that may have been submitted), repair or remove "
                "that line, then retry"
            ) from e
        yield number, raw


def header_from_json(raw: object) -> JournalHeader:
    if not isinstance(raw, dict) or raw.get("type") != "header":
        raise ValueError("the first line must be the journal header")
    lineage, base_serial = raw.get("lineage"), raw.get("base_serial")
    if not isinstance(lineage, str) or type(base_serial) is not int:
        raise ValueError("the header needs a string 'lineage' and an integer 'base_serial'")
    return JournalHeader(lineage, base_serial)


_ENCODER = msgspec.json.Encoder(order="sorted")


def encode(record: Record | JournalHeader) -> bytes:
    """One journal line: compact JSON with sorted keys, ASCII, newline-terminated.

    msgspec writes it in under half of json's time, on apply's hot path (two records per run, while the
    other senders wait for the interpreter lock: docs/performance.md). It writes characters outside
    printable ASCII as they are, so such a line is json's, as is anything msgspec refuses. A float with an
    exponent is spelled `1e16`, not `1e+16`: the same number to every reader. (Requests reach the journal
    validated as JSON: no NaN, no infinity, string keys only.)"""
    data = record_to_json(record)
    line: bytes | None
    try:
        line = _ENCODER.encode(data)
    except (OverflowError, TypeError, ValueError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        line = None
    if line is not None and line.isascii() and b"\x7f" not in line:
        return line + b"\n"
    return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")
