"""The S3 backend (docs/shared-state-s3.md): the state as one object, written only by compare-and-swap.

    KEY                       the folded state, the file backend's JSON (`state.format`); replaced only
                              with `If-Match` on the ETag of the version read, created with `If-None-Match: *`
    KEY.journal/LINEAGE/SEQ   journal objects since the last fold (`state.s3_journal`)
    KEY.lock                  the lease of the process that may write (`state.s3_lease`)

Readers (`load`) list the journal, then read the state, then replay: no lock, no write. An endpoint that
does not enforce conditional writes would turn every guarantee into a silent overwrite, so the first lock
probes it and refuses to keep state there. boto3 is imported (by `state.s3_objects`) when this module is:
`open_backend` imports it for `s3://` states only and words a missing boto3 as the pip command.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from msgspec.structs import replace

from intuned_runs.clock import Clock, timestamp, utc_now
from intuned_runs.errors import StateError
from intuned_runs.redaction import Redactor
from intuned_runs.state.format import dumps, loads
from intuned_runs.state.journal import JournalHeader, Record, parse_journal, replay
from intuned_runs.state.lock import Holder
from intuned_runs.state.model import State
from intuned_runs.state.s3_journal import ObjectJournal
from intuned_runs.state.s3_lease import Lease, force_unlock, lease_seconds, live_holder
from intuned_runs.state.s3_objects import POOL, Conflict, Objects, S3Address

Upgrade = Callable[[State], State]
NOT_ENFORCED = "S3 endpoint does not enforce conditional writes: refusing to keep state there"
_JOURNAL_NAME = re.compile(r"([^/]+)/(\d+)")
_probed: set[tuple[str | None, str]] = set()  # (endpoint, bucket) found to enforce conditional writes


class _Newer(StateError):
    """A journal object continues a newer serial than the state object read."""


class S3Backend:
    """The state at `s3://BUCKET/KEY`. `journal`, `fold` and `write` need the lock (`with backend.lock(…):`)."""

    def __init__(
        self,
        location: S3Address,
        *,
        display: str | None = None,
        redactor: Redactor | None = None,
        upgrade: Upgrade | None = None,
        fingerprint_version: int = 0,
        schema_version: str | None = None,
        clock: Clock = utc_now,
        lease: float | None = None,
    ) -> None:
        self.display = display if display is not None else f"s3://{location.bucket}/{location.key}"
        self.key = location.key
        self.journal_prefix = self.key + ".journal/"
        self.lock_key = self.key + ".lock"
        self.clock = clock
        self.objects = Objects(location, display=self.display)
        self._endpoint = location.endpoint
        self._redactor = redactor
        self._upgrade = upgrade
        self._fingerprint_version = fingerprint_version
        self._schema_version = schema_version
        self._lease_seconds = lease
        self._etag: str | None = None  # of the state object as last read; None: there was none
        self._lease: Lease | None = None

    def now(self) -> str:
        return timestamp(self.clock())

    def redact_text(self, text: str) -> str:
        return text if self._redactor is None or not self._redactor.values else self._redactor(text)

    # -- reading

    def load(self) -> State:
        state, _ = self._read()
        return state if self._upgrade is None else self._upgrade(state)

    def _read(self) -> tuple[State, list[str]]:
        """The state with its journal replayed, and every journal object's key (stale ones too)."""
        for attempt in range(3):
            # The journal is listed before the state is read: a fold in between shows up as a newer
            # serial (the journal is ignored), never as a state that has lost the journal's records.
            keys = self.objects.list(self.journal_prefix)
            got = self.objects.get(self.key)
            self._etag = None if got is None else got.etag
            state = None if got is None else loads(got.body, self.display)
            bodies = self._read_objects(keys)
            if None in bodies.values() and attempt < 2:
                continue  # removed by a fold while we read: read again
            try:
                return self._replayed(state, keys, bodies), keys
            except _Newer:
                if attempt == 2:
                    raise
                time.sleep(0.2)  # a journal newer than the state read: read both again
        raise AssertionError("unreachable")

    def _read_objects(self, keys: list[str]) -> dict[str, bytes | None]:
        if not keys:
            return {}

        def body(key: str) -> bytes | None:
            got = self.objects.get(key)
            return None if got is None else got.body

        with ThreadPoolExecutor(max_workers=min(POOL // 2, len(keys))) as pool:
            return dict(zip(keys, pool.map(body, keys), strict=True))

    def _replayed(self, state: State | None, keys: list[str], bodies: dict[str, bytes | None]) -> State:
        journal: list[tuple[str, int, str, JournalHeader | None, list[Record]]] = []
        for key in keys:
            match = _JOURNAL_NAME.fullmatch(key[len(self.journal_prefix) :])
            if match is None:
                continue  # not a journal object of this tool
            data = bodies[key]
            if data is None:
                raise StateError(f"journal object {self.objects.url(key)} disappeared while it was read: retry")
            header, kept = parse_journal(data, self.objects.url(key))
            journal.append((match[1], int(match[2]), key, header, kept))
        journal.sort(key=lambda item: (item[0], item[1]))
        if not journal:
            return state if state is not None else self._empty()
        lineages = {lineage for lineage, *_ in journal}
        base = state if state is not None else replace(self._empty(), lineage=sorted(lineages)[0])
        foreign = sorted(lineages - {base.lineage})
        if foreign:
            raise StateError(
                f"journal {self.objects.url(self.journal_prefix[:-1])} belongs to another state (lineage {foreign[0]}, "
                f"while {self.display} has lineage {base.lineage}): restore the state file it belongs to, "
                "or remove the journal if you are sure it is stale"
            )
        # Objects of an older base serial were folded already (a crash came before their removal).
        current = [item for item in journal if item[3] is None or item[3].base_serial >= base.serial]
        records: list[Record] = []
        for position, (_, seq, key, header, found) in enumerate(current, 1):
            if header is None:
                if position == len(current):
                    break  # a torn last object: what a crash may leave, as a torn last line
                raise StateError(
                    f"journal object {self.objects.url(key)} is damaged and is not the last one, so it cannot "
                    "be trusted: inspect it (it records runs that may have been submitted), then retry"
                )
            if header.base_serial != base.serial:
                raise _Newer(
                    f"journal object {self.objects.url(key)} continues serial {header.base_serial}, but "
                    f"{self.display} has serial {base.serial}: the state object was replaced by an older "
                    "version; restore the newest one"
                )
            if seq != position:
                missing = self.objects.url(key.rsplit("/", 1)[0] + f"/{position:010d}")
                raise StateError(
                    f"journal object {missing} is missing while later ones exist: it may record runs that "
                    "were submitted; restore it, or remove the later ones if you are sure, then retry"
                )
            records.extend(found)
        return replay(base, records, source=f"journal {self.display}.journal")

    def _empty(self) -> State:
        return State.empty(self._fingerprint_version, self._schema_version)

    # -- the lock

    @contextlib.contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the lease on the state (LockHeld names the holder)."""
        self._probe()
        seconds = self._lease_seconds if self._lease_seconds is not None else lease_seconds()
        lease = Lease(self.objects, self.lock_key, command, seconds=seconds)
        lease.acquire(timeout)
        self._lease = lease
        try:
            yield
        finally:
            self._lease = None
            lease.release()

    def _check_lock(self) -> None:
        if self._lease is not None:
            self._lease.check()

    def _probe(self) -> None:
        """Refuse an endpoint that accepts a second `If-None-Match: *` creation of the same object."""
        where = (self._endpoint, self.objects.bucket)
        if where in _probed:
            return
        key = f"{self.key}.probe/{uuid.uuid4().hex}"
        self.objects.put(key, b"first\n")
        try:
            self.objects.put(key, b"second\n")
        except Conflict:
            _probed.add(where)
        finally:
            with contextlib.suppress(StateError):
                self.objects.delete(key)
        if where not in _probed:
            raise StateError(NOT_ENFORCED)

    def exists(self) -> bool:
        """Whether a state (or a journal) is kept here: `state migrate` never overwrites one."""
        return self.objects.get(self.key) is not None or bool(self.objects.list(self.journal_prefix))

    def holder(self) -> Holder | None:
        """Who holds the lease now, without taking it (plan's in-progress runs); None when nobody does."""
        return live_holder(self.objects, self.lock_key)

    def force_unlock(self) -> str | None:
        """`state unlock`: remove the lease object; returns the holder it named, or None."""
        return force_unlock(self.objects, self.lock_key)

    # -- writing (the caller holds the lock)

    def journal(self, base: State | None = None) -> ObjectJournal:
        """`with backend.journal() as journal:` for one apply; an existing journal (a crashed apply's) is
        folded first, so this one starts from a clean base at SEQ 1."""
        self._check_lock()
        start = self.fold() if self.objects.list(self.journal_prefix) else (base or self.load())
        return ObjectJournal(
            self.objects,
            prefix=self.journal_prefix,
            base=start,
            redact=self.redact_text,
            check_lock=self._check_lock,
        )

    def fold(self, *, upgrade: Upgrade | None = None) -> State:
        """Replay the journal into the state object (compare-and-swap), then remove the journal objects."""
        self._check_lock()
        upgrade = upgrade or self._upgrade
        loaded, keys = self._read()
        state = loaded if upgrade is None else upgrade(loaded)
        if keys or state is not loaded:
            self._replace(state)
        if keys:
            self.objects.delete_many(keys)
        return state

    def write(self, state: State) -> None:
        """Replace the state object (for `state` commands; the serial is the caller's, see `bump`)."""
        self._check_lock()
        if self.objects.list(self.journal_prefix):
            # Writing over an unfolded journal would hide its intents behind a newer serial.
            raise RuntimeError("fold() the journal before write()")
        self._replace(state)

    def _replace(self, state: State) -> None:
        body = self.redact_text(dumps(state)).encode("ascii")
        try:
            self._etag = self.objects.put(self.key, body, if_match=self._etag)
        except Conflict:
            what = "was created" if self._etag is None else "was changed"
            raise StateError(
                f"state {self.display} {what} by another process since this one read it (a lost race: "
                "nothing was overwritten); retry, and make sure every runner uses this same state URL, "
                "so they share one lock"
            ) from None
