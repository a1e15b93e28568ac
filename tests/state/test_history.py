"""Each entry's history (docs/state.md, History): the journal replay appends submissions newest first and
keeps 10, statuses update the item of their run ID without a serial change, unknown outcomes, tombstones and
moves keep it, the `state` edits carry it, and the file format reads a state written before it existed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from msgspec.structs import replace

from intuned_runs.errors import StateError
from intuned_runs.selection import parse
from intuned_runs.state import edits
from intuned_runs.state.format import dumps, loads
from intuned_runs.state.journal import (
    NO_OUTCOME,
    ForgetRecord,
    IntentRecord,
    MoveRecord,
    Record,
    StatusRecord,
    SubmittedRecord,
    UnknownRecord,
    replay,
)
from intuned_runs.state.model import HISTORY_LIMIT, Entry, State, Submission
from intuned_runs.state.store import StateStore

LINEAGE = "8d7e3c1a-0000-4000-8000-000000000001"


def at(n: int) -> str:
    return f"2026-11-28T16:{n:02d}:00Z"


def state_of(**entries: Entry) -> State:
    return State(
        lineage=LINEAGE,
        serial=4,
        workspace_id=None,
        fingerprint_version=1,
        schema_version="1.2.0",
        entries={key.replace("__", "/"): entry for key, entry in entries.items()},
    )


def submission(key: str, n: int, status: str | None = "pending") -> list[Record]:
    """The records of one submitted run: intent, then 201 with run ID ru_N."""
    return [
        IntentRecord(key, f"sha256:{n}", {"api": "x", "n": n}, at(n)),
        SubmittedRecord(key, f"ru_{n}", status, at(n)),
    ]


def test_submissions_go_first_and_only_the_last_ten_are_kept() -> None:
    records = [r for n in range(12) for r in submission("shop/a", n)]
    state = replay(state_of(), records)
    entry = state.entries["shop/a"]
    assert HISTORY_LIMIT == 10
    assert entry.history == tuple(Submission(f"ru_{n}", at(n), f"sha256:{n}", "pending") for n in range(11, 1, -1))
    assert (entry.run_id, entry.fingerprint) == ("ru_11", "sha256:11")  # the entry is the newest item
    assert state.serial == 5


def test_a_status_updates_the_item_of_the_entrys_run_id_and_not_the_serial() -> None:
    earlier = replay(state_of(), [*submission("shop/a", 1), *submission("shop/a", 2)])
    assert earlier.serial == 5
    later = replay(earlier, [StatusRecord("shop/a", "completed", at(9))])
    entry = later.entries["shop/a"]
    assert (entry.status, entry.status_at) == ("completed", at(9))
    assert entry.history == (
        Submission("ru_2", at(2), "sha256:2", "completed"),
        Submission("ru_1", at(1), "sha256:1", "pending"),
    )
    assert later.serial == 5


def test_a_status_of_an_adopted_entry_without_run_id_touches_no_item() -> None:
    adopted = Entry("sha256:1", {}, history=(Submission(None, at(1), "sha256:1", adopted=True),))
    entry = replay(state_of(shop__a=adopted), [StatusRecord("shop/a", "completed", at(2))]).entries["shop/a"]
    assert entry.history == adopted.history


def test_an_unknown_outcome_keeps_the_history_and_adds_no_item() -> None:
    first = replay(state_of(), submission("shop/a", 1))
    for records, reason in (
        (
            [IntentRecord("shop/a", "sha256:2", {}, at(2)), UnknownRecord("shop/a", "read timeout", at(3))],
            "read timeout",
        ),
        ([IntentRecord("shop/a", "sha256:2", {}, at(2))], NO_OUTCOME),
    ):
        entry = replay(first, records).entries["shop/a"]
        assert entry.unknown is not None and entry.unknown.reason == reason
        assert entry.history == (Submission("ru_1", at(1), "sha256:1", "pending"),)
        # the submission it may have replaced is remembered without a second copy of the history
        assert entry.unknown.previous == replace(first.entries["shop/a"], history=())


def test_only_an_intent_left_without_outcome_is_in_flight_and_the_flag_is_never_stored(tmp_path: Path) -> None:
    records = [
        IntentRecord("shop/a", "sha256:1", {}, at(1)),
        IntentRecord("shop/b", "sha256:2", {}, at(1)),
        UnknownRecord("shop/b", "read timeout", at(2)),
    ]
    state = replay(state_of(), records)
    a, b = state.entries["shop/a"].unknown, state.entries["shop/b"].unknown
    assert a is not None and b is not None
    assert (a.in_flight, b.in_flight) == (True, False)
    again = loads(dumps(state).encode(), "state.json").entries["shop/a"].unknown
    assert again is not None and (again.reason, again.in_flight) == (NO_OUTCOME, False)
    assert "in_flight" not in dumps(state)


def test_tombstones_and_moves_carry_the_history_and_a_re_add_continues_it() -> None:
    state = replay(state_of(), submission("shop/a", 1))
    gone = replay(state, [ForgetRecord("shop/a", at(2))]).entries["shop/a"]
    assert gone.is_tombstone and gone.history == state.entries["shop/a"].history
    back = replay(state, [ForgetRecord("shop/a", at(2)), *submission("shop/a", 3)]).entries["shop/a"]
    assert [item.run_id for item in back.history] == ["ru_3", "ru_1"]
    moved = replay(state, [MoveRecord("shop/a", "shop/b", at(2))])
    assert "shop/a" not in moved.entries
    assert moved.entries["shop/b"].history == state.entries["shop/a"].history


def test_state_edits_carry_the_history() -> None:
    state = replay(state_of(), submission("shop/a", 1))
    history = state.entries["shop/a"].history
    assert edits.move(state, "shop/a", "shop/b").state.entries["shop/b"].history == history
    assert "shop/a" not in edits.forget(state, parse(["a"]), at(5)).state.entries  # no tombstone, no history

    unknown = replay(state, [IntentRecord("shop/a", "sha256:2", {"n": 2}, at(2))])
    back = edits.resolve(unknown, parse(["a"]), submitted=False, run_id=None).state.entries["shop/a"]
    assert back == state.entries["shop/a"]  # the last submission, history included
    settled = edits.resolve(unknown, parse(["a"]), submitted=True, run_id="ru_2").state.entries["shop/a"]
    assert settled.history == (Submission("ru_2", at(2), "sha256:2"), *history)


def test_adopt_records_the_definition_as_submitted_with_an_adopted_item() -> None:
    state = replay(state_of(), submission("shop/a", 1))
    definitions = [edits.Definition("shop/a", "sha256:9", {"n": 9}), edits.Definition("shop/b", "sha256:8", {})]
    edit = edits.adopt(state, definitions, at(9), None)
    assert edit.keys == ("shop/a", "shop/b")
    assert edit.state.serial == state.serial  # carry_out bumps it
    a = edit.state.entries["shop/a"]
    assert a == Entry(
        "sha256:9",
        {"n": 9},
        None,
        at(9),
        history=(Submission(None, at(9), "sha256:9", adopted=True), *state.entries["shop/a"].history),
    )
    b = edits.adopt(state, definitions[1:], at(9), "ru_given").state.entries["shop/b"]
    assert (b.run_id, b.history) == ("ru_given", (Submission("ru_given", at(9), "sha256:8", adopted=True),))


def document(history: object = None, *, with_history: bool = True) -> bytes:
    entry = {
        "fingerprint": "sha256:1",
        "request": {},
        "run_id": "ru_1",
        "submitted_at": at(1),
        "status": None,
        "status_at": None,
        "unknown": None,
        "removed_at": None,
    }
    if with_history:
        entry["history"] = history
    raw = {
        "version": 1,
        "lineage": LINEAGE,
        "serial": 1,
        "workspace_id": None,
        "fingerprint_version": 1,
        "schema_version": None,
        "entries": {"shop/a": entry},
    }
    return json.dumps(raw).encode()


def test_a_state_written_before_history_existed_reads_as_empty_histories(tmp_path: Path) -> None:
    assert loads(document(with_history=False), "state.json").entries["shop/a"].history == ()
    # and the next write adds the field
    store = StateStore(tmp_path / "state.json")
    (tmp_path / "state.json").write_bytes(document(with_history=False))
    store.write(store.load())
    assert json.loads((tmp_path / "state.json").read_text())["entries"]["shop/a"]["history"] == []


@pytest.mark.parametrize(
    "history",
    [
        {"run_id": "ru_1"},
        [{"run_id": 5, "submitted_at": at(1), "fingerprint": "sha256:1", "status": None}],
        [{"run_id": "ru_1", "fingerprint": "sha256:1", "status": None}],
        [{"run_id": "ru_1", "submitted_at": at(1), "fingerprint": "sha256:1", "status": None, "adopted": "yes"}],
        ["ru_1"],
    ],
    ids=["object", "run-id-number", "no-submitted-at", "adopted-string", "string-item"],
)
def test_a_malformed_history_is_a_state_error(history: object) -> None:
    with pytest.raises(StateError) as e:
        loads(document(history), "state.json")
    assert str(e.value) == (
        "state file state.json has a malformed 'history' in entry 'shop/a': restore it from git or your CI "
        "artifacts; refusing to treat it as empty"
    )
