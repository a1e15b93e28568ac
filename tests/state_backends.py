"""The state as the tests see it, whichever backend keeps it (docs/shared-state.md): read and written
behind the tool's back, the way a crash, a damaged store or another runner would leave it.

`Repo.store` is one of these; the `state_backend` fixture (tests/conftest.py) attaches a postgresql or an
s3 one to a repository, so a test written for the file state runs against every backend. `Repo.cli` then passes
`--state URL` to every command that reads the state.

    read()              the state document's bytes, or None when there is none
    write_bytes(data)   replace the state document (a damaged one too)
    journal()           the journal as the file journal's bytes (header line, then records), or None
    write_journal(data) put such a journal in place (a torn last record included)
    lock(command)       a live holder of the lock, in this process
    leave_stale_lock(h) what a dead holder leaves where it can leave anything
    lock_exists()       whether a holder is recorded
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from intuned_runs.location import FileLocation, Location, parse_location
from intuned_runs.state.backend import Backend, open_backend


def _backend(location: Location) -> Backend:
    return open_backend(
        location, redactor=None, upgrade=lambda state: state, fingerprint_version=1, schema_version=None
    )


class FileStateStore:
    kind = "file"
    # The end of a lock refusal: what to do about the holder.
    lock_advice = "; wait for it, use --lock-timeout DUR, or if no such process exists run 'intuned-runs state unlock'"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / ".intuned-runs" / "state.json"
        self.journal_path = self.path.with_name("state.json.journal")
        self.lock_path = self.path.with_name("state.json.lock")
        self.display = ".intuned-runs/state.json"
        self.journal_display = ".intuned-runs/state.json.journal"
        self.args: list[str] = []  # the default state: no --state

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(data)

    def journal(self) -> bytes | None:
        try:
            return self.journal_path.read_bytes()
        except FileNotFoundError:
            return None

    def write_journal(self, data: bytes) -> None:
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        self.journal_path.write_bytes(data)

    def lock(self, command: str) -> AbstractContextManager[None]:
        return _backend(FileLocation(self.path, self.display)).lock(command)

    def leave_stale_lock(self, holder: dict[str, Any]) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path.write_text(json.dumps(holder), encoding="utf-8")

    def lock_exists(self) -> bool:
        return self.lock_path.exists() and bool(self.lock_path.read_bytes())


class PostgresStateStore:
    kind = "postgresql"
    lock_advice = (
        "; wait for it or use --lock-timeout DUR (the database frees the lock when its holder's connection ends)"
    )

    def __init__(self, url: str, conninfo: str, name: str, schema: str = "intuned_runs") -> None:
        self.url = url
        self.conninfo = conninfo  # for reading behind the tool's back
        self.name = name
        self.schema = schema
        self.location = parse_location(url, Path("/"))
        self.display = self.location.display
        self.journal_display = f"{self.display} (journal)"
        self.args = ["--state", url]

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        import psycopg

        from intuned_runs.state.postgres import PostgresBackend

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            # The tables, as the tool creates them on first use (a test may write before the tool ran).
            PostgresBackend(self.location).create_tables(conn)
            yield conn

    def _table(self, table: str) -> str:
        return f'"{self.schema}".{table}'

    def read(self) -> bytes | None:
        with self._conn() as conn:
            row = conn.execute(f"SELECT document FROM {self._table('states')} WHERE name = %s", (self.name,)).fetchone()
        return None if row is None else str(row[0]).encode("utf-8")

    def write_bytes(self, data: bytes) -> None:
        text = data.decode("utf-8", errors="surrogateescape").replace("\0", "")
        with self._conn() as conn:
            conn.execute(
                f"INSERT INTO {self._table('states')} (name, document, lineage, serial) VALUES (%s, %s, '', 0) "
                "ON CONFLICT (name) DO UPDATE SET document = EXCLUDED.document",
                (self.name, text),
            )

    def journal(self) -> bytes | None:
        with self._conn() as conn:
            head = conn.execute(
                f"SELECT lineage, base_serial FROM {self._table('journals')} WHERE name = %s", (self.name,)
            ).fetchone()
            rows = conn.execute(
                f"SELECT record FROM {self._table('journal_records')} WHERE name = %s ORDER BY seq", (self.name,)
            ).fetchall()
        if head is None:
            return None
        header = json.dumps({"type": "header", "lineage": head[0], "base_serial": head[1]}, sort_keys=True)
        return "".join(f"{line}\n" for line in [header, *(r[0] for r in rows)]).encode("utf-8")

    def write_journal(self, data: bytes) -> None:
        lines = data.decode("utf-8").split("\n")
        if lines and not lines[-1]:
            lines.pop()
        header = json.loads(lines[0])
        with self._conn() as conn:
            conn.execute(f"DELETE FROM {self._table('journal_records')} WHERE name = %s", (self.name,))
            conn.execute(f"DELETE FROM {self._table('journals')} WHERE name = %s", (self.name,))
            conn.execute(
                f"INSERT INTO {self._table('journals')} (name, lineage, base_serial) VALUES (%s, %s, %s)",
                (self.name, header["lineage"], header["base_serial"]),
            )
            for seq, line in enumerate(lines[1:], 1):
                conn.execute(
                    f"INSERT INTO {self._table('journal_records')} (name, seq, record) VALUES (%s, %s, %s)",
                    (self.name, seq, line),
                )

    def lock(self, command: str) -> AbstractContextManager[None]:
        return _backend(self.location).lock(command)

    def leave_stale_lock(self, holder: dict[str, Any]) -> None:
        # A dead holder's row: the server freed its advisory lock when its connection ended.
        with self._conn() as conn:
            conn.execute(
                f"INSERT INTO {self._table('locks')} (name, pid, host, since, command, backend_pid) "
                "VALUES (%s, %s, %s, %s, %s, 0)",
                (self.name, holder["pid"], holder["host"], holder["since"], holder["command"]),
            )

    def lock_exists(self) -> bool:
        with self._conn() as conn:
            row = conn.execute(f"SELECT 1 FROM {self._table('locks')} WHERE name = %s", (self.name,)).fetchone()
        return row is not None


class S3StateStore:
    """A state object in a bucket of moto's S3 server (tests/s3_server.py), read with a plain boto3 client."""

    kind = "s3"
    lock_advice = (
        "; wait for it, use --lock-timeout DUR, or if no such process exists run 'intuned-runs state unlock' "
        "(its lease also ends by itself once it expires)"
    )

    def __init__(self, place: Any, key: str) -> None:
        self.place = place  # tests.s3_server.S3Place
        self.key = key
        self.url = place.url(key)
        self.location = parse_location(self.url, Path("/"))
        self.display = self.location.display
        self.journal_display = f"s3://{place.bucket}/{key}.journal"
        self.journal_prefix = f"{key}.journal/"
        self.args = ["--state", self.url]

    def _get(self, key: str) -> bytes | None:
        try:
            body: bytes = self.place.client.get_object(Bucket=self.place.bucket, Key=key)["Body"].read()
        except self.place.client.exceptions.NoSuchKey:
            return None
        return body

    def read(self) -> bytes | None:
        return self._get(self.key)

    def write_bytes(self, data: bytes) -> None:
        self.place.put(self.key, data)

    def journal(self) -> bytes | None:
        """The journal objects as one file journal: the first header, then every object's records."""
        keys = self.place.object_keys(self.journal_prefix)
        if not keys:
            return None
        parts = [self._get(key) or b"" for key in keys]
        header, _, first = parts[0].partition(b"\n")
        return header + b"\n" + first + b"".join(part.partition(b"\n")[2] for part in parts[1:])

    def write_journal(self, data: bytes) -> None:
        for key in self.place.object_keys(self.journal_prefix):
            self.place.client.delete_object(Bucket=self.place.bucket, Key=key)
        lineage = json.loads(data.split(b"\n", 1)[0])["lineage"]
        self.place.put(f"{self.journal_prefix}{lineage}/0000000001", data)

    def lock(self, command: str) -> AbstractContextManager[None]:
        return _backend(self.location).lock(command)

    def leave_stale_lock(self, holder: dict[str, Any]) -> None:
        # A dead holder's lease, expired by now (a live one would make the next runner wait for it).
        self.place.put(f"{self.key}.lock", json.dumps({"expires": "2000-01-01T00:00:00Z", **holder}).encode())

    def lock_exists(self) -> bool:
        return self._get(f"{self.key}.lock") is not None


StateStore = FileStateStore | PostgresStateStore | S3StateStore
