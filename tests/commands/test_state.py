"""`intuned-runs state list|show|mv|forget|resolve|unlock` end to end (docs/state.md), and a state that cannot
be trusted (corrupt, truncated, newer version, foreign journal): an error for every command, never an
empty state."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import BODY_DAILY_US, WS, Repo, context, remote


@pytest.fixture
def user_repo(user_repo: Repo, state_backend: Callable[[Repo], Repo]) -> Repo:
    """Every test here runs against each backend (tests/state_backends.py)."""
    return state_backend(user_repo)


def same_journal(found: bytes | None, written: str) -> bool:
    """The journal as written: the header's fields (a backend may keep them apart) and every record line."""
    assert found is not None
    head, _, rest = found.decode("utf-8").partition("\n")
    head_written, _, rest_written = written.partition("\n")
    return json.loads(head) == json.loads(head_written) and rest.rstrip("\n") == rest_written.rstrip("\n")


@pytest.fixture
def applied(user_repo: Repo, emulator: Emulator) -> Repo:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    return user_repo


def run_id(repo: Repo, key: str) -> str:
    value: str = repo.state()["entries"][key]["run_id"]
    return value


def test_list_shows_live_entries_sorted(applied: Repo) -> None:
    entries = applied.state()["entries"]
    result = applied.cli("state", "list")
    assert result.code == 0
    assert result.out_lines == [
        f"{key}  {entries[key]['run_id']}  pending  submitted {entries[key]['submitted_at']}"
        for key in ("portal/orders", "shop/daily-us", "shop/hourly")
    ]


def test_list_all_adds_tombstones_and_json_has_every_field(applied: Repo) -> None:
    assert applied.cli("state", "forget", "orders", "--yes").code == 0
    assert [line.split("  ")[0] for line in applied.cli("state", "list").out_lines] == ["shop/daily-us", "shop/hourly"]
    removed_at = applied.state()["entries"]["portal/orders"]["removed_at"]
    assert applied.cli("state", "list", "--all").out_lines[0] == f"portal/orders  removed {removed_at}"

    document = applied.cli("state", "list", "--all", "--json").json()
    assert document["format_version"] == 1
    assert [e["key"] for e in document["entries"]] == ["portal/orders", "shop/daily-us", "shop/hourly"]
    daily = document["entries"][1]
    assert daily == {
        "key": "shop/daily-us",
        **applied.state()["entries"]["shop/daily-us"],
    }
    assert set(daily) == {
        "key",
        "fingerprint",
        "request",
        "run_id",
        "submitted_at",
        "status",
        "status_at",
        "unknown",
        "removed_at",
    }
    assert daily["request"] == BODY_DAILY_US
    live = applied.cli("state", "list", "--json").json()
    assert [e["key"] for e in live["entries"]] == ["shop/daily-us", "shop/hourly"]


def test_list_without_a_state_file_is_empty(user_repo: Repo) -> None:
    user_repo.standard()
    result = user_repo.cli("state", "list")
    assert (result.code, result.out, result.err) == (0, "", "")
    assert user_repo.cli("state", "list", "--json").json() == {"format_version": 1, "entries": []}
    assert user_repo.store.read() is None


def test_show_one_entry(applied: Repo) -> None:
    entry = applied.state()["entries"]["shop/hourly"]
    result = applied.cli("state", "show", "shop/hourly")
    assert result.code == 0
    assert result.out_lines == [
        "shop/hourly",
        f"  fingerprint: {json.dumps(entry['fingerprint'])}",
        f"  run_id: {json.dumps(entry['run_id'])}",
        f"  submitted_at: {json.dumps(entry['submitted_at'])}",
        '  status: "pending"',
        f"  status_at: {json.dumps(entry['status_at'])}",
        "  unknown: null",
        "  removed_at: null",
        "  request:",
        *("    " + line for line in json.dumps(entry["request"], indent=2).splitlines()),
    ]
    assert "Bearer (secret:HOOK_TOKEN)" in result.out
    assert applied.cli("state", "show", "shop/hourly", "--json").json() == {"key": "shop/hourly", **entry}


