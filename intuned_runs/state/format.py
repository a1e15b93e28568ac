"""The state file's format (docs/state.md, State file): the encoder and the decoder, in one place.

`dumps` writes indented JSON with sorted keys (it diffs and merges in git); `loads` reads it back, and any
file it cannot trust (unparsable, an unknown version, a field of the wrong type) is a StateError, never an
empty state, which would resubmit everything. Every backend stores this same document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from intuned_runs.compact import Interner
from intuned_runs.errors import StateError
from intuned_runs.problems import JSON_FILE_WORDS, json_type
from intuned_runs.state.model import HISTORY_LIMIT, VERSION, Entry, State, Submission, Unknown

RESTORE = "restore it from git or your CI artifacts"
_STR: tuple[type, ...] = (str,)
_OPT_STR: tuple[type, ...] = (str, type(None))


_ENTRIES = "\x00entries\x00"  # stands for the entries in the document's head: no state value holds it


def dumps(state: State) -> str:
    """The state file's exact text: it diffs and merges well in git."""
    return "".join(chunks(state))


def chunks(state: State) -> Iterator[str]:
    """The text of `dumps` in pieces of one entry each: the same bytes as `json.dumps(state.to_json(),
    indent=2, sort_keys=True)`, without a whole-document tree or a list of every token of it (a state of
    100,000 runs: docs/performance.md, Memory)."""
    head = {**state.to_json_head(), "entries": _ENTRIES}
    before, _, after = json.dumps(head, indent=2, sort_keys=True).partition(json.dumps(_ENTRIES))
    if not state.entries:
        yield before + "{}" + after + "\n"
        return
    yield before + "{"
    separator = "\n    "
    for key in sorted(state.entries):
        entry = json.dumps(state.entries[key].to_json(), indent=2, sort_keys=True).replace("\n", "\n    ")
        yield f"{separator}{json.dumps(key)}: {entry}"
        separator = ",\n    "
    yield "\n  }" + after + "\n"


def loads(data: bytes, display: str) -> State:
    """The state in `data`; `display` names the file (or object) in errors."""
    return _Decoder(display).decode(data)


def _words(value: object) -> str:
    return JSON_FILE_WORDS[json_type(value)]


def _parse(data: bytes) -> Any:
    """The document with each entry left as its undecoded text (a msgspec.Raw), which the decoder turns into an
    Entry one at a time: a 100 MB state is never one tree of dicts beside its Entries (docs/performance.md,
    Memory). None for what msgspec refuses, and for text that is not ASCII (the tool writes ASCII): json
    reads those, or words their error, before any entry is judged."""
    if not data.isascii():
        return None
    try:
        top = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
        raw = {key: msgspec.json.decode(value) for key, value in top.items() if key != "entries"}
        if "entries" in top:
            raw["entries"] = msgspec.json.decode(top["entries"], type=dict[str, msgspec.Raw])
        return raw
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _as_is(value: Any) -> Any:
    return value


def _compact_entry(raw: Any, compact: Interner) -> Any:
    if type(raw) is dict:
        for name in ("status", "status_at", "submitted_at"):
            if type(raw.get(name)) is str:
                raw[name] = compact.string(raw[name])
        if type(raw.get("request")) is dict:
            raw["request"] = compact.value(raw["request"])
        if type(raw.get("unknown")) is dict and type(raw["unknown"].get("previous")) is dict:
            raw["unknown"]["previous"] = _compact_entry(raw["unknown"]["previous"], compact)
    return raw


class _Decoder:
    def __init__(self, display: str) -> None:
        self.display = display

    def _fail(self, what: str) -> StateError:
        return StateError(f"state file {self.display} {what}: {RESTORE}; refusing to treat it as empty")

    def decode(self, data: bytes) -> State:
        if not data or data.isspace():  # not `strip()`: a copy of the whole file
            raise self._fail("is empty")
        raw = _parse(data)
        if raw is not None:
            try:
                return self._state(raw, msgspec.json.Decoder().decode)
            except (msgspec.DecodeError, msgspec.ValidationError):  # an entry msgspec refuses (1e999): json reads it
                pass
        try:
            raw = json.loads(data)
        except UnicodeDecodeError as e:
            raise self._fail("is not valid UTF-8") from e
        except json.JSONDecodeError as e:
            raise self._fail(f"is not valid JSON (line {e.lineno})") from e
        return self._state(raw, _as_is)

    def _state(self, raw: Any, decode: Callable[[Any], Any]) -> State:
        """`decode`: turns an entry's value in `raw` into its JSON value (a msgspec.Raw's text, or as is)."""
        if not isinstance(raw, dict):
            raise self._fail(f"holds {_words(raw)}, not a JSON object")
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
        compact = Interner()
        entries = {key: self._entry(key, _compact_entry(decode(value), compact)) for key, value in raw_entries.items()}
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
            raise self._fail(f"has {_words(value)} for {name!r}, expected {expected}")
        return value

    def _entry(self, key: str, raw: Any) -> Entry:
        # The hot path of a 10,000-entry load: one dict lookup per field and one type test each.
        if type(raw) is not dict:
            raise self._fail(f"has {_words(raw)} for entry {key!r}, expected an object")
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
            previous = unknown_raw.get("previous")
            unknown = Unknown(
                unknown_raw["since"],
                unknown_raw["reason"],
                None if previous is None else self._entry(key, previous),
            )
        history_raw = raw.get("history")  # absent in a state written before history existed: empty
        history = (
            () if not history_raw else self._history(key, history_raw, (run_id, submitted_at, fingerprint, status))
        )
        return Entry(fingerprint, request, run_id, submitted_at, status, status_at, unknown, removed_at, history)

    def _history(self, key: str, raw: Any, latest: tuple[Any, ...]) -> tuple[Submission, ...]:
        """`latest`: the entry's own run_id, submitted_at, fingerprint and status, whose equal strings the
        newest item shares instead of holding copies (100,000 entries: docs/performance.md, Memory)."""
        if type(raw) is not list:
            raise self._fail(f"has a malformed 'history' in entry {key!r}")
        items = []
        for item in raw[:HISTORY_LIMIT]:
            if not (
                type(item) is dict
                and (item.get("run_id") is None or type(item["run_id"]) is str)
                and type(item.get("submitted_at")) is str
                and type(item.get("fingerprint")) is str
                and (item.get("status") is None or type(item["status"]) is str)
                and type(item.get("adopted", False)) is bool
            ):
                raise self._fail(f"has a malformed 'history' in entry {key!r}")
            fields = (item.get("run_id"), item["submitted_at"], item["fingerprint"], item.get("status"))
            run_id, submitted_at, fingerprint, status = (
                known if value == known else value for value, known in zip(fields, latest, strict=True)
            )
            items.append(Submission(run_id, submitted_at, fingerprint, status, item.get("adopted", False)))
        return tuple(items)
