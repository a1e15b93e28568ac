"""The state store (docs/state.md): `state.json` and its journal, read, folded and written crash-safe.

    state.json           the folded state: JSON, indent 2, keys sorted, written atomically
    state.json.journal   JSON lines since the last fold: a header, then intent/outcome records

The store keeps whatever requests it is given: callers hand it redacted requests (placeholders for
secrets); an optional Redactor masks any secret value that slipped through, as defence in depth (docs/secrets.md).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from intuned_runs.errors import StateError
from intuned_runs.journal import Journal, fsync_dir, read_journal, replay, write_all
from intuned_runs.redaction import Redactor
from intuned_runs.state import VERSION, Clock, Entry, State, Unknown, dumps, json_type, timestamp, utc_now

GITIGNORE = "*.lock\n*.journal\nemulator/\n"
_RESTORE = "restore it from git or your CI artifacts"
_STR: tuple[type, ...] = (str,)
_OPT_STR: tuple[type, ...] = (str, type(None))


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

    def redact_text(self, text: str) -> str:
        return text if self._redactor is None or not self._redactor.values else self._redactor(text)

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
            raise self._fail(f"holds {json_type(raw)}, not a JSON object")
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
            raise self._fail(f"has {json_type(value)} for {name!r}, expected {expected}")
        return value

    def _entry(self, key: str, raw: Any) -> Entry:
        # The hot path of a 10,000-entry load: one dict lookup per field and one type test each.
        if type(raw) is not dict:
            raise self._fail(f"has {json_type(raw)} for entry {key!r}, expected an object")
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
        return Entry(fingerprint, request, run_id, submitted_at, status, status_at, unknown, removed_at)

    # -- writing (the caller holds the lock)

    def journal(self, base: State | None = None) -> Journal:
        """`with store.journal() as journal:` for one apply; an existing journal is folded first.

        `base`: the state the caller has just folded (saves reading a large state file again)."""
        return Journal(self, base)

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
                fsync_dir(self.path.parent)
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
        data = self.redact_text(dumps(state)).encode("ascii")
        temp = directory / f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                write_all(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
            if self.fsync:
                fsync_dir(directory)
        except BaseException as e:
            temp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise StateError(f"cannot write state file {self.display}: {e.strerror}") from e
            raise
        self.ensure_gitignore()

    def ensure_gitignore(self) -> None:
        """Write `.intuned-runs/.gitignore` if absent (docs/state.md).

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
                    write_all(fd, GITIGNORE.encode("ascii"))
                finally:
                    os.close(fd)
                return
