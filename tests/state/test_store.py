"""The state store: file format, journal replay, damaged files, crashes and concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from msgspec.structs import replace

from intuned_runs.clock import timestamp
from intuned_runs.errors import StateError
from intuned_runs.redaction import Redactor
from intuned_runs.state.journal import (
    NO_OUTCOME,
    FailedRecord,
    ForgetRecord,
    IntentRecord,
    MoveRecord,
    Record,
    StatusRecord,
    SubmittedRecord,
    UnknownRecord,
    WorkspaceRecord,
    encode,
    record_to_json,
    replay,
)
from intuned_runs.state.model import Entry, State, Submission, Unknown, bump
from intuned_runs.state.store import GITIGNORE, StateStore
from tests.helpers import PROJECT

T0 = "2026-11-28T16:20:00Z"
T1 = "2026-11-28T16:21:00Z"
T2 = "2026-11-28T16:22:00Z"
LINEAGE = "8d7e3c1a-0000-4000-8000-000000000001"
WS = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
REPO = PROJECT


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 28, 16, 20, 0, 250000, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.moment += timedelta(minutes=1)
        return self.moment


def state_path(tmp_path: Path) -> Path:
    return tmp_path / ".intuned-runs" / "state.json"


def store_at(tmp_path: Path, **kwargs: object) -> StateStore:
    return StateStore(state_path(tmp_path), clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


def submitted(fingerprint: str = "sha256:aa", run_id: str = "ru_1", request: dict[str, object] | None = None) -> Entry:
    return Entry(
        fingerprint=fingerprint,
        request=request if request is not None else {"api": "scrape"},
        run_id=run_id,
        submitted_at=T0,
        status="pending",
        status_at=T0,
    )


def base_state(**entries: Entry) -> State:
    return State(
        lineage=LINEAGE,
        serial=4,
        workspace_id=WS,
        fingerprint_version=1,
        schema_version="1.2.0",
        entries={key.replace("__", "/"): entry for key, entry in entries.items()},
    )


def write_journal(store: StateStore, lines: list[str], *, lineage: str = LINEAGE, base_serial: int = 4) -> None:
    header = json.dumps({"type": "header", "lineage": lineage, "base_serial": base_serial})
    store.journal_path.parent.mkdir(parents=True, exist_ok=True)
    store.journal_path.write_text("\n".join([header, *lines]) + "\n")


def line(**record: object) -> str:
    return json.dumps(record)


# ------------------------------------------------------------------------------------------ file format

EXPECTED_TEXT = """\
{
  "entries": {
    "shop/gone": {
      "fingerprint": "sha256:cc",
      "history": [],
      "removed_at": "2026-11-28T16:22:00Z",
      "request": {
        "api": "old"
      },
      "run_id": "ru_0",
      "status": "completed",
      "status_at": "2026-11-28T16:21:00Z",
      "submitted_at": "2026-11-28T16:20:00Z",
      "unknown": null
    },
    "shop/pricing": {
      "fingerprint": "sha256:aa",
      "history": [
        {
          "fingerprint": "sha256:aa",
          "run_id": "ru_1",
          "status": "pending",
          "submitted_at": "2026-11-28T16:20:00Z"
        },
        {
          "adopted": true,
          "fingerprint": "sha256:a0",
          "run_id": null,
          "status": null,
          "submitted_at": "2026-11-27T09:00:00Z"
        }
      ],
      "removed_at": null,
      "request": {
        "api": "scrape",
        "parameters": {
          "limit": 50,
          "region": "eu"
        }
      },
      "run_id": "ru_1",
      "status": "pending",
      "status_at": "2026-11-28T16:20:00Z",
      "submitted_at": "2026-11-28T16:20:00Z",
      "unknown": null
    },
    "shop/stock": {
      "fingerprint": "sha256:bb",
      "history": [],
      "removed_at": null,
      "request": {
        "api": "stock"
      },
      "run_id": null,
      "status": null,
      "status_at": null,
      "submitted_at": null,
      "unknown": {
        "reason": "read timeout",
        "since": "2026-11-28T16:21:00Z"
      }
    }
  },
  "fingerprint_version": 1,
  "lineage": "8d7e3c1a-0000-4000-8000-000000000001",
  "schema_version": "1.2.0",
  "serial": 4,
  "version": 1,
  "workspace_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6"
}
"""


def sample_state() -> State:
    return base_state(
        shop__pricing=replace(
            submitted(request={"api": "scrape", "parameters": {"region": "eu", "limit": 50}}),
            history=(
                Submission("ru_1", T0, "sha256:aa", "pending"),
                Submission(None, "2026-11-27T09:00:00Z", "sha256:a0", adopted=True),
            ),
        ),
        shop__stock=Entry("sha256:bb", {"api": "stock"}, unknown=Unknown(T1, "read timeout")),
        shop__gone=Entry("sha256:cc", {"api": "old"}, "ru_0", T0, "completed", T1, None, T2),
    )


def test_state_file_text_is_exact_and_round_trips(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(sample_state())

    # Keys sorted at every level, requests included; 2-space indent; trailing newline.
    assert store.path.read_text() == EXPECTED_TEXT
    assert store.load() == sample_state()
    assert sorted(p.name for p in store.path.parent.iterdir()) == [".gitignore", "state.json"]


def test_live_hides_tombstones_and_entries_cannot_be_mutated(tmp_path: Path) -> None:
    state = sample_state()
    assert sorted(state.live()) == ["shop/pricing", "shop/stock"]
    assert state.entries["shop/gone"].is_tombstone
    with pytest.raises(TypeError):
        state.entries["x"] = submitted()  # type: ignore[index]


def test_a_replaced_state_keeps_read_only_entries() -> None:
    state = replace(sample_state(), entries={"shop/x": submitted()})
    with pytest.raises(TypeError):
        state.entries["y"] = submitted()  # type: ignore[index]


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "caf\u00e9 \u2028 \U0001f600",  # non-ASCII: written escaped
        "del \x7f and \x00\x1f controls",
        "\ud800",  # a lone surrogate
        2**70,  # beyond 64 bits
        [1, -5, True, None, {"b": 1, "a": {"z": [], "y": {}}}],
    ],
    ids=["ascii", "non-ascii", "controls", "surrogate", "big-int", "nested"],
)
def test_journal_lines_are_the_sorted_compact_ascii_json_of_their_record(value: object) -> None:
    record = IntentRecord("shop/x", "sha256:x", {"parameters": {"v": value}, "api": "a"}, T0)
    want = json.dumps(record_to_json(record), sort_keys=True, separators=(",", ":")) + "\n"
    assert encode(record) == want.encode("ascii")


def test_empty_state_has_a_fresh_lineage_and_serial_zero() -> None:
    a, b = State.empty(2, "1.0.0"), State.empty(2, "1.0.0")
    assert a.lineage != b.lineage
    assert (a.serial, a.workspace_id, dict(a.entries), a.fingerprint_version, a.version) == (0, None, {}, 2, 1)


def test_missing_state_file_loads_as_empty_and_load_never_writes(tmp_path: Path) -> None:
    store = store_at(tmp_path, fingerprint_version=3, schema_version="1.2.0")
    state = store.load()
    assert (state.serial, dict(state.entries), state.fingerprint_version, state.schema_version) == (
        0,
        {},
        3,
        "1.2.0",
    )
    assert not (tmp_path / ".intuned-runs").exists()


def test_atomic_write_replaces_without_leaving_temp_files(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(sample_state())
    store.write(bump(sample_state()))
    assert json.loads(store.path.read_text())["serial"] == 5
    assert sorted(p.name for p in store.path.parent.iterdir()) == [".gitignore", "state.json"]


def test_gitignore_is_written_once_and_never_overwritten(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(sample_state())
    gitignore = store.path.parent / ".gitignore"
    assert gitignore.read_text() == GITIGNORE == "*.lock\n*.journal\nemulator/\n"
    gitignore.write_text("mine\n")
    store.write(bump(sample_state()))
    assert gitignore.read_text() == "mine\n"


def test_gitignore_goes_to_the_parent_for_the_emulator_state_and_nowhere_else(tmp_path: Path) -> None:
    StateStore(tmp_path / ".intuned-runs" / "emulator" / "state.json").write(sample_state())
    assert (tmp_path / ".intuned-runs" / ".gitignore").read_text() == GITIGNORE
    assert not (tmp_path / ".intuned-runs" / "emulator" / ".gitignore").exists()

    # A state kept in the user's own directory: a `*.lock` rule there could hide their Cargo.lock.
    StateStore(tmp_path / "ops" / "state.json").write(sample_state())
    assert not (tmp_path / "ops" / ".gitignore").exists()


def test_timestamps_are_utc_seconds_with_z() -> None:
    moment = datetime(2026, 11, 28, 17, 20, 0, 999999, tzinfo=timezone(timedelta(hours=1)))
    assert timestamp(moment) == "2026-11-28T16:20:00Z"
    with pytest.raises(ValueError):
        timestamp(datetime(2026, 11, 28))
    assert store_at(Path("/nonexistent")).now() == "2026-11-28T16:21:00Z"


def test_with_fingerprints_recomputes_every_entry_from_its_stored_request() -> None:
    state = sample_state()
    new = state.with_fingerprints(lambda key, request: f"v2:{key}:{request['api']}", 2, "1.3.0")
    assert {k: e.fingerprint for k, e in new.entries.items()} == {
        "shop/pricing": "v2:shop/pricing:scrape",
        "shop/stock": "v2:shop/stock:stock",
        "shop/gone": "v2:shop/gone:old",
    }
    assert (new.fingerprint_version, new.schema_version, new.serial) == (2, "1.3.0", state.serial)
    assert new.entries["shop/gone"].is_tombstone


# -------------------------------------------------------------------------------------------- replay

INTENT_A = IntentRecord("shop/a", "sha256:new", {"api": "new"}, T1)
OLD_A = submitted("sha256:old", "ru_old")


@pytest.mark.parametrize(
    ("records", "expected_a", "serial"),
    [
        pytest.param(
            [INTENT_A, SubmittedRecord("shop/a", "ru_2", "pending", T2)],
            Entry(
                "sha256:new",
                {"api": "new"},
                "ru_2",
                T2,
                "pending",
                T2,
                history=(Submission("ru_2", T2, "sha256:new", "pending"),),
            ),
            5,
            id="intent+submitted",
        ),
        pytest.param(
            [INTENT_A, SubmittedRecord("shop/a", "ru_2", None, T2)],
            Entry("sha256:new", {"api": "new"}, "ru_2", T2, history=(Submission("ru_2", T2, "sha256:new"),)),
            5,
            id="submitted-without-status",
        ),
        pytest.param(
            [INTENT_A, UnknownRecord("shop/a", "read timeout", T2)],
            # remembers the submission it may have replaced, for `state resolve --not-submitted`
            Entry("sha256:new", {"api": "new"}, unknown=Unknown(T2, "read timeout", OLD_A)),
            5,
            id="intent+unknown",
        ),
        pytest.param(
            [INTENT_A],
            Entry("sha256:new", {"api": "new"}, unknown=Unknown(T1, NO_OUTCOME, OLD_A)),
            5,
            id="intent-alone-is-interrupted",
        ),
        pytest.param([INTENT_A, FailedRecord("shop/a", T2)], OLD_A, 4, id="intent+failed-unchanged"),
        pytest.param([ForgetRecord("shop/a", T2)], replace(OLD_A, removed_at=T2), 5, id="forget-keeps-a-tombstone"),
        pytest.param(
            [StatusRecord("shop/a", "completed", T2)],
            replace(OLD_A, status="completed", status_at=T2),
            4,
            id="status-does-not-bump",
        ),
        pytest.param(
            [ForgetRecord("shop/a", T1), INTENT_A, SubmittedRecord("shop/a", "ru_2", "pending", T2)],
            Entry(
                "sha256:new",
                {"api": "new"},
                "ru_2",
                T2,
                "pending",
                T2,
                history=(Submission("ru_2", T2, "sha256:new", "pending"),),
            ),
            5,
            id="re-added-after-forget",
        ),
        pytest.param(
            [INTENT_A, SubmittedRecord("shop/a", "ru_2", "pending", T1), StatusRecord("shop/a", "failed", T2)],
            Entry(
                "sha256:new",
                {"api": "new"},
                "ru_2",
                T1,
                "failed",
                T2,
                history=(Submission("ru_2", T1, "sha256:new", "failed"),),
            ),
            5,
            id="submitted+status-bumps-once",
        ),
        pytest.param([], OLD_A, 4, id="header-only"),
    ],
)
def test_replay_table(records: list[Record], expected_a: Entry, serial: int) -> None:
    state = base_state(shop__a=OLD_A, shop__b=submitted("sha256:b"))
    result = replay(state, records)
    assert result.entries["shop/a"] == expected_a
    assert result.entries["shop/b"] == submitted("sha256:b")
    assert result.serial == serial
    assert (result.lineage, result.workspace_id) == (LINEAGE, WS)
    assert state.entries["shop/a"] == OLD_A  # pure: the input is untouched


def test_replay_move_renames_the_entry() -> None:
    result = replay(base_state(shop__a=OLD_A), [MoveRecord("shop/a", "shop/renamed", T1)])
    assert dict(result.entries) == {"shop/renamed": OLD_A}
    assert result.serial == 5


def test_replay_workspace_records_it() -> None:
    state = replace(base_state(), workspace_id=None)
    result = replay(state, [WorkspaceRecord(WS)])
    assert (result.workspace_id, result.serial) == (WS, 5)


def test_replay_an_outcome_without_intent_is_an_error() -> None:
    with pytest.raises(StateError, match="records a submission for 'shop/a' without an intent"):
        replay(base_state(), [SubmittedRecord("shop/a", "ru_1", "pending", T1)])


# ------------------------------------------------------------------------------------ journal on disk


def test_journal_is_replayed_on_load_and_torn_last_line_ignored(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state(shop__a=OLD_A))
    full = line(type="intent", key="shop/b", fingerprint="sha256:b", request={"api": "b"}, at=T1)
    write_journal(store, [full])
    with store.journal_path.open("a") as f:
        f.write('{"type": "submitted", "key": "shop/b", "run_')  # what a crash mid-write leaves

    state = store.load()
    assert state.entries["shop/b"] == Entry("sha256:b", {"api": "b"}, unknown=Unknown(T1, NO_OUTCOME))
    assert state.entries["shop/a"] == OLD_A
    assert state.serial == 5
    # Readers never write.
    assert json.loads(store.path.read_text())["serial"] == 4
    assert store.journal_path.exists()


def test_damaged_middle_line_is_an_error(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state())
    intent = line(type="intent", key="shop/b", fingerprint="sha256:b", request={}, at=T1)
    write_journal(store, ['{"type": "intent", "key": "sho', intent])
    with pytest.raises(StateError, match=r"journal .*state\.json\.journal line 2 is damaged"):
        store.load()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"type": "launch", "key": "x"}', "line 2: unknown record type 'launch'"),
        ('{"type": "submitted", "key": "x", "at": "t"}', "line 2: submitted record is missing 'run_id'"),
        ('{"type": "forget", "key": 7, "at": "t"}', "line 2: forget record field 'key' must not be a number"),
        ("[1]", "line 2: a record must be a JSON object"),
    ],
)
def test_invalid_records_are_errors_with_their_line(tmp_path: Path, bad: str, message: str) -> None:
    store = store_at(tmp_path)
    store.write(base_state())
    write_journal(store, [bad, line(type="workspace", workspace_id=WS)])
    with pytest.raises(StateError, match=message):
        store.load()


def test_journal_without_header_is_an_error(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state())
    store.journal_path.write_text(line(type="workspace", workspace_id=WS) + "\n" + line(type="x") + "\n")
    with pytest.raises(StateError, match="line 1: the first line must be the journal header"):
        store.load()


def test_journal_of_another_lineage_is_an_error_for_load_and_fold(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state())
    write_journal(store, [], lineage="0ther")
    with pytest.raises(StateError, match=r"journal .* belongs to another state \(lineage 0ther"):
        store.load()
    with pytest.raises(StateError, match="belongs to another state"):
        store.fold()
    assert store.journal_path.exists()


def test_already_folded_journal_is_ignored_then_removed_by_the_next_fold(tmp_path: Path) -> None:
    # A crash between the rename of the folded state and the removal of the journal.
    store = store_at(tmp_path)
    store.write(bump(base_state(shop__a=OLD_A)))  # serial 5, already holding the journal's effect
    write_journal(store, [line(type="forget", key="shop/a", at=T1)], base_serial=4)

    assert store.load() == bump(base_state(shop__a=OLD_A))
    assert store.fold().serial == 5
    assert not store.journal_path.exists()


def test_journal_without_state_file_uses_the_header_lineage(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    intent = line(type="intent", key="shop/b", fingerprint="sha256:b", request={}, at=T1)
    write_journal(store, [intent], base_serial=0)
    state = store.load()
    assert (state.lineage, state.serial) == (LINEAGE, 1)
    assert state.entries["shop/b"].unknown == Unknown(T1, NO_OUTCOME)


def test_empty_journal_file_is_no_journal(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state())
    store.journal_path.write_text("")
    assert store.load() == base_state()


# ----------------------------------------------------------------------------------- damaged state files

GOOD = json.dumps(sample_state().to_json(), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{\n  "version": 1,\n  "lineage": ,\n}\n', r"is not valid JSON \(line 3\)"),
        (GOOD[: len(GOOD) // 2], "is not valid JSON"),
        ("", "is empty"),
        ("[1, 2]", "holds an array, not a JSON object"),
        ("null", "holds null, not a JSON object"),
        ('{"lineage": "x"}', "has no 'version'"),
        ('{"version": "1"}', 'has unknown version "1"'),
        ('{"version": 1, "serial": 0}', "is missing 'lineage'"),
        (GOOD.replace('"serial": 4', '"serial": "4"'), "has a string for 'serial', expected an integer"),
        (GOOD.replace('"serial": 4', '"serial": true'), "has a boolean for 'serial'"),
        (GOOD.replace('"run_id": null,', ""), "is missing 'run_id' in entry 'shop/stock'"),
        (GOOD.replace('"run_id": "ru_1"', '"run_id": 1'), "wrong type in entry 'shop/pricing'"),
        (GOOD.replace('"reason": "read timeout",', ""), "malformed 'unknown' in entry 'shop/stock'"),
    ],
)
def test_damaged_state_file_is_an_error_never_an_empty_state(tmp_path: Path, content: str, message: str) -> None:
    store = StateStore(state_path(tmp_path), display=".intuned-runs/state.json")
    store.path.parent.mkdir()
    store.path.write_text(content)
    with pytest.raises(StateError, match=message) as info:
        store.load()
    assert str(info.value).startswith("state file .intuned-runs/state.json ")
    assert str(info.value).endswith(": restore it from git or your CI artifacts; refusing to treat it as empty")


def test_invalid_utf8_state_file_is_an_error(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.path.parent.mkdir()
    store.path.write_bytes(b'{"version": 1, "lineage": "\xff"}')
    with pytest.raises(StateError, match="is not valid UTF-8"):
        store.load()


@pytest.mark.parametrize(
    ("edit", "request_"),
    [
        ('"api": "st\u00f6ck"', {"api": "st\u00f6ck"}),  # text that is not ASCII
        ('"api": "stock", "limit": 1e999', {"api": "stock", "limit": float("inf")}),  # out of msgspec's range
    ],
)
def test_state_file_that_msgspec_refuses_is_read_by_json_alike(
    tmp_path: Path, edit: str, request_: dict[str, object]
) -> None:
    store = store_at(tmp_path)
    store.path.parent.mkdir()
    store.path.write_bytes(GOOD.replace('"api": "stock"', edit).encode())
    stock = replace(sample_state().entries["shop/stock"], request=request_)
    assert store.load() == replace(sample_state(), entries={**sample_state().entries, "shop/stock": stock})


def test_a_bad_byte_anywhere_is_reported_before_any_malformed_entry(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.path.parent.mkdir()
    damaged = GOOD.replace('"run_id": "ru_1"', '"run_id": 1').replace('"api": "stock"', '"api": "st@ck"')
    store.path.write_bytes(damaged.encode().replace(b"@", b"\xff"))
    with pytest.raises(StateError, match="is not valid UTF-8"):
        store.load()
    store.path.write_text(damaged.replace('"api": "st@ck"', '"limit": 1e999'))
    with pytest.raises(StateError, match="wrong type in entry 'shop/pricing'"):
        store.load()


def test_newer_state_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.path.parent.mkdir()
    store.path.write_text(GOOD.replace('"version": 1', '"version": 2'))
    with pytest.raises(StateError, match=r"has version 2, written by a newer intuned-runs .*: upgrade"):
        store.load()
    with pytest.raises(StateError):
        store.fold()
    assert store.path.read_text() == GOOD.replace('"version": 1', '"version": 2')


# --------------------------------------------------------------------------------------- journal + fold


def test_apply_cycle_journal_then_fold(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state(shop__a=OLD_A, shop__gone=submitted("sha256:g")))
    with store.journal() as journal:
        assert journal.base.serial == 4
        header = json.loads(store.journal_path.read_text().splitlines()[0])
        assert header == {"type": "header", "lineage": LINEAGE, "base_serial": 4}
        journal.append(WorkspaceRecord(WS))
        journal.append_durable(IntentRecord("shop/a", "sha256:new", {"api": "new"}, store.now()))
        journal.append(SubmittedRecord("shop/a", "ru_2", "pending", store.now()))
        journal.append_durable(IntentRecord("shop/b", "sha256:b", {"api": "b"}, store.now()))
        journal.append(FailedRecord("shop/b", store.now()))
        journal.append_durable(IntentRecord("shop/c", "sha256:c", {"api": "c"}, store.now()))
        journal.append(UnknownRecord("shop/c", "read timeout", store.now()))
        journal.append(ForgetRecord("shop/gone", store.now()))

    loaded = store.load()
    folded = store.fold()
    assert folded == loaded == store.load()
    assert not store.journal_path.exists()
    assert folded.serial == 5
    at = "2026-11-28T16:22:00Z"
    assert folded.entries["shop/a"] == Entry(
        "sha256:new",
        {"api": "new"},
        "ru_2",
        at,
        "pending",
        at,
        history=(Submission("ru_2", at, "sha256:new", "pending"),),
    )
    assert "shop/b" not in folded.entries
    assert folded.entries["shop/c"].unknown == Unknown("2026-11-28T16:26:00Z", "read timeout")
    assert folded.entries["shop/gone"].removed_at == "2026-11-28T16:27:00Z"
    assert sorted(folded.live()) == ["shop/a", "shop/c"]


def test_status_only_fold_keeps_the_serial(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state(shop__a=OLD_A))
    with store.journal() as journal:
        journal.append(StatusRecord("shop/a", "completed", store.now()))
    assert store.fold().serial == 4
    assert store.load().entries["shop/a"].status == "completed"


def test_new_journal_folds_a_crashed_one_first(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state())
    write_journal(store, [line(type="intent", key="shop/x", fingerprint="sha256:x", request={}, at=T1)])
    with store.journal() as journal:
        assert journal.base.serial == 5
        assert json.loads(store.journal_path.read_text())["base_serial"] == 5
    state = store.load()
    assert state.serial == 5
    assert state.entries["shop/x"].unknown == Unknown(T1, NO_OUTCOME)


def test_first_apply_with_no_state_file(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    with store.journal() as journal:
        journal.append_durable(IntentRecord("shop/a", "sha256:a", {}, store.now()))
        journal.append(SubmittedRecord("shop/a", "ru_1", "pending", store.now()))
        lineage = journal.base.lineage
    assert store.load().lineage == lineage
    folded = store.fold()
    assert (folded.lineage, folded.serial, folded.entries["shop/a"].run_id) == (lineage, 1, "ru_1")
    assert sorted(p.name for p in store.path.parent.iterdir()) == [".gitignore", "state.json"]


def test_fold_upgrade_stores_recomputed_fingerprints(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state(shop__a=OLD_A))
    store.fold(upgrade=lambda s: s.with_fingerprints(lambda key, request: "sha256:v2", 2, "1.3.0"))
    raw = json.loads(store.path.read_text())
    assert (raw["fingerprint_version"], raw["schema_version"], raw["serial"]) == (2, "1.3.0", 4)
    assert raw["entries"]["shop/a"]["fingerprint"] == "sha256:v2"


def test_fold_without_journal_or_upgrade_does_not_touch_the_file(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state())
    before = store.path.stat().st_mtime_ns, store.path.stat().st_ino
    assert store.fold() == base_state()
    assert store.fold(upgrade=lambda s: s) == base_state()  # nothing to upgrade: same object back
    assert (store.path.stat().st_mtime_ns, store.path.stat().st_ino) == before


def test_write_refuses_to_hide_an_unfolded_journal(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(base_state())
    write_journal(store, [])
    with pytest.raises(RuntimeError, match="fold"):
        store.write(bump(base_state()))


def test_redactor_masks_a_secret_that_slipped_into_a_request(tmp_path: Path) -> None:
    store = store_at(tmp_path, redactor=Redactor(["hunter2-secret"]))
    with store.journal() as journal:
        journal.append_durable(IntentRecord("shop/a", "sha256:a", {"h": "Bearer hunter2-secret"}, T1))
        assert "hunter2" not in store.journal_path.read_text()
        journal.append(SubmittedRecord("shop/a", "ru_1", None, T2))
    store.fold()
    text = store.path.read_text()
    assert "hunter2" not in text
    assert json.loads(text)["entries"]["shop/a"]["request"] == {"h": "Bearer ***"}


def test_group_commit_keeps_every_record(tmp_path: Path) -> None:
    store = StateStore(state_path(tmp_path))
    threads_n, per_thread = 32, 30
    errors: list[BaseException] = []
    with store.journal() as journal:

        def work(t: int) -> None:
            try:
                for i in range(per_thread // 2):
                    key = f"shop/t{t}-{i}"
                    journal.append_durable(IntentRecord(key, f"sha256:{key}", {"i": i}, T1))
                    journal.append_durable(SubmittedRecord(key, f"ru_{t}_{i}", "pending", T2))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 1 <= journal.fsyncs <= threads_n * per_thread

    assert errors == []
    lines = store.journal_path.read_text().splitlines()
    assert len(lines) == 1 + threads_n * per_thread
    state = store.load()
    assert len(state.entries) == threads_n * per_thread // 2
    assert all(e.run_id is not None and e.unknown is None for e in state.entries.values())
    assert state.entries["shop/t31-14"].run_id == "ru_31_14"


# ------------------------------------------------------------------------------------ real processes

CHILD_SUBMITTER = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path
    from intuned_runs.state.journal import IntentRecord, SubmittedRecord
    from intuned_runs.state.store import StateStore

    store = StateStore(Path(sys.argv[1]))
    journal = store.journal().__enter__()

    def work(t):
        i = 0
        while True:
            key = f"shop/t{t}-{i}"
            journal.append_durable(IntentRecord(key, "sha256:" + key, {"i": i}, store.now()))
            if i % 5 != 4:  # every fifth run never gets an outcome: it was in flight
                journal.append(SubmittedRecord(key, "ru_" + key, "pending", store.now()))
                os.write(1, (key + "\\n").encode())
            i += 1

    for t in range(4):
        threading.Thread(target=work, args=(t,), daemon=True).start()
    threading.Event().wait()
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


def spawn(children: list[subprocess.Popen[bytes]], script: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, env=env)
    children.append(proc)
    return proc


def test_sigkill_mid_apply_loses_no_journaled_submission(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    path = state_path(tmp_path)
    proc = spawn(children, CHILD_SUBMITTER, str(path))
    assert proc.stdout is not None
    confirmed: set[str] = set()
    while len(confirmed) < 300:
        out = proc.stdout.readline()
        assert out, "the child exited early"
        confirmed.add(out.decode().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    confirmed |= {key for key in proc.stdout.read().decode().split() if key}

    store = StateStore(path)
    state = store.load()
    for key in confirmed:
        entry = state.entries[key]
        assert (entry.fingerprint, entry.run_id, entry.status, entry.unknown) == (
            f"sha256:{key}",
            f"ru_{key}",
            "pending",
            None,
        )
    unknown = {k for k, e in state.entries.items() if e.unknown is not None}
    submitted_keys = {k for k, e in state.entries.items() if e.run_id is not None}
    assert unknown | submitted_keys == set(state.entries)
    assert {state.entries[k].unknown.reason for k in unknown} == {NO_OUTCOME}  # type: ignore[union-attr]
    # Every fifth run had no outcome: they and at most one in-flight run per thread are unknown.
    in_flight = {k for k in state.entries if int(k.rsplit("-", 1)[1]) % 5 == 4}
    assert in_flight <= unknown
    assert len(unknown - in_flight) <= 2 * 4

    folded = store.fold()
    assert folded == state
    assert json.loads(path.read_text())["serial"] == 1
    assert StateStore(path).load() == state


CHILD_FOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from intuned_runs.state.lock import StateLock
    from intuned_runs.state.journal import IntentRecord, SubmittedRecord
    from intuned_runs.state.store import StateStore

    path, name, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = StateStore(path)
    for i in range(rounds):
        with StateLock(path, "test " + name).acquire(timeout=60):
            with store.journal() as journal:
                key = f"shop/{name}-{i}"
                journal.append_durable(IntentRecord(key, "sha256:" + key, {"i": i}, store.now()))
                journal.append_durable(SubmittedRecord(key, "ru_" + key, "pending", store.now()))
            store.fold()
    """
)