def test_show_an_unknown_key(applied: Repo) -> None:
    result = applied.cli("state", "show", "shop/nope")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == ["error: no state entry 'shop/nope': see 'intuned-runs state list --all'"]


def test_mv_renames_an_entry_and_bumps_the_serial(applied: Repo) -> None:
    before = applied.state()
    result = applied.cli("state", "mv", "shop/daily-us", "shop/us-daily")
    assert (result.code, result.out_lines) == (0, ["Moved shop/daily-us → shop/us-daily."])
    after = applied.state()
    assert after["serial"] == before["serial"] + 1
    assert after["lineage"] == before["lineage"]
    assert after["entries"]["shop/us-daily"] == before["entries"]["shop/daily-us"]
    assert "shop/daily-us" not in after["entries"]
    # The run file renamed the same way: the moved entry is that run's history, so nothing re-runs.
    applied.edit("runs.d/shop.yaml", "name: daily-us", "name: us-daily")
    plan = applied.cli("plan", "--select", "us-daily")
    assert plan.out_lines == ["No changes. 1 run up to date."]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("shop/nope", "shop/x", "error: no state entry 'shop/nope'"),
        ("shop/daily-us", "shop/hourly", "error: state entry 'shop/hourly' exists already"),
        ("shop/daily-us", "no-slash", "error: 'no-slash' is not a run key PROJECT/NAME"),
    ],
    ids=["missing", "target-exists", "not-a-key"],
)
def test_mv_refusals_change_nothing(applied: Repo, old: str, new: str, message: str) -> None:
    before = applied.store.read()
    result = applied.cli("state", "mv", old, new)
    assert (result.code, result.out, result.err_lines) == (1, "", [message])
    assert applied.store.read() == before


def test_forget_needs_yes_without_a_tty(applied: Repo) -> None:
    before = applied.store.read()
    result = applied.cli("state", "forget", "shop/*")
    assert result.code == 1
    assert result.err_lines == [
        "- shop/daily-us",
        "- shop/hourly",
        "error: Forget 2 runs from state: this needs confirmation; pass --yes",
    ]
    assert applied.store.read() == before


def test_forget_keeps_tombstones(applied: Repo) -> None:
    serial = applied.state()["serial"]
    result = applied.cli("state", "forget", "shop/*", "--yes")
    assert result.code == 0
    assert result.out_lines == ["Forgot 2 runs (kept as tombstones)."]
    assert result.err_lines == ["- shop/daily-us", "- shop/hourly"]
    state = applied.state()
    assert state["serial"] == serial + 1
    for key in ("shop/daily-us", "shop/hourly"):
        assert state["entries"][key]["removed_at"] is not None
        assert state["entries"][key]["run_id"] == run_id(applied, key)
    assert state["entries"]["portal/orders"]["removed_at"] is None


def test_forget_of_nothing_matching_is_an_error(applied: Repo) -> None:
    result = applied.cli("state", "forget", "nothing", "--yes")
    assert result.code == 1
    assert result.err_lines == [
        "error: selector 'nothing' matches no run or state entry: check the key (PROJECT/NAME) or label"
    ]


@pytest.fixture
def with_unknown(user_repo: Repo) -> Iterator[Repo]:
    user_repo.standard()
    with Emulator(complete_after=0, script=[500]) as emu:
        assert user_repo.cli("apply", "--yes", "--select", "daily-us", *remote(emu)).code == 1
    yield user_repo


def test_resolve_needs_yes_without_a_tty(with_unknown: Repo) -> None:
    before = with_unknown.store.read()
    result = with_unknown.cli("state", "resolve", "daily-us", "--submitted")
    assert result.code == 1
    assert result.err_lines == ["error: Mark 1 run as submitted: this needs confirmation; pass --yes"]
    assert with_unknown.store.read() == before


