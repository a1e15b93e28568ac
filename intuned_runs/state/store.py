"""The file backend (docs/state.md): `state.json` and its journal, read, folded and written crash-safe.

    state.json           the folded state: JSON, indent 2, keys sorted, written atomically
    state.json.journal   JSON lines since the last fold: a header, then intent/outcome records
    state.json.lock      the OS lock (`fcntl.flock`) of the process that may write, naming its holder

The store keeps whatever requests it is given: callers hand it redacted requests (placeholders for
secrets); an optional Redactor masks any secret value that slipped through, as defence in depth
(docs/secrets.md, Redaction).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from intuned_runs.clock import Clock, timestamp, utc_now
from intuned_runs.errors import StateError
from intuned_runs.files import fsync_dir, write_all, write_atomic
from intuned_runs.redaction import Redactor
from intuned_runs.state.format import chunks, loads
from intuned_runs.state.lock import Holder, StateLock, force_unlock, live_holder
from intuned_runs.state.model import State

if TYPE_CHECKING:  # loaded where a journal is written or replayed (docs/performance.md, What a plan loads)
    from intuned_runs.state.journal import JournalHeader, Record
    from intuned_runs.state.writer import FileJournal

GITIGNORE = "*.lock\n*.journal\nemulator/\n"

Upgrade = Callable[[State], State]


class StateStore:
    """The state file at `path`, its journal `<path>.journal` and its lock `<path>.lock`.

    Reading (`load`) never writes. `journal`, `fold` and `write` change files: the caller holds the
    lock (`with store.lock(command, timeout):`).
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
        upgrade: Upgrade | None = None,
    ) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.clock = clock
        self.fsync = fsync
        self.display = display if display is not None else str(path)
        self.journal_display = self.display + ".journal"
        self._redactor = redactor
        # What a missing state file loads as; `upgrade` recomputes fingerprints when versions differ.
        self._fingerprint_version = fingerprint_version
        self._schema_version = schema_version
        self._upgrade = upgrade

    def now(self) -> str:
        return timestamp(self.clock())

    def redact_text(self, text: str) -> str:
        return text if self._redactor is None or not self._redactor.values else self._redactor(text)

    # -- reading

    def load(self) -> State:
        """The state with the journal replayed (and upgraded); writes nothing, takes no lock."""
        state = self._load_raw()
        return state if self._upgrade is None else self._upgrade(state)

    def _load_raw(self) -> State:
        # The journal is read before the state file: a fold in between then shows up as a newer serial
        # (journal ignored) instead of a state that has lost the journal's records.
        header, records = self._read_journal()
        state = self.read_file()
        if header is None:  # no journal: nothing to replay, and a plan never loads the journal module
            return state if state is not None else self._empty()
        from intuned_runs.state.journal import combine

        return combine(state, header, records, self._empty, display=self.display, journal_display=self.journal_display)

    def _read_journal(self) -> tuple[JournalHeader | None, Iterable[Record]]:
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return None, []
        except OSError as e:
            raise StateError(f"cannot read journal {self.journal_display}: {e.strerror}") from e
        from intuned_runs.state.journal import read_journal

        return read_journal(data, self.journal_display)

    def read_file(self) -> State | None:
        """The state file alone, without the journal; None only when it does not exist."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"cannot read state file {self.display}: {e.strerror}") from e
        return loads(data, self.display)

    def exists(self) -> bool:
        """Whether a state file (or a journal) is kept here: `state migrate` refuses to overwrite one."""
        return self.path.exists() or self.journal_path.exists()

    def _empty(self) -> State:
        return State.empty(self._fingerprint_version, self._schema_version)

    # -- the lock

    @contextlib.contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the state's lock (LockHeld names the holder), keeping lock and journal out of git."""
        with StateLock(self.path, command).acquire(timeout):
            self.ensure_gitignore()
            yield

    def holder(self) -> Holder | None:
        """Who holds the lock now, without taking it (plan's in-progress runs); None when nobody does."""
        return live_holder(self.path)

    def force_unlock(self) -> str | None:
        """`state unlock`: remove a lock left behind; returns the holder it named, or None."""
        return force_unlock(self.path)

    # -- writing (the caller holds the lock)

    def journal(self, base: State | None = None) -> FileJournal:
        """`with store.journal() as journal:` for one apply: the journal file, created now; an existing
        journal (a crashed apply's) is folded first.

        `base`: the state the caller has just folded (saves reading a large state file again)."""
        from intuned_runs.state.journal import JournalHeader, encode
        from intuned_runs.state.writer import FileJournal

        # An existing journal is a crashed apply's: fold it first so this one starts from a clean base.
        start = self.fold() if self.journal_path.exists() else (base or self.load())
        header = encode(JournalHeader(start.lineage, start.serial))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        except OSError as e:
            raise StateError(f"cannot create journal {self.journal_display}: {e.strerror}") from e
        try:
            write_all(fd, header)
            if self.fsync:
                os.fsync(fd)
                fsync_dir(self.path.parent)
        except BaseException as e:
            os.close(fd)
            self.journal_path.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise StateError(f"cannot write journal {self.journal_display}: {e.strerror}") from e
            raise
        self.ensure_gitignore()
        return FileJournal(
            fd, size=len(header), base=start, display=self.journal_display, redact=self.redact_text, fsync=self.fsync
        )

    def fold(self, *, upgrade: Upgrade | None = None) -> State:
        """Replay the journal into the state file, then remove the journal.

        The upgrade (recomputing fingerprints with `State.with_fingerprints`) is applied before writing,
        so recomputed fingerprints are stored once instead of on every load. It returns the very same
        State when there is nothing to upgrade; then, with no journal, no file is touched.
        """
        upgrade = upgrade or self._upgrade
        had_journal = self.journal_path.exists()
        loaded = self._load_raw()
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
        try:
            # One entry at a time (docs/performance.md, Memory); a secret lies within one entry's text.
            pieces = (self.redact_text(piece).encode("ascii") for piece in chunks(state))
            write_atomic(self.path, pieces, fsync=self.fsync)
        except OSError as e:
            raise StateError(f"cannot write state file {self.display}: {e.strerror}") from e
        self.ensure_gitignore()

    def ensure_gitignore(self) -> None:
        """Write `.intuned-runs/.gitignore` if absent (docs/state.md, State file).

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
