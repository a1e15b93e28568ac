"""The postgresql backend (docs/shared-state.md, PostgreSQL): many named states in one database, one
advisory lock per state, journal records as committed rows.

    SCHEMA.states           name → the state document (the state file's exact JSON, docs/state.md)
    SCHEMA.journals         name → the journal's header (lineage, base serial) while an apply runs
    SCHEMA.journal_records  (name, seq) → one journal record, as the file journal's line
    SCHEMA.locks            name → the lock holder's pid, host, since, command (for refusal messages)

The lock is a session-level advisory lock taken on the connection that does all of the holder's writes:
when the process or its connection dies the server releases it, and nothing more can be written in its
name. Reading (`load`) takes no lock and writes nothing: it reads one snapshot on a connection of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from intuned_runs.clock import Clock, timestamp, utc_now
from intuned_runs.errors import LockHeld, StateError
from intuned_runs.location import PostgresLocation
from intuned_runs.redaction import Redactor
from intuned_runs.state.format import dumps, loads
from intuned_runs.state.journal import JournalHeader, Record, combine, parse_journal
from intuned_runs.state.model import State
from intuned_runs.state.pg_journal import RowJournal, lost

POLL_INTERVAL = 0.2
CONNECT_TIMEOUT = 10  # seconds
# One key for creating the tables, so processes starting at once do not race on CREATE.
_SETUP_KEY = int.from_bytes(hashlib.sha256(b"intuned-runs:setup").digest()[:8], "big", signed=True)

_TABLES = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    "CREATE TABLE IF NOT EXISTS {schema}.states (name text PRIMARY KEY, document text NOT NULL, "
    "lineage text NOT NULL, serial bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS {schema}.journals (name text PRIMARY KEY, lineage text NOT NULL, "
    "base_serial bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {schema}.journal_records (name text NOT NULL, seq bigint NOT NULL, "
    "record text NOT NULL, PRIMARY KEY (name, seq))",
    "CREATE TABLE IF NOT EXISTS {schema}.locks (name text PRIMARY KEY, pid integer, host text, since text, "
    "command text, backend_pid integer)",
)


class PostgresBackend:
    """The state `location.name` in the database of `location.conninfo`."""

    def __init__(
        self,
        location: PostgresLocation,
        *,
        display: str | None = None,
        redactor: Redactor | None = None,
        upgrade: Callable[[State], State] | None = None,
        fingerprint_version: int = 0,
        schema_version: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.location = location
        self.name = location.name
        self.display = display if display is not None else location.display
        self.journal_display = f"{self.display} (journal)"
        self.clock = clock
        self._redactor = redactor
        self._upgrade = upgrade
        self._fingerprint_version = fingerprint_version
        self._schema_version = schema_version
        self._schema = sql.Identifier(location.schema)
        key = f"intuned-runs:{location.schema}:{location.name}".encode()
        self._key = int.from_bytes(hashlib.sha256(key).digest()[:8], "big", signed=True)
        self._conn: psycopg.Connection[Any] | None = None  # the lock holder's connection

    def now(self) -> str:
        return timestamp(self.clock())

    def redact_text(self, text: str) -> str:
        return text if self._redactor is None or not self._redactor.values else self._redactor(text)

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(schema=self._schema)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.location.conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="intuned-runs",
                # A dead network is noticed within a minute, not after the kernel's two hours: the journal
                # then fails, and the apply stops sending (docs/shared-state.md, PostgreSQL).
                keepalives=1,
                keepalives_idle=20,
                keepalives_interval=10,
                keepalives_count=3,
            )
        except psycopg.Error as e:
            raise StateError(f"cannot connect to state {self.display}: {_first_line(e)}") from None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """The lock holder's connection, or a fresh one for a reader; database errors as StateError."""
        conn = self._conn
        try:
            if conn is not None:
                yield conn
                return
            with self._connect() as fresh:
                yield fresh
        except psycopg.Error as e:
            raise lost(self.display, e) from None

    # -- reading

    def load(self) -> State:
        """The state with the journal replayed (and upgraded): one snapshot, no lock, no write."""
        state = self._load_raw()
        return state if self._upgrade is None else self._upgrade(state)

    def _load_raw(self, conn: psycopg.Connection[Any] | None = None) -> State:
        if conn is None:
            with self._reading() as reader:
                return self._load_raw(reader)
        with conn.transaction():
            if self._conn is None:  # a reader: every table read from one snapshot
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if not self._tables_exist(conn):
                return self._empty()
            row = conn.execute(self._q("SELECT document FROM {schema}.states WHERE name = %s"), (self.name,)).fetchone()
            head = conn.execute(
                self._q("SELECT lineage, base_serial FROM {schema}.journals WHERE name = %s"), (self.name,)
            ).fetchone()
            lines = conn.execute(
                self._q("SELECT record FROM {schema}.journal_records WHERE name = %s ORDER BY seq"), (self.name,)
            ).fetchall()
        state = None if row is None else loads(row[0].encode("utf-8"), self.display)
        header: JournalHeader | None = None
        records: list[Record] = []
        if head is not None:
            header = JournalHeader(head[0], head[1])
            # The rows read as the file journal's lines, so damage is judged the same way: a damaged last
            # record is what an interrupted write leaves (ignored), a damaged earlier one is an error.
            data = "".join(f"{line}\n" for (line,) in lines).encode("utf-8")
            _, records = parse_journal(b'{"type":"header","lineage":"","base_serial":0}\n' + data, self.journal_display)
        elif lines:
            raise StateError(
                f"journal {self.journal_display} has records but no header: inspect the table "
                f"{self.location.schema}.journal_records (name {self.name!r}), repair or remove them, then retry"
            )
        return combine(state, header, records, self._empty, display=self.display, journal_display=self.journal_display)

    def _tables_exist(self, conn: psycopg.Connection[Any]) -> bool:
        return _exists(conn, self.location.schema, "journal_records") and _exists(conn, self.location.schema, "locks")

    def _empty(self) -> State:
        return State.empty(self._fingerprint_version, self._schema_version)

    # -- the lock

    @contextlib.contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the state's advisory lock on a connection of its own (LockHeld names the holder)."""
        if self._conn is not None:
            raise RuntimeError("PostgresBackend.lock() is not reentrant")
        conn = self._connect()
        try:
            self.create_tables(conn)
            self._acquire(conn, command, timeout)
        except BaseException as e:
            conn.close()
            if isinstance(e, psycopg.Error):
                raise lost(self.display, e) from None
            raise
        self._conn = conn
        try:
            yield
        finally:
            self._conn = None
            with contextlib.suppress(psycopg.Error):  # a lost connection has released the lock already
                conn.execute(self._q("DELETE FROM {schema}.locks WHERE name = %s"), (self.name,))
                conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            conn.close()

    def create_tables(self, conn: psycopg.Connection[Any]) -> None:
        """Create the schema and tables on first use; several processes may start at once."""
        if self._tables_exist(conn):
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_KEY,))
            for statement in _TABLES:
                conn.execute(self._q(statement))

    def _acquire(self, conn: psycopg.Connection[Any], command: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            if row is not None and row[0]:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waited = f" (waited {timeout:g}s)" if timeout > 0 else ""
                raise LockHeld(
                    f"state is locked by {self._holder(conn)}{waited}; wait for it or use --lock-timeout DUR "
                    "(the database frees the lock when its holder's connection ends)"
                )
            time.sleep(min(POLL_INTERVAL, remaining))
        conn.execute(
            self._q(
                "INSERT INTO {schema}.locks (name, pid, host, since, command, backend_pid) "
                "VALUES (%s, %s, %s, %s, %s, pg_backend_pid()) ON CONFLICT (name) DO UPDATE SET "
                "pid = EXCLUDED.pid, host = EXCLUDED.host, since = EXCLUDED.since, command = EXCLUDED.command, "
                "backend_pid = EXCLUDED.backend_pid"
            ),
            (self.name, os.getpid(), socket.gethostname(), self.now(), command),
        )

    def _holder(self, conn: psycopg.Connection[Any]) -> str:
        # The row counts only while its connection holds an advisory lock: a holder that has just taken
        # the lock may not have written it yet, and a dead holder's row is overwritten by the next.
        row = conn.execute(
            self._q(
                "SELECT l.pid, l.host, l.since, l.command FROM {schema}.locks l WHERE l.name = %s AND EXISTS "
                "(SELECT 1 FROM pg_locks p WHERE p.locktype = 'advisory' AND p.granted AND p.pid = l.backend_pid)"
            ),
            (self.name,),
        ).fetchone()
        if row is None:
            return "another process (it has not recorded its name)"
        return f"pid {row[0]} on host {row[1]} since {row[2]} ({row[3]})"

    def force_unlock(self) -> str | None:
        """`state unlock`: the server frees a dead holder's lock itself, so only a stale holder row is
        removed; a live holder is refused, as for the file backend."""
        with self._reading() as conn:
            if not self._tables_exist(conn):
                return None
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            if row is None or not row[0]:
                raise LockHeld(
                    f"state is locked by {self._holder(conn)}, a running process: stop it (the lock is freed "
                    "when it exits) instead of unlocking"
                )
            try:
                gone = conn.execute(
                    self._q("DELETE FROM {schema}.locks WHERE name = %s RETURNING pid, host, since, command"),
                    (self.name,),
                ).fetchone()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        return None if gone is None else f"pid {gone[0]} on host {gone[1]} since {gone[2]} ({gone[3]})"

    # -- writing (the caller holds the lock)

    def _holder_conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError("hold the lock (`with backend.lock(...)`) before writing")
        return self._conn

    def journal(self, base: State | None = None) -> RowJournal:
        """The journal of one apply: its header row, committed now; a crashed apply's journal is folded
        first. `base`: the state the caller has just folded."""
        conn = self._holder_conn()
        start = self.fold() if self._journal_exists(conn) else (base or self.load())
        try:
            conn.execute(
                self._q("INSERT INTO {schema}.journals (name, lineage, base_serial) VALUES (%s, %s, %s)"),
                (self.name, start.lineage, start.serial),
            )
        except psycopg.Error as e:
            raise lost(self.display, e) from None
        return RowJournal(
            conn,
            self._q(
                "INSERT INTO {schema}.journal_records (name, seq, record) "
                "SELECT %s, * FROM unnest(%s::bigint[], %s::text[])"
            ),
            name=self.name,
            base=start,
            display=self.display,
            redact=self.redact_text,
        )

    def _journal_exists(self, conn: psycopg.Connection[Any]) -> bool:
        try:
            row = conn.execute(self._q("SELECT 1 FROM {schema}.journals WHERE name = %s"), (self.name,)).fetchone()
        except psycopg.Error as e:
            raise lost(self.display, e) from None
        return row is not None

    def exists(self) -> bool:
        """Whether a state (or a journal) is kept here: `state migrate` refuses to overwrite one."""
        with self._reading() as conn:
            if not self._tables_exist(conn):
                return False
            row = conn.execute(
                self._q(
                    "SELECT 1 FROM {schema}.states WHERE name = %s UNION ALL "
                    "SELECT 1 FROM {schema}.journals WHERE name = %s"
                ),
                (self.name, self.name),
            ).fetchone()
        return row is not None

    def fold(self, *, upgrade: Callable[[State], State] | None = None) -> State:
        """Replay the journal into the state and remove it, in one transaction."""
        upgrade = upgrade or self._upgrade
        conn = self._holder_conn()
        try:
            with conn.transaction():
                had_journal = self._journal_exists(conn)
                loaded = self._load_raw(conn)
                state = loaded if upgrade is None else upgrade(loaded)
                if had_journal or state is not loaded:
                    self._put(conn, state)
                if had_journal:
                    conn.execute(self._q("DELETE FROM {schema}.journal_records WHERE name = %s"), (self.name,))
                    conn.execute(self._q("DELETE FROM {schema}.journals WHERE name = %s"), (self.name,))
        except psycopg.Error as e:
            raise lost(self.display, e) from None
        return state

    def write(self, state: State) -> None:
        """Replace the state (for `state` commands; the serial is the caller's)."""
        conn = self._holder_conn()
        if self._journal_exists(conn):
            raise RuntimeError("fold() the journal before write()")
        try:
            self._put(conn, state)
        except psycopg.Error as e:
            raise lost(self.display, e) from None

    def _put(self, conn: psycopg.Connection[Any], state: State) -> None:
        conn.execute(
            self._q(
                "INSERT INTO {schema}.states (name, document, lineage, serial) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET document = EXCLUDED.document, lineage = EXCLUDED.lineage, "
                "serial = EXCLUDED.serial, updated_at = now()"
            ),
            (self.name, self.redact_text(dumps(state)), state.lineage, state.serial),
        )


def _exists(conn: psycopg.Connection[Any], schema: str, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".{table}',)).fetchone()
    return row is not None and row[0] is not None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