def test_resolve_submitted_keeps_the_entry_without_the_block(with_unknown: Repo) -> None:
    unknown = with_unknown.state()["entries"]["shop/daily-us"]["unknown"]
    result = with_unknown.cli("state", "resolve", "shop/daily-us", "--submitted", "--yes")
    assert (result.code, result.out_lines) == (0, ["Resolved 1 run as submitted."])
    entry = with_unknown.state()["entries"]["shop/daily-us"]
    assert (entry["unknown"], entry["run_id"], entry["submitted_at"]) == (None, None, unknown["since"])
    assert with_unknown.state()["serial"] == 2
    assert with_unknown.cli("plan", "--select", "daily-us").out_lines == ["No changes. 1 run up to date."]


def test_resolve_only_matches_unknown_entries(with_unknown: Repo) -> None:
    result = with_unknown.cli("state", "resolve", "hourly", "--not-submitted", "--yes")
    assert result.code == 1
    assert result.err_lines == [
        "error: selector (of runs with an unknown outcome) 'hourly' matches no run or state entry: "
        "check the key (PROJECT/NAME) or label"
    ]
    usage = with_unknown.cli("state", "resolve", "daily-us", "--not-submitted", "--run-id", "ru_x", "--yes")
    assert (usage.code, usage.err_lines) == (1, ["error: --run-id goes with --submitted"])


def test_unlock_without_a_lock(applied: Repo) -> None:
    result = applied.cli("state", "unlock")
    assert (result.code, result.out_lines) == (0, ["The state was not locked."])


def test_unlock_removes_a_lock_left_by_a_dead_holder(applied: Repo) -> None:
    holder = {"pid": 999999, "host": "ci-runner-7", "since": "2026-11-01T10:00:00Z", "command": "intuned-runs apply"}
    applied.store.leave_stale_lock(holder)
    result = applied.cli("state", "unlock")
    assert result.code == 0
    assert result.out_lines == [
        "Removed the lock held by pid 999999 on host ci-runner-7 since 2026-11-01T10:00:00Z (intuned-runs apply)."
    ]
    assert not applied.store.lock_exists()


def test_unlock_refuses_while_a_live_process_holds_the_lock(applied: Repo) -> None:
    with applied.store.lock("intuned-runs apply"):
        result = applied.cli("state", "unlock")
        assert result.code == 1
        [line] = result.err_lines
        assert line.startswith(f"error: state is locked by pid {os.getpid()} on host {socket.gethostname()} since ")
        assert line.endswith(
            "(intuned-runs apply), a running process: stop it (the lock is freed when it exits) instead of unlocking"
        )


def test_state_edits_wait_for_the_lock(applied: Repo) -> None:
    before = applied.store.read()
    with applied.store.lock("intuned-runs apply"):
        for argv in (["forget", "hourly", "--yes"], ["mv", "shop/hourly", "shop/h2"]):
            result = applied.cli("state", *argv)
            assert result.code == 1
            [line] = result.err_lines
            assert line.startswith(f"error: state is locked by pid {os.getpid()} on host {socket.gethostname()} since ")
            assert line.endswith(f"(intuned-runs apply){applied.store.lock_advice}")
    assert applied.store.read() == before


# -- a state that cannot be trusted ------------------------------------------------------------------

GOOD = {
    "version": 1,
    "lineage": "5d0c7a4e-1f2b-4c3d-9e8f-7a6b5c4d3e2f",
    "serial": 3,
    "workspace_id": WS,
    "fingerprint_version": 1,
    "schema_version": "0.0.2",
    "entries": {},
}
RESTORE = "restore it from git or your CI artifacts; refusing to treat it as empty"
BROKEN = [
    ("truncated", json.dumps(GOOD, indent=2)[:60], f"is not valid JSON (line 3): {RESTORE}"),
    ("empty", "", f"is empty: {RESTORE}"),
    ("not-an-object", "[]\n", f"holds an array, not a JSON object: {RESTORE}"),
    ("no-version", json.dumps({k: v for k, v in GOOD.items() if k != "version"}), f"has no 'version': {RESTORE}"),
    (
        "newer-version",
        json.dumps({**GOOD, "version": 2}),
        "has version 2, written by a newer intuned-runs (this one reads version 1): upgrade intuned-runs",
    ),
    ("wrong-type", json.dumps({**GOOD, "serial": "3"}), f"has a string for 'serial', expected an integer: {RESTORE}"),
]
COMMANDS = [
    ["plan"],
    ["apply", "--yes", "REMOTE"],
    ["state", "list"],
    ["state", "show", "shop/daily-us"],
    ["state", "forget", "daily-us", "--yes"],
    ["state", "mv", "shop/daily-us", "shop/x"],
    ["state", "resolve", "daily-us", "--submitted", "--yes"],
    ["status", "REMOTE"],
]