CHILD_READER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from intuned_runs.state.store import StateStore

    store = StateStore(Path(sys.argv[1]))
    last, loads = (0, 0), 0
    while last[0] < int(sys.argv[2]):  # until the writers are done
        state = store.load()  # lock-free, as plan reads: never an error, never going back
        now = (state.serial, len(state.entries))
        assert now >= last, (now, last)
        last, loads = now, loads + 1
    print("reader ok", loads)
    """
)


def test_concurrent_writers_under_the_lock_never_corrupt_the_state(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    path = state_path(tmp_path)
    rounds = 40
    writers = [spawn(children, CHILD_FOLDER, str(path), name, str(rounds)) for name in ("a", "b")]
    reader = spawn(children, CHILD_READER, str(path), str(2 * rounds))
    for proc in [*writers, reader]:
        assert proc.wait(timeout=120) == 0
    assert reader.stdout is not None and reader.stdout.read().startswith(b"reader ok")

    raw = json.loads(path.read_text())
    assert raw["serial"] == 2 * rounds
    assert sorted(raw["entries"]) == sorted(f"shop/{n}-{i}" for n in "ab" for i in range(rounds))
    assert not StateStore(path).journal_path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == [".gitignore", "state.json", "state.json.lock"]


CHILD_DISK_FULL = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from intuned_runs.errors import StateError
    from intuned_runs.state.journal import IntentRecord
    from intuned_runs.state.store import StateStore

    store = StateStore(Path(sys.argv[1]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    with store.journal() as journal:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))
        appended = 0
        try:
            for i in range(100):
                journal.append_durable(IntentRecord(f"shop/r{i}", "sha256:x", {"pad": "x" * 40}, "t"))
                appended += 1
        except StateError as e:
            print(appended, e)
        try:
            journal.append(IntentRecord("shop/after", "sha256:x", {}, "t"))
        except StateError as e:
            print("after:", e)
    """
)


