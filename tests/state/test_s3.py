"""The S3 backend against moto's S3 server: compare-and-swap, journal objects and their replay, the lease
(refusal, renewal, takeover after expiry, loss), the conditional-writes probe, and errors as one line."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from intuned_runs.clock import timestamp
from intuned_runs.errors import LockHeld, StateError
from intuned_runs.state.format import dumps
from intuned_runs.state.journal import (
    NO_OUTCOME,
    FailedRecord,
    IntentRecord,
    SubmittedRecord,
    WorkspaceRecord,
)
from intuned_runs.state.model import Entry, State, Unknown, bump
from intuned_runs.state.s3 import NOT_ENFORCED, S3Backend
from tests.helpers import free_port
from tests.s3_server import Address, S3Place, address
from tests.state.test_store import LINEAGE, WS, FakeClock, base_state, submitted

T1 = "2026-11-28T16:21:00Z"


def backend(place: S3Place, key: str = "state.json", **kwargs: object) -> S3Backend:
    return S3Backend(address(place, key), clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


def seed(place: S3Place, state: State, key: str = "state.json") -> None:
    place.put(key, dumps(state).encode("ascii"))


def journal_object(lines: list[dict[str, object]], *, base_serial: int = 4, lineage: str = LINEAGE) -> bytes:
    header = {"type": "header", "lineage": lineage, "base_serial": base_serial}
    return b"".join(json.dumps(item).encode() + b"\n" for item in [header, *lines])


def intent(key: str) -> dict[str, object]:
    return {"type": "intent", "key": key, "fingerprint": f"sha256:{key[-1]}", "request": {}, "at": T1}


# ------------------------------------------------------------------------------------ state object


def test_state_object_is_the_file_format_and_round_trips(s3: S3Place) -> None:
    store = backend(s3)
    assert store.load().serial == 0 and s3.object_keys() == []  # nothing there: empty, and load wrote nothing
    assert not store.exists()
    state = base_state(shop__a=submitted())
    with store.lock("test"):
        store.fold()
        store.write(state)
    assert s3.read("state.json").decode() == dumps(state)
    assert backend(s3).load() == state
    assert s3.object_keys() == ["state.json"]  # the lock and the probe are gone
    assert store.exists()


def test_a_lost_race_is_an_error_never_an_overwrite(s3: S3Place) -> None:
    seed(s3, base_state())
    store = backend(s3)
    with store.lock("test"):
        state = store.fold()
        other = bump(base_state(shop__other=submitted()))
        seed(s3, other)  # another writer (one that ignores the lock) replaced it meanwhile
        with pytest.raises(StateError, match=r"was changed by another process since this one read it"):
            store.write(bump(state))
    assert s3.read("state.json").decode() == dumps(other)


def test_first_creation_loses_to_a_state_created_meanwhile(s3: S3Place) -> None:
    store = backend(s3)
    with store.lock("test"):
        state = store.fold()
        seed(s3, base_state())
        with pytest.raises(StateError, match=r"was created by another process"):
            store.write(bump(state))
    assert s3.read("state.json").decode() == dumps(base_state())


def test_damaged_state_object_is_an_error(s3: S3Place) -> None:
    s3.put("state.json", b"{not json")
    with pytest.raises(StateError, match=r"state\.json is not valid JSON .*refusing to treat it as empty"):
        backend(s3).load()


# ------------------------------------------------------------------------------------ journal


def test_apply_cycle_journal_objects_then_fold(s3: S3Place) -> None:
    seed(s3, base_state())
    store = backend(s3)
    with store.lock("test"):
        with store.journal(store.fold()) as journal:
            journal.append_durable(WorkspaceRecord(WS))
            journal.append_durable(IntentRecord("shop/a", "sha256:a", {"api": "a"}, T1))
            # durable means: an object holding it exists before the request is sent
            assert s3.object_keys("state.json.journal/") != []
            journal.append(SubmittedRecord("shop/a", "ru_2", "pending", T1))
            journal.append_durable(IntentRecord("shop/b", "sha256:b", {"api": "b"}, T1))
            journal.append(FailedRecord("shop/b", T1))
            journal.append_durable(IntentRecord("shop/c", "sha256:c", {"api": "c"}, T1))
        keys = s3.object_keys("state.json.journal/")
        assert keys[0] == f"state.json.journal/{LINEAGE}/0000000001"
        assert keys == sorted(keys)
        first = s3.read(keys[0]).splitlines()[0]
        assert json.loads(first) == {"type": "header", "lineage": LINEAGE, "base_serial": 4}
        # a reader (plan) replays the journal without the lock
        loaded = backend(s3).load()
        assert loaded.entries["shop/a"].run_id == "ru_2"
        assert "shop/b" not in loaded.entries
        assert loaded.entries["shop/c"].unknown == Unknown(T1, NO_OUTCOME)
        folded = store.fold()
    assert folded == loaded
    assert folded.serial == 5
    assert s3.object_keys("state.json.journal/") == []
    assert backend(s3).load() == folded


def test_a_new_journal_folds_a_crashed_one_first(s3: S3Place) -> None:
    seed(s3, base_state())
    s3.put(f"state.json.journal/{LINEAGE}/0000000001", journal_object([intent("shop/x")]))
    store = backend(s3)
    with store.lock("test"), store.journal() as journal:
        assert journal.base.serial == 5
        assert journal.base.entries["shop/x"].unknown == Unknown(T1, NO_OUTCOME)
        journal.append_durable(IntentRecord("shop/y", "sha256:y", {}, T1))
    keys = s3.object_keys("state.json.journal/")
    # the new journal: its header object, then the object holding the intent
    assert keys == [f"state.json.journal/{LINEAGE}/0000000001", f"state.json.journal/{LINEAGE}/0000000002"]
    assert all(json.loads(s3.read(key).splitlines()[0])["base_serial"] == 5 for key in keys)


def test_many_records_group_into_few_objects_and_replay_in_order(s3: S3Place) -> None:
    seed(s3, base_state())
    store = backend(s3)
    with store.lock("test"), store.journal() as journal:

        def one(n: int) -> None:
            key = f"shop/r{n}"
            journal.append_durable(IntentRecord(key, "sha256:r", {}, T1))
            journal.append(SubmittedRecord(key, f"ru_{n}", None, T1))

        threads = [threading.Thread(target=one, args=(n,)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    state = backend(s3).load()
    assert {k: e.run_id for k, e in state.entries.items()} == {f"shop/r{n}": f"ru_{n}" for n in range(40)}
    assert len(s3.object_keys("state.json.journal/")) <= 80


def test_a_missing_journal_object_before_later_ones_is_an_error(s3: S3Place) -> None:
    seed(s3, base_state())
    s3.put(f"state.json.journal/{LINEAGE}/0000000002", journal_object([intent("shop/x")]))
    with pytest.raises(StateError, match=r"0000000001 is missing while later ones exist"):
        backend(s3).load()


def test_a_torn_last_object_is_ignored_a_damaged_middle_one_is_an_error(s3: S3Place) -> None:
    seed(s3, base_state())
    s3.put(f"state.json.journal/{LINEAGE}/0000000001", journal_object([intent("shop/x")]))
    s3.put(f"state.json.journal/{LINEAGE}/0000000002", b'{"type": "hea')
    assert backend(s3).load().entries["shop/x"].unknown == Unknown(T1, NO_OUTCOME)
    s3.put(f"state.json.journal/{LINEAGE}/0000000003", journal_object([intent("shop/y")]))
    with pytest.raises(StateError, match=r"0000000002 is damaged and is not the last one"):
        backend(s3).load()


def test_a_torn_last_line_inside_an_object_is_ignored(s3: S3Place) -> None:
    seed(s3, base_state())
    s3.put(f"state.json.journal/{LINEAGE}/0000000001", journal_object([intent("shop/x")]) + b'{"type": "sub')
    assert backend(s3).load().entries["shop/x"].unknown == Unknown(T1, NO_OUTCOME)


def test_a_journal_of_another_lineage_is_an_error(s3: S3Place) -> None:
    seed(s3, base_state())
    other = "00000000-0000-4000-8000-00000000beef"
    s3.put(f"state.json.journal/{other}/0000000001", journal_object([intent("shop/x")], lineage=other))
    with pytest.raises(StateError, match=r"belongs to another state \(lineage 00000000-0000-4000-8000-00000000beef"):
        backend(s3).load()


def test_a_journal_without_state_uses_its_lineage(s3: S3Place) -> None:
    s3.put(f"state.json.journal/{LINEAGE}/0000000001", journal_object([intent("shop/x")], base_serial=0))
    state = backend(s3).load()
    assert state.lineage == LINEAGE and state.serial == 1


def test_objects_of_a_folded_journal_are_ignored_then_removed(s3: S3Place) -> None:
    seed(s3, bump(base_state(shop__x=submitted())))  # serial 5: the journal of serial 4 was folded
    s3.put(f"state.json.journal/{LINEAGE}/0000000001", journal_object([intent("shop/x")]))
    assert backend(s3).load().entries["shop/x"] == submitted()
    store = backend(s3)
    with store.lock("test"):
        assert store.fold().serial == 5
    assert s3.object_keys("state.json.journal/") == []


def test_redactor_masks_a_secret_in_journal_and_state(s3: S3Place) -> None:
    from intuned_runs.redaction import Redactor

    store = backend(s3, redactor=Redactor(["hunter2-secret"]))
    with store.lock("test"):
        with store.journal() as journal:
            journal.append_durable(IntentRecord("shop/a", "sha256:a", {"token": "hunter2-secret"}, T1))
        assert all(b"hunter2" not in s3.read(k) for k in s3.object_keys("state.json.journal/"))
        store.fold()
    assert b"hunter2" not in s3.read("state.json")


# ------------------------------------------------------------------------------------ the lease


def lock_info(s3: S3Place, key: str = "state.json.lock") -> dict[str, object]:
    info: dict[str, object] = json.loads(s3.read(key))
    return info


def test_the_lock_object_names_its_holder_and_a_second_one_is_refused(s3: S3Place) -> None:
    first, second = backend(s3), backend(s3)
    with first.lock("intuned-runs apply"):
        info = lock_info(s3)
        assert sorted(info) == ["command", "expires", "host", "pid", "since"]
        assert info["command"] == "intuned-runs apply"
        since = datetime.strptime(str(info["since"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        expires = datetime.strptime(str(info["expires"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert timedelta(seconds=58) <= expires - since <= timedelta(seconds=62)
        with pytest.raises(LockHeld) as refused, second.lock("intuned-runs state forget"):
            pass
    message = str(refused.value)
    holder = f"pid {info['pid']} on host {info['host']} since {info['since']} (intuned-runs apply)"
    assert f"state is locked by {holder}" in message
    assert "--lock-timeout" in message and "state unlock" in message
    assert s3.object_keys() == []  # released


def test_lock_timeout_waits_for_the_holder(s3: S3Place) -> None:
    first = backend(s3)
    acquired = threading.Event()

    def hold() -> None:
        with first.lock("holder"):
            acquired.set()
            time.sleep(1.5)

    thread = threading.Thread(target=hold)
    thread.start()
    acquired.wait(10)
    started = time.monotonic()
    with backend(s3).lock("waiter", timeout=20):
        waited = time.monotonic() - started
    thread.join()
    assert 0.5 < waited < 10


def test_the_lease_is_renewed_while_held(s3: S3Place) -> None:
    store = backend(s3, lease=3.0)
    with store.lock("holder"):
        before = lock_info(s3)["expires"]
        time.sleep(3.5)  # longer than the lease: renewals keep it alive
        assert lock_info(s3)["expires"] > before  # type: ignore[operator]
        with pytest.raises(LockHeld), backend(s3, lease=3.0).lock("other"):
            pass
        store.fold()  # still held: no error


def dead_holder(s3: S3Place, expires_in: float) -> None:
    """The lock object a killed process leaves behind."""
    expires = datetime.now(timezone.utc) + timedelta(seconds=expires_in)
    info = {"pid": 4242, "host": "gone", "since": "2026-01-01T00:00:00Z", "command": "intuned-runs apply"}
    s3.put("state.json.lock", json.dumps({**info, "expires": timestamp(expires)}).encode())


def test_an_expired_lease_is_taken_over_only_after_it_expires(s3: S3Place) -> None:
    dead_holder(s3, expires_in=3)
    with (
        pytest.raises(LockHeld, match=r"pid 4242 on host gone .*its lease also ends by itself"),
        backend(s3).lock("next"),
    ):
        pass
    started = time.monotonic()
    with backend(s3).lock("next", timeout=30):
        waited = time.monotonic() - started
        assert lock_info(s3)["command"] == "next"
    assert 1 < waited < 10


def test_of_two_processes_taking_over_one_expired_lease_one_wins(s3: S3Place) -> None:
    dead_holder(s3, expires_in=-5)
    stores = [backend(s3) for _ in range(4)]
    results: list[str] = []

    def take(store: S3Backend) -> None:
        try:
            with store.lock(f"racer {id(store)}"):  # bodies differ, as they do across processes (pid)
                results.append("held")
                time.sleep(1.0)
        except LockHeld:
            results.append("refused")

    threads = [threading.Thread(target=take, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["held", "refused", "refused", "refused"]


def test_a_holder_that_loses_its_lease_stops_journaling_intents(s3: S3Place) -> None:
    store = backend(s3, lease=3.0)
    with store.lock("holder"), store.journal() as journal:
        journal.append_durable(IntentRecord("shop/a", "sha256:a", {}, T1))
        dead_holder(s3, expires_in=60)  # another process took it over (as if ours had expired)
        time.sleep(2.5)  # the next renewal finds the lock replaced
        with pytest.raises(StateError, match=r"lost the lock s3://.*state\.json\.lock: .*stopped submitting"):
            journal.append_durable(IntentRecord("shop/b", "sha256:b", {}, T1))
        journal.append(SubmittedRecord("shop/a", "ru_1", None, T1))  # outcomes are still recorded
    assert lock_info(s3)["pid"] == 4242  # release never removes another holder's lock
    state = backend(s3).load()
    assert state.entries["shop/a"].run_id == "ru_1"
    assert "shop/b" not in state.entries


def test_force_unlock_removes_the_lease_and_names_its_holder(s3: S3Place) -> None:
    dead_holder(s3, expires_in=60)
    assert backend(s3).force_unlock() == "pid 4242 on host gone since 2026-01-01T00:00:00Z (intuned-runs apply)"
    assert s3.object_keys() == []
    assert backend(s3).force_unlock() is None


# ------------------------------------------------------------------------------------ endpoints and errors


class _Careless(http.server.BaseHTTPRequestHandler):
    """An S3 lookalike that stores nothing and ignores every condition."""

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def careless_endpoint(s3: S3Place) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Careless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_endpoint_that_ignores_conditional_writes_is_refused(careless_endpoint: str) -> None:
    store = S3Backend(Address("careless", "state.json", careless_endpoint, "us-east-1", True))
    with pytest.raises(StateError) as refused, store.lock("test"):
        pass
    assert str(refused.value) == NOT_ENFORCED


def test_a_missing_bucket_is_one_line(s3: S3Place) -> None:
    store = S3Backend(Address("no-such-bucket-here", "state.json", s3.endpoint, "us-east-1", True))
    with pytest.raises(StateError, match=r"^S3 bucket 'no-such-bucket-here' does not exist at the S3 endpoint http"):
        store.load()


def test_an_unreachable_endpoint_is_one_line(s3: S3Place) -> None:
    store = S3Backend(Address(s3.bucket, "state.json", f"http://127.0.0.1:{free_port()}", "us-east-1", True))
    with pytest.raises(StateError, match=r"^cannot reach the S3 endpoint http://127\.0\.0\.1:\d+ while listing"):
        store.load()


def test_missing_credentials_are_one_line(s3: S3Place, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StateError, match=r"^no AWS credentials for s3://.*: set AWS_ACCESS_KEY_ID"):
        backend(s3).load()


def test_the_state_entries_survive_every_value(s3: S3Place) -> None:
    state = base_state(
        shop__a=submitted(),
        shop__b=Entry("sha256:b", {"api": "b"}, unknown=Unknown(T1, "read timeout", submitted())),
        shop__gone=Entry("sha256:g", {}, "ru_0", T1, "completed", T1, None, T1),
    )
    store = backend(s3)
    with store.lock("test"):
        store.fold()
        store.write(state)
    assert backend(s3).load() == state