def shown_first(repo: Repo, argv: list[str]) -> list[str]:
    """plan and apply name what they plan against before reading the state (docs/plan.md, Text output)."""
    state = repo.store.display
    return {"plan": [context(state=state)], "apply": [context(WS, state=state)]}.get(argv[0], [])


@pytest.mark.parametrize(("content", "problem"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_every_command_refuses_a_state_it_cannot_trust(
    user_repo: Repo, emulator: Emulator, content: str, problem: str
) -> None:
    user_repo.standard()
    user_repo.store.write_bytes(content.encode("utf-8"))
    for argv in COMMANDS:
        expanded = [a for arg in argv for a in (remote(emulator) if arg == "REMOTE" else [arg])]
        result = user_repo.cli(*expanded)
        assert result.code == 1, argv
        assert result.err_lines == [
            *shown_first(user_repo, argv),
            f"error: state file {user_repo.store.display} {problem}",
        ], argv
        assert "✓" not in result.out
    assert emulator.received == []
    assert user_repo.store.read() == content.encode("utf-8")
    assert user_repo.store.journal() is None


def test_every_command_refuses_a_journal_of_another_state(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    user_repo.write_state(GOOD)
    other = "0f0f0f0f-1111-4222-8333-444455556666"
    journal = json.dumps({"type": "header", "lineage": other, "base_serial": 3}) + "\n"
    user_repo.store.write_journal(journal.encode("utf-8"))
    message = (
        f"error: journal {user_repo.store.journal_display} belongs to another state (lineage {other}, while "
        f"{user_repo.store.display} has lineage {GOOD['lineage']}): restore the state file it belongs to, or "
        "remove the journal if you are sure it is stale"
    )
    for argv in COMMANDS:
        expanded = [a for arg in argv for a in (remote(emulator) if arg == "REMOTE" else [arg])]
        result = user_repo.cli(*expanded)
        assert (result.code, result.err_lines) == (1, [*shown_first(user_repo, argv), message]), argv
    assert emulator.received == []
    assert same_journal(user_repo.store.journal(), journal)


def test_a_torn_last_journal_line_is_ignored_and_an_intent_without_outcome_is_unknown(user_repo: Repo) -> None:
    """What a crash leaves: an intent fsync'ed, then half a line. Readers replay it without writing."""
    user_repo.write("runs.d/shop.yaml", "runs:\n  - {name: a, project: shop, request: {api: x, parameters: {}}}\n")
    user_repo.write_state(GOOD)
    intent = {
        "type": "intent",
        "key": "shop/a",
        "fingerprint": "sha256:" + "1" * 64,
        "request": {"api": "x", "parameters": {}},
        "at": "2026-11-28T10:00:00Z",
    }
    header = {"type": "header", "lineage": GOOD["lineage"], "base_serial": 3}
    text = json.dumps(header) + "\n" + json.dumps(intent) + '\n{"type": "submitted", "key": "sh'
    user_repo.store.write_journal(text.encode("utf-8"))
    result = user_repo.cli("plan")
    assert result.code == 0
    assert result.out_lines[0] == "? shop/a  unknown  runs.d/shop.yaml:2"
    assert "(interrupted before the outcome was recorded)" in result.err
    assert same_journal(user_repo.store.journal(), text)
    listed = user_repo.cli("state", "list")
    assert listed.out_lines == [
        "shop/a  unknown since 2026-11-28T10:00:00Z (interrupted before the outcome was recorded)"
    ]
