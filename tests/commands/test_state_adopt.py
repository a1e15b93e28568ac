"""`intuned-runs state adopt SEL… [--run-id ID]` end to end (docs/state.md, adopt): the current definitions
recorded as submitted, nothing sent, the next plan unchanged, `status` fetching an adopted run ID; the
confirmation, the refusals, and secrets kept out of the state."""

from __future__ import annotations

import httpx
import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import (
    API_KEY,
    BODY_DAILY_US,
    SECRETS,
    WS,
    Repo,
    cli_command,
    remote,
    run_in_terminal,
    standard_env,
)


@pytest.fixture
def standard(user_repo: Repo) -> Repo:
    return user_repo.standard()


def test_adopt_records_the_current_definitions_as_submitted_and_sends_nothing(
    standard: Repo, emulator: Emulator
) -> None:
    planned = {r["key"]: r for r in standard.cli("plan", "--json").json()["runs"]}
    result = standard.cli("state", "adopt", "daily-us", "portal/*", "--yes", *remote(emulator))
    assert (result.code, result.out_lines) == (0, ["Adopted 2 runs."])
    assert result.err_lines == ["+ portal/orders", "+ shop/daily-us"]
    assert emulator.received == []

    state = standard.state()
    assert state["serial"] == 1
    assert sorted(state["entries"]) == ["portal/orders", "shop/daily-us"]
    for key, entry in state["entries"].items():
        assert entry["fingerprint"] == planned[key]["fingerprint"]
        assert entry["request"] == planned[key]["request"]  # redacted, as plan shows it
        assert (entry["run_id"], entry["status"], entry["unknown"], entry["removed_at"]) == (None, None, None, None)
        assert entry["history"] == [
            {
                "run_id": None,
                "submitted_at": entry["submitted_at"],
                "fingerprint": entry["fingerprint"],
                "status": None,
                "adopted": True,
            }
        ]
    assert state["entries"]["shop/daily-us"]["request"] == BODY_DAILY_US
    assert state["entries"]["portal/orders"]["request"]["proxy"] == "(secret:PROXY_URL)"
    text = standard.state_path.read_text(encoding="utf-8")
    assert not any(value in text for value in SECRETS.values())

    # The next plan: the adopted runs are up to date; the others are still new.
    plan = standard.cli("plan", "--json").json()
    assert {r["key"]: (r["action"], r["reason"]) for r in plan["runs"]} == {
        "portal/orders": ("unchanged", "up-to-date"),
        "shop/daily-us": ("unchanged", "up-to-date"),
        "shop/hourly": ("submit", "new"),
        "shop/backfill": ("unchanged", "manual"),
    }
    shown = standard.cli("state", "show", "shop/daily-us")
    daily = state["entries"]["shop/daily-us"]
    assert f"    {daily['submitted_at']}  -  -  {daily['fingerprint']}  adopted" in shown.out_lines


def test_adopt_with_a_run_id_is_fetched_by_status(standard: Repo, emulator: Emulator) -> None:
    # A run started by hand, outside intuned-runs.
    response = httpx.post(
        f"{emulator.url}/{WS}/projects/shop/run/start", json=BODY_DAILY_US, headers={"x-api-key": API_KEY}
    )
    run_id = response.json()["runId"]
    result = standard.cli("state", "adopt", "shop/daily-us", "--run-id", run_id, "--yes")
    assert (result.code, result.out_lines, result.err_lines) == (0, ["Adopted 1 run."], [f"+ shop/daily-us  {run_id}"])
    entry = standard.state()["entries"]["shop/daily-us"]
    assert entry["run_id"] == run_id
    assert entry["history"][0]["run_id"] == run_id and entry["history"][0]["adopted"] is True

    status = standard.cli("status", "--json", *remote(emulator))
    assert status.code == 0
    [run] = status.json()["runs"]
    assert (run["key"], run["run_id"], run["status"]) == ("shop/daily-us", run_id, "completed")
    after = standard.state()
    assert after["serial"] == 1  # a status never changes the serial
    assert after["entries"]["shop/daily-us"]["history"][0]["status"] == "completed"
    assert standard.cli("plan", "--select", "daily-us").out_lines == ["No changes. 1 run up to date."]
    assert len(emulator.received) == 1  # only the run started by hand