def test_a_write_that_fails_midway_leaves_no_partial_line(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    # The file-size limit makes the kernel write part of a line, then refuse the rest (EFBIG).
    path = state_path(tmp_path)
    proc = spawn(children, CHILD_DISK_FULL, str(path))
    out, _ = proc.communicate(timeout=60)
    first, after = out.decode().splitlines()
    appended, message = first.split(" ", 1)
    assert message == f"cannot write journal {path}.journal: File too large"
    assert after == f"after: cannot write journal {path}.journal: File too large"

    text = StateStore(path).journal_path.read_text()
    assert text.endswith("\n")
    assert len(text.splitlines()) == 1 + int(appended)
    assert len(StateStore(path).load().entries) == int(appended)


def test_append_durable_writes_several_records_with_one_fsync(tmp_path: Path) -> None:
    """apply makes intents durable in batches (one fsync per batch of `concurrency`)."""
    from intuned_runs.state.journal import IntentRecord
    from intuned_runs.state.store import StateStore

    store = StateStore(tmp_path / "state.json")
    with store.journal() as journal:
        before = journal.fsyncs
        journal.append_durable(
            *(IntentRecord(f"p/r{i}", "sha256:x", {"api": "a"}, "2026-01-01T00:00:00Z") for i in range(5))
        )
        assert journal.fsyncs == before + 1
    state = store.load()
    assert sorted(state.entries) == [f"p/r{i}" for i in range(5)]
    assert all(e.unknown is not None for e in state.entries.values())  # intents without outcome
