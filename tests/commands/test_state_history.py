"""Each entry's history end to end (docs/state.md, History): what apply records, what `--wait` and `status`
update without a serial change, what tombstones and `moved:` keep, how `state show` prints it, and a state
file written before history existed."""

from __future__ import annotations

import json
from typing import Any

from intuned_runs.emulator.server import Emulator
from tests.helpers import BODY_DAILY_US, Repo, remote, state_document, state_entry


def history(repo: Repo, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = repo.state()["entries"][key]["history"]
    return items


def test_an_always_run_keeps_its_earlier_run_ids_newest_first(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    run_ids = []
    for _ in range(3):
        assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
        run_ids.append(user_repo.state()["entries"]["shop/hourly"]["run_id"])
    entry = user_repo.state()["entries"]["shop/hourly"]
    assert len(set(run_ids)) == 3
    assert [item["run_id"] for item in entry["history"]] == run_ids[::-1]
    assert entry["history"][0] == {
        "run_id": entry["run_id"],
        "submitted_at": entry["submitted_at"],
        "fingerprint": entry["fingerprint"],
        "status": "pending",
    }
    # An on-change run was submitted once: one item.
    assert [item["run_id"] for item in history(user_repo, "shop/daily-us")] == [
        user_repo.state()["entries"]["shop/daily-us"]["run_id"]
    ]
    # Written in the file as every other field: indent 2, keys sorted.
    text = user_repo.state_path.read_text(encoding="utf-8")
    assert text == json.dumps(user_repo.state(), indent=2, sort_keys=True) + "\n"
    assert '"history": [\n        {\n          "fingerprint": "sha256:' in text


def test_an_apply_keeps_only_the_last_ten_submissions(user_repo: Repo, emulator: Emulator) -> None:
    run = "{name: a, project: shop, trigger: always, request: {api: x, parameters: {}}}"
    user_repo.write("runs.d/shop.yaml", f"runs:\n  - {run}\n")
    seen = []
    for _ in range(11):
        assert user_repo.cli("apply", "--yes", "-q", *remote(emulator)).code == 0
        seen.append(user_repo.state()["entries"]["shop/a"]["run_id"])
    assert [item["run_id"] for item in history(user_repo, "shop/a")] == seen[::-1][:10]


def test_wait_and_status_update_the_history_item_without_changing_the_serial(
    user_repo: Repo, emulator: Emulator
) -> None:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    first = user_repo.state()
    assert user_repo.cli("apply", "--yes", "--wait", "--select", "hourly", *remote(emulator)).code == 0
    after_wait = user_repo.state()
    assert after_wait["serial"] == first["serial"] + 1  # the submission, not the statuses
    hourly = after_wait["entries"]["shop/hourly"]
    assert hourly["status"] == "completed"
    assert [(i["run_id"], i["status"]) for i in hourly["history"]] == [
        (hourly["run_id"], "completed"),
        (first["entries"]["shop/hourly"]["run_id"], "pending"),  # an earlier run: not what --wait learnt
    ]
    assert user_repo.cli("status", "daily-us", *remote(emulator)).code == 0
    after_status = user_repo.state()
    assert after_status["serial"] == after_wait["serial"]
    assert [i["status"] for i in history(user_repo, "shop/daily-us")] == ["completed"]


def test_state_show_prints_the_history(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    for _ in range(2):
        assert user_repo.cli("apply", "--yes", "--select", "hourly", *remote(emulator)).code == 0
    entry = user_repo.state()["entries"]["shop/hourly"]
    newer, older = entry["history"]
    result = user_repo.cli("state", "show", "shop/hourly")
    assert result.code == 0
    at = result.out_lines.index("  history:")
    assert result.out_lines[at : at + 4] == [
        "  history:",
        f"    {newer['submitted_at']}  {newer['run_id']}  pending  {entry['fingerprint']}",
        f"    {older['submitted_at']}  {older['run_id']}  pending  {entry['fingerprint']}",
        "  request:",
    ]
    document = user_repo.cli("state", "show", "shop/hourly", "--json").json()
    assert document["history"] == entry["history"]
    assert [item["run_id"] for item in document["history"]] == [entry["run_id"], older["run_id"]]


def test_tombstones_and_moved_keep_the_history(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    before = user_repo.state()["entries"]
    # Renamed with moved: the entry goes to the new key, history and all, and nothing re-runs.
    user_repo.edit("runs.d/shop.yaml", "name: daily-us", "name: us-daily")
    user_repo.edit("runs.d/shop.yaml", "runs:", "moved:\n  - {from: shop/daily-us, to: shop/us-daily}\nruns:")
    assert user_repo.cli("apply", "--yes", "--exclude", "hourly", *remote(emulator)).code == 0
    assert history(user_repo, "shop/us-daily") == before["shop/daily-us"]["history"]
    assert "shop/daily-us" not in user_repo.state()["entries"]
    # Removed from the files: the tombstone keeps it.
    user_repo.write("runs.d/ops.yaml", "runs: []\n")
    assert user_repo.cli("apply", "--yes", "--exclude", "hourly", *remote(emulator)).code == 0
    orders = user_repo.state()["entries"]["portal/orders"]
    assert orders["removed_at"] is not None
    assert orders["history"] == before["portal/orders"]["history"]
    listed = user_repo.cli("state", "list", "--all", "--json").json()["entries"]
    assert [e["history"] for e in listed if e["key"] == "portal/orders"] == [before["portal/orders"]["history"]]


def test_a_state_written_before_history_existed_reads_as_empty_histories(repo: Repo) -> None:
    repo.write("runs.d/shop.yaml", "runs:\n  - {name: daily-us, project: shop, request: {api: x, parameters: {}}}\n")
    old = state_entry(BODY_DAILY_US, "sha256:" + "0" * 64)
    assert "history" not in old
    repo.write_state(state_document({"shop/daily-us": old}))
    shown = repo.cli("state", "show", "shop/daily-us")
    assert shown.code == 0
    assert "  history: []" in shown.out_lines
    assert repo.cli("state", "show", "shop/daily-us", "--json").json()["history"] == []
    plan = repo.cli("plan")
    assert (plan.code, plan.out_lines[0]) == (0, "~ shop/daily-us  changed  runs.d/shop.yaml:2")
    assert "history" not in repo.state()["entries"]["shop/daily-us"]  # reading never writes
