"""Real servers for the shared-state tests (docs/shared-state.md): a throwaway PostgreSQL cluster and moto's
standalone S3 server, both on 127.0.0.1, started once per session and stopped at its end.

Under INTUNED_RUNS_REQUIRE_SERVICES=1 (set by .ci/run) a server that cannot start FAILS the tests that
need it, so CI can never pass by skipping them; elsewhere those tests skip, saying what to install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers import free_port

REQUIRE = "INTUNED_RUNS_REQUIRE_SERVICES"
PG_USER = "intuned"
PG_DATABASE = "intuned"


def unavailable(what: str, install: str) -> None:
    """Fail under INTUNED_RUNS_REQUIRE_SERVICES=1, else skip; both say what is missing and how to get it."""
    message = f"{what}: {install}"
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{message} ({REQUIRE}=1: this test must not skip)", pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str  # a canary: it must appear in no output, log or file
    database: str
    socket_dir: Path
    log: Path

    def url(self, name: str = "default", *, password: bool = True, schema: str | None = None) -> str:
        secret = f":{quote(self.password, safe='')}" if password else ""
        query = f"?name={quote(name, safe='')}" + (f"&schema={schema}" if schema else "")
        return f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{self.database}{query}"

    def conninfo(self) -> str:
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{self.database}"


def _pg_bindir() -> Path | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_user(argv: list[str]) -> tuple[list[str], str | None]:
    """initdb and the server refuse to run as root: run them as `postgres` then."""
    if os.geteuid() != 0:
        return argv, None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return argv, "running as root and there is no 'postgres' user to run the server as"
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *argv], None
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in argv)], None


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command, problem = _as_user(argv)
    if problem:
        raise RuntimeError(problem)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresServer]:
    """initdb into a temporary directory, fsync off, password (scram) auth over TCP on a free port."""
    bindir = _pg_bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found", "apt-get install postgresql")
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed", "pip install 'intuned-runs[postgres]' (or '.[test]')")
    assert bindir is not None
    problem = _as_user(["true"])[1]
    if problem:
        unavailable(f"cannot start PostgreSQL: {problem}", "run the tests as a user other than root, or add one")
    top = Path(tempfile.mkdtemp(prefix="intuned-runs-pg-"))
    data, sockets, log, pwfile = top / "data", top / "sock", top / "server.log", top / "pw"
    password = "pg-Canary-" + secrets.token_hex(8)
    sockets.mkdir()
    pwfile.write_text(password + "\n", encoding="utf-8")
    if os.geteuid() == 0:
        info = pwd.getpwnam("postgres")
        for path in (top, sockets, pwfile):
            os.chown(path, info.pw_uid, info.pw_gid)
    port = free_port()
    started = False
    try:
        done = _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )
        if done.returncode != 0:
            unavailable(f"initdb failed: {done.stderr.strip()[-500:]}", "check the PostgreSQL installation")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sockets} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        done = _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
        started = done.returncode == 0
        if not started:
            tail = log.read_text(encoding="utf-8", errors="replace")[-800:] if log.exists() else done.stderr
            unavailable(f"the PostgreSQL server did not start: {tail.strip()}", "check the PostgreSQL installation")
        server = PostgresServer("127.0.0.1", port, PG_USER, password, PG_DATABASE, sockets, log)
        admin = f"postgresql://{PG_USER}:{quote(password, safe='')}@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"CREATE DATABASE {PG_DATABASE}")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        if started:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], timeout=60)
        shutil.rmtree(top, ignore_errors=True)


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str  # a canary


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Server]:
    """moto's standalone server (moto[server]) on 127.0.0.1, in a thread of the test process."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto's server is not installed", "pip install 'moto[server]' (or '.[test]')")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}", "AKIAINTUNEDTEST", "aws-Canary-" + secrets.token_hex(8))
    finally:
        server.stop()
