"""What every state backend must do (state.backend, docs/shared-state.md), run against each of them: the
file backend, a real PostgreSQL server and moto's S3 server. The journal and fold cycle, serials, crashed
journals, locks and their holders, group commit, concurrent writers and readers, and a holder SIGKILLed
mid-apply."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from intuned_runs.errors import LockHeld
from intuned_runs.location import parse_location
from intuned_runs.redaction import Redactor
from intuned_runs.state.backend import Backend, open_backend
from intuned_runs.state.format import dumps
from intuned_runs.state.journal import (
    NO_OUTCOME,
    FailedRecord,
    ForgetRecord,
    IntentRecord,
    StatusRecord,
    SubmittedRecord,
    UnknownRecord,
    WorkspaceRecord,
)
from intuned_runs.state.model import Entry, State, Submission, Unknown, bump
from intuned_runs.state.store import StateStore
from tests.helpers import PROJECT
from tests.services import PostgresServer

LINEAGE = "8d7e3c1a-0000-4000-8000-000000000001"
WS = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
T0 = "2026-11-28T16:20:00Z"


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 28, 16, 20, 0, 250000, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.moment += timedelta(minutes=1)
        return self.moment


def base_state(**entries: Entry) -> State:
    return State(
        lineage=LINEAGE,
        serial=4,
        workspace_id=WS,
        fingerprint_version=1,
        schema_version="1.2.0",
        entries={key.replace("__", "/"): entry for key, entry in entries.items()},
    )


OLD_A = Entry("sha256:old", {"api": "old"}, "ru_1", T0, "completed", T0)

Opener = Callable[..., Backend]


@pytest.fixture(params=["file", "postgresql", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state location of each backend: a path, a named state in the session's database, or an
    object in a fresh bucket of moto's S3 server."""
    if request.param == "file":
        return str(tmp_path / ".intuned-runs" / "state.json")
    if request.param == "s3":
        # A killed holder's lease expires in 30 s, not a minute (docs/shared-state-s3.md, Testing); much
        # shorter leases can lapse on a loaded machine while four writers and a reader compete.
        request.getfixturevalue("monkeypatch").setenv("INTUNED_RUNS_S3_LEASE_SECONDS", "30")
        url: str = request.getfixturevalue("s3").url(f"contract-{uuid.uuid4().hex[:12]}/state.json")
        return url
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(f"contract-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def opener(where: str) -> Opener:
    def open_it(**kwargs: Any) -> Backend:
        location = parse_location(where, Path("/"))
        kwargs.setdefault("clock", FakeClock())
        if where.startswith("postgresql://"):
            from intuned_runs.state.postgres import PostgresBackend  # psycopg: only where it is tested

            return PostgresBackend(location, **kwargs)  # type: ignore[arg-type]
        if where.startswith("s3://"):
            from intuned_runs.state.s3 import S3Backend  # boto3: only where it is tested

            return S3Backend(location, **kwargs)  # type: ignore[arg-type]
        return StateStore(location.path, **kwargs)  # type: ignore[union-attr]

    return open_it


def test_an_empty_location_loads_as_an_empty_state_and_holds_nothing(opener: Opener) -> None:
    backend = opener()
    state = backend.load()
    assert (state.serial, dict(state.entries), state.workspace_id) == (0, {}, None)
    assert not backend.exists()
    assert backend.load().lineage != state.lineage  # nothing was written: a fresh lineage each time


def test_apply_cycle_journal_then_fold(opener: Opener) -> None:
    backend = opener()
    with backend.lock("test"):
        backend.write(base_state(shop__a=OLD_A, shop__gone=Entry("sha256:g", {}, "ru_g", T0)))
        with backend.journal() as journal:
            assert journal.base.serial == 4
            journal.append(WorkspaceRecord(WS))
            journal.append_durable(IntentRecord("shop/a", "sha256:new", {"api": "new"}, "2026-11-28T16:21:00Z"))
            journal.append(SubmittedRecord("shop/a", "ru_2", "pending", "2026-11-28T16:22:00Z"))
            journal.append_durable(IntentRecord("shop/b", "sha256:b", {"api": "b"}, "2026-11-28T16:23:00Z"))
            journal.append(FailedRecord("shop/b", "2026-11-28T16:24:00Z"))
            journal.append_durable(IntentRecord("shop/c", "sha256:c", {"api": "c"}, "2026-11-28T16:25:00Z"))
            journal.append(UnknownRecord("shop/c", "read timeout", "2026-11-28T16:26:00Z"))
            journal.append(ForgetRecord("shop/gone", "2026-11-28T16:27:00Z"))
        loaded = opener().load()  # a reader elsewhere sees the journal replayed
        folded = backend.fold()
    assert folded == loaded == opener().load()
    assert folded.serial == 5
    assert folded.entries["shop/a"] == Entry(
        "sha256:new",
        {"api": "new"},
        "ru_2",
        "2026-11-28T16:22:00Z",
        "pending",
        "2026-11-28T16:22:00Z",
        history=(Submission("ru_2", "2026-11-28T16:22:00Z", "sha256:new", "pending"),),
    )
    assert "shop/b" not in folded.entries
    assert folded.entries["shop/c"].unknown == Unknown("2026-11-28T16:26:00Z", "read timeout")
    assert folded.entries["shop/gone"].removed_at == "2026-11-28T16:27:00Z"
    assert backend.exists()


def test_status_only_fold_keeps_the_serial(opener: Opener) -> None:
    backend = opener()
    with backend.lock("test"):
        backend.write(base_state(shop__a=OLD_A))
        with backend.journal() as journal:
            journal.append(StatusRecord("shop/a", "completed", backend.now()))
        assert backend.fold().serial == 4
    assert backend.load().entries["shop/a"].status == "completed"


def test_a_crashed_journal_reads_as_unknown_and_is_folded_first(opener: Opener) -> None:
    backend = opener()
    with backend.lock("test"):
        backend.write(base_state())
        journal = backend.journal()
        journal.append_durable(IntentRecord("shop/x", "sha256:x", {}, T0))
        journal.close()  # the apply dies here: no outcome, no fold
    state = opener().load()
    assert (state.serial, state.entries["shop/x"].unknown) == (5, Unknown(T0, NO_OUTCOME))
    with backend.lock("test"), backend.journal() as again:
        assert again.base.serial == 5
    assert backend.load() == state


def test_the_first_apply_with_no_state(opener: Opener) -> None:
    backend = opener()
    with backend.lock("test"):
        with backend.journal() as journal:
            journal.append_durable(IntentRecord("shop/a", "sha256:a", {}, backend.now()))
            journal.append(SubmittedRecord("shop/a", "ru_1", "pending", backend.now()))
            lineage = journal.base.lineage
        assert opener().load().lineage == lineage
        folded = backend.fold()
    assert (folded.lineage, folded.serial, folded.entries["shop/a"].run_id) == (lineage, 1, "ru_1")


def test_fold_stores_recomputed_fingerprints_and_write_refuses_an_unfolded_journal(opener: Opener) -> None:
    backend = opener()
    with backend.lock("test"):
        backend.write(base_state(shop__a=OLD_A))
        backend.fold(upgrade=lambda s: s.with_fingerprints(lambda key, request: "sha256:v2", 2, "1.3.0"))  # type: ignore[call-arg]
        state = opener().load()
        assert (state.fingerprint_version, state.serial, state.entries["shop/a"].fingerprint) == (2, 4, "sha256:v2")
        backend.journal().close()
        with pytest.raises(RuntimeError, match="fold"):
            backend.write(bump(base_state()))


def test_every_value_reads_back_exactly(opener: Opener) -> None:
    unknown = Unknown("2026-11-28T16:20:00Z", "read timeout", OLD_A)
    state = base_state(
        shop__a=OLD_A,
        shop__u=Entry("sha256:u", {"api": "ü", "n": 1.5, "big": 2**53, "none": None}, unknown=unknown),
        shop__t=Entry("sha256:t", {}, "ru_t", T0, "failed", T0, removed_at="2026-11-28T16:30:00Z"),
    )
    backend = opener()
    with backend.lock("test"):
        backend.write(state)
    assert dumps(opener().load()) == dumps(state)


def test_a_redactor_masks_a_secret_that_slipped_into_a_request(opener: Opener) -> None:
    backend = opener(redactor=Redactor(["hunter2-secret"]))
    with backend.lock("test"):
        with backend.journal() as journal:
            journal.append_durable(IntentRecord("shop/a", "sha256:a", {"h": "Bearer hunter2-secret"}, T0))
            journal.append(SubmittedRecord("shop/a", "ru_1", None, T0))
        backend.fold()
    assert opener().load().entries["shop/a"].request == {"h": "Bearer ***"}


def test_a_second_holder_is_refused_naming_the_first_or_waits(opener: Opener) -> None:
    first, second = opener(), opener()
    with first.lock("intuned-runs apply"):
        with pytest.raises(LockHeld) as refused, second.lock("intuned-runs state forget"):
            pass
        assert str(refused.value).startswith(
            f"state is locked by pid {os.getpid()} on host {socket.gethostname()} since "
        )
        assert "(intuned-runs apply); wait for it" in str(refused.value)
        started = time.monotonic()
        with pytest.raises(LockHeld, match=r"\(waited 0.5s\)"), second.lock("intuned-runs apply", timeout=0.5):
            pass
        assert time.monotonic() - started >= 0.5
    released = threading.Event()

    def hold_then_release() -> None:
        with first.lock("intuned-runs apply"):
            released.wait(5)
            time.sleep(0.3)

    holder = threading.Thread(target=hold_then_release)
    holder.start()
    time.sleep(0.3)
    released.set()
    with second.lock("intuned-runs apply", timeout=10):  # waits for the holder, then goes on
        pass
    holder.join()


def test_group_commit_keeps_every_record(opener: Opener) -> None:
    backend = opener()
    with backend.lock("test"):
        with backend.journal() as journal:

            def submit(thread: int) -> None:
                for i in range(50):
                    key = f"shop/t{thread}-{i}"
                    journal.append_durable(IntentRecord(key, f"sha256:{key}", {}, T0))
                    journal.append(SubmittedRecord(key, f"ru_{key}", "pending", T0))

            threads = [threading.Thread(target=submit, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        folded = backend.fold()
    assert len(folded.entries) == 400
    assert all(e.run_id == f"ru_{k}" and e.unknown is None for k, e in folded.entries.items())


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from intuned_runs.location import parse_location
    from intuned_runs.state.backend import open_backend
    from intuned_runs.state.journal import IntentRecord, SubmittedRecord

    where, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    backend = open_backend(
        parse_location(where, Path("/")), redactor=None, upgrade=lambda s: s, fingerprint_version=1, schema_version=None
    )
    for i in range(rounds):
        with backend.lock("test " + name, timeout=60):
            with backend.journal() as journal:
                key = f"shop/{name}-{i}"
                journal.append_durable(IntentRecord(key, "sha256:" + key, {"i": i}, backend.now()))
                journal.append_durable(SubmittedRecord(key, "ru_" + key, "pending", backend.now()))
                print(key, flush=True)
            if name != "killed":
                backend.fold()
    """
)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()


def spawn(children: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, env=env)
    children.append(proc)
    return proc


def test_concurrent_writers_under_the_lock_and_a_reader_never_see_a_step_back(
    where: str, opener: Opener, children: list[subprocess.Popen[bytes]]
) -> None:
    writers = [spawn(children, where, f"w{n}", "15") for n in range(4)]
    backend = opener()
    last = (0, 0)
    while any(w.poll() is None for w in writers):
        state = backend.load()  # lock-free, as plan reads: never an error, never going back
        now = (state.serial, len(state.entries))
        assert now >= last, (now, last)
        last = now
    assert [w.returncode for w in writers] == [0, 0, 0, 0]
    state = backend.load()
    assert (state.serial, len(state.entries)) == (60, 60)
    assert all(e.run_id == f"ru_{k}" for k, e in state.entries.items())


def test_sigkill_of_a_holder_loses_no_journaled_submission_and_frees_the_lock(
    where: str, opener: Opener, children: list[subprocess.Popen[bytes]]
) -> None:
    proc = spawn(children, where, "killed", "1000")
    assert proc.stdout is not None
    confirmed = {proc.stdout.readline().decode().strip() for _ in range(30)}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = opener().load()
    for key in confirmed:
        assert (state.entries[key].run_id, state.entries[key].unknown) == (f"ru_{key}", None)
    # Free at once (the kernel or the server released it), or once an S3 lease of 30 s expires.
    with opener().lock("the next holder", timeout=60):
        pass


def test_processes_starting_at_once_create_the_tables_once(
    postgres_server: PostgresServer, children: list[subprocess.Popen[bytes]]
) -> None:
    """The first use creates the schema and tables; six processes doing it at once all succeed."""
    where = postgres_server.url("first-use", schema=f"fresh_{uuid.uuid4().hex[:8]}")
    writers = [spawn(children, where, f"w{n}", "2") for n in range(6)]
    for writer in writers:
        writer.wait(timeout=120)
    assert [w.returncode for w in writers] == [0] * 6
    state = open_backend(
        parse_location(where, Path("/")), redactor=None, upgrade=lambda s: s, fingerprint_version=1, schema_version=None
    ).load()
    assert (state.serial, len(state.entries)) == (12, 12)