def test_adopt_keeps_the_history_of_an_entry_it_replaces(standard: Repo, emulator: Emulator) -> None:
    assert standard.cli("apply", "--yes", "--select", "daily-us", *remote(emulator)).code == 0
    submitted = standard.state()["entries"]["shop/daily-us"]
    standard.edit("runs.d/shop.yaml", "region: us", "region: ca")
    assert standard.cli("state", "adopt", "daily-us", "--yes").code == 0
    entry = standard.state()["entries"]["shop/daily-us"]
    assert entry["request"]["parameters"]["region"] == "ca"
    assert [(i["run_id"], i.get("adopted", False)) for i in entry["history"]] == [
        (None, True),
        (submitted["run_id"], False),
    ]
    assert standard.cli("plan", "--select", "daily-us").out_lines == ["No changes. 1 run up to date."]


def test_adopt_needs_yes_without_a_tty(standard: Repo) -> None:
    result = standard.cli("state", "adopt", "shop/*")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == [
        "+ shop/backfill",
        "+ shop/daily-us",
        "+ shop/hourly",
        "error: Adopt 3 runs as submitted: this needs confirmation; pass --yes",
    ]
    assert not standard.state_path.exists()


def test_on_a_terminal_adopt_asks(standard: Repo) -> None:
    argv = [*cli_command(), "-C", str(standard.root), "state", "adopt", "daily-us"]
    code, shown = run_in_terminal(argv, "n", standard_env())
    assert code == 1
    assert "Adopt 1 run as submitted? [y/N] n\nNothing adopted.\n" in shown
    assert not standard.state_path.exists()
    code, shown = run_in_terminal(argv, "y", standard_env())
    assert code == 0, shown
    assert "Adopt 1 run as submitted? [y/N] y\nAdopted 1 run.\n" in shown
    assert list(standard.state()["entries"]) == ["shop/daily-us"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["shop/*", "--run-id", "ru_x"],
            "error: --run-id names one run, but 'shop/*' matches 3 runs: select one key",
        ),
        (
            ["daily-us", "orders", "--run-id", "ru_x"],
            "error: --run-id names one run, but 'daily-us' 'orders' match 2 runs: select one key",
        ),
        (["daly-us"], "error: selector 'daly-us' matches no run or state entry: did you mean 'shop/daily-us'?"),
        (
            ["label:team=pricng"],
            "error: selector 'label:team=pricng' matches no run or state entry: did you mean 'label:team=pricing'?",
        ),
    ],
    ids=["run-id-with-three", "run-id-with-two-selectors", "did-you-mean", "label-did-you-mean"],
)
def test_adopt_refusals_write_nothing(standard: Repo, argv: list[str], message: str) -> None:
    result = standard.cli("state", "adopt", *argv, "--yes")
    assert (result.code, result.out, result.err_lines) == (1, "", [message])
    assert not standard.state_path.exists()


def test_adopt_matches_defined_runs_only_and_selects_by_label(standard: Repo, emulator: Emulator) -> None:
    assert standard.cli("apply", "--yes", "--select", "orders", *remote(emulator)).code == 0
    standard.write("runs.d/ops.yaml", "runs: []\n")  # portal/orders: in state, no longer defined
    before = standard.state_path.read_bytes()
    result = standard.cli("state", "adopt", "portal/orders", "--yes")
    assert (result.code, result.err_lines) == (
        1,
        ["error: selector 'portal/orders' matches no run or state entry: check the key (PROJECT/NAME) or label"],
    )
    assert standard.state_path.read_bytes() == before
    labelled = standard.cli("state", "adopt", "label:team=pricing", "--yes")
    assert (labelled.code, labelled.out_lines) == (0, ["Adopted 3 runs."])


def test_adopt_refuses_a_selected_run_that_does_not_validate(standard: Repo) -> None:
    standard.edit("runs.d/shop.yaml", "api: products/list\n      parameters: {region: us, limit: 100}", "api: 5")
    result = standard.cli("state", "adopt", "daily-us", "--yes")
    assert result.code == 1
    assert result.out == ""
    assert [line.split(": error: ")[0] for line in result.err_lines] == [
        "runs.d/shop.yaml:7:7",
        "runs.d/shop.yaml:7:12",
    ]
    assert not standard.state_path.exists()
    # A broken run outside the selection does not stop adopting another one (docs/plan.md, Selection).
    assert standard.cli("state", "adopt", "orders", "--yes").out_lines == ["Adopted 1 run."]
