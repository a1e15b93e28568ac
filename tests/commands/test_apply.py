"""`intuned-runs apply` end to end against the emulator on 127.0.0.1 (docs/apply.md): what is sent, what is
not, the guards, each outcome class, unknown outcomes and their resolution, --wait and status."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from intuned_runs.api import client as api
from intuned_runs.emulator.server import Emulator
from tests.helpers import (
    API_KEY,
    BODY_BACKFILL,
    BODY_DAILY_US,
    BODY_HOURLY,
    BODY_ORDERS,
    OTHER_WS,
    SECRETS,
    WS,
    CliResult,
    Repo,
    bodies,
    cli_command,
    free_port,
    remote,
    run_in_terminal,
    sort_bodies,
    standard_env,
)

CONFIRM = (
    "error: apply needs confirmation: run it in a terminal, pass --yes, or apply a saved plan "
    "(intuned-runs plan --out FILE; intuned-runs apply FILE)"
)
ONE_RUN = "runs:\n  - {name: daily-us, project: shop, request: {api: products/list, parameters: {region: us}}}\n"
ONE_BODY = {"api": "products/list", "parameters": {"region": "us"}}


@pytest.fixture
def user_repo(user_repo: Repo, state_backend: Callable[[Repo], Repo]) -> Repo:
    """Every test here runs against each backend (tests/state_backends.py)."""
    return state_backend(user_repo)


def outcome_lines(result: CliResult) -> list[str]:
    """The per-run lines of an apply (they come in completion order, so sorted here)."""
    return sorted(line for line in result.out_lines if line[:2] in ("✓ ", "✗ ", "? ", "- ") and "  " in line[2:])


def plan_part(result: CliResult) -> list[str]:
    """What apply printed before the outcomes: the plan, ending with its summary line."""
    lines = result.out_lines
    end = next(i for i, line in enumerate(lines) if line.startswith(("Plan: ", "No changes.")))
    return lines[: end + 1]


def submitted_lines(repo: Repo, *keys: str) -> list[str]:
    entries = repo.state()["entries"]
    return sorted(f"✓ {key}  {entries[key]['run_id']}" for key in keys)


def summary(
    submitted: int = 0, failed: int = 0, unknown: int = 0, skipped: int = 0, forgotten: int = 0, blocked: int = 0
) -> str:
    return (
        f"Apply: {submitted} submitted, {failed} failed, {unknown} unknown, {skipped} skipped, "
        f"{forgotten} forgotten, {blocked} blocked."
    )


# -- what is sent --------------------------------------------------------------------------------------


def test_first_apply_sends_every_body_exactly_as_rendered(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    result = user_repo.cli("apply", "--yes", *remote(emulator))
    assert result.code == 0, result.err
    assert plan_part(result) == [
        "+ portal/orders  new  runs.d/ops.yaml:2",
        "+ shop/daily-us  new  runs.d/shop.yaml:5",
        "+ shop/hourly  new  runs.d/shop.yaml:9",
        "",
        "Plan: 3 to submit (3 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 manual, 0 to forget, 0 blocked.",
    ]
    assert outcome_lines(result) == submitted_lines(user_repo, "portal/orders", "shop/daily-us", "shop/hourly")
    assert result.out_lines[-1] == summary(submitted=3)
    assert result.err_lines == [user_repo.context(WS)]
    # As rendered, with the real secret values, nothing added and nothing dropped.
    assert sort_bodies(bodies(emulator)) == sort_bodies(
        [("portal", BODY_ORDERS), ("shop", BODY_DAILY_US), ("shop", BODY_HOURLY)]
    )
    for received in emulator.received:
        assert received.workspace_id == WS
        assert received.headers["x-api-key"] == API_KEY
        assert received.headers["user-agent"] == "intuned-runs/0.1.0"
        assert received.headers["content-type"] == "application/json"
    state = user_repo.state()
    assert (state["serial"], state["workspace_id"]) == (1, WS)
    assert state["entries"]["shop/hourly"]["request"]["sink"]["headers"] == {
        "Authorization": "Bearer (secret:HOOK_TOKEN)"
    }
    assert state["entries"]["portal/orders"]["request"]["proxy"] == "(secret:PROXY_URL)"
    assert {e["status"] for e in state["entries"].values()} == {"pending"}


def test_a_second_apply_sends_only_always_runs_then_edits(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    del emulator.received[:]

    second = user_repo.cli("apply", "--yes", *remote(emulator))
    assert second.code == 0
    assert plan_part(second) == [
        "* shop/hourly  always  runs.d/shop.yaml:9",
        "",
        "Plan: 1 to submit (0 new, 0 changed, 0 requested, 1 always), 2 unchanged, 1 manual, 0 to forget, 0 blocked.",
    ]
    assert bodies(emulator) == [("shop", BODY_HOURLY)]

    del emulator.received[:]
    user_repo.edit("runs.d/shop.yaml", "limit: 100", "limit: 250")
    third = user_repo.cli("apply", "--yes", *remote(emulator))
    assert third.code == 0
    assert plan_part(third) == [
        "~ shop/daily-us  changed  runs.d/shop.yaml:5",
        "    request.parameters.limit: 100 → 250",
        "* shop/hourly  always  runs.d/shop.yaml:9",
        "",
        "Plan: 2 to submit (0 new, 1 changed, 0 requested, 1 always), 1 unchanged, 1 manual, 0 to forget, 0 blocked.",
    ]
    assert sort_bodies(bodies(emulator)) == sort_bodies(
        [("shop", {"api": "products/list", "parameters": {"region": "us", "limit": 250}}), ("shop", BODY_HOURLY)]
    )
    assert user_repo.state()["serial"] == 3


def test_nothing_to_submit(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    result = user_repo.cli("apply", *remote(emulator))  # no --yes needed when there is nothing to do
    assert (result.code, result.out_lines, result.err_lines) == (
        0,
        ["No changes. 1 run up to date."],
        [user_repo.context(WS)],
    )
    result = user_repo.cli("apply", "--yes", "--detailed-exitcode", *remote(emulator))
    assert result.code == 0
    assert len(emulator.received) == 1


def test_run_forces_an_up_to_date_run_and_a_manual_one(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    del emulator.received[:]
    result = user_repo.cli("apply", "--yes", "--run", "daily-us", "--run", "shop/backfill", *remote(emulator))
    assert result.code == 0
    assert plan_part(result) == [
        "! shop/backfill  requested  runs.d/shop.yaml:18",
        "! shop/daily-us  requested  runs.d/shop.yaml:5",
        "",
        "Plan: 2 to submit (0 new, 0 changed, 2 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]
    assert sort_bodies(bodies(emulator)) == sort_bodies([("shop", BODY_BACKFILL), ("shop", BODY_DAILY_US)])


def test_detailed_exitcode_is_2_after_submissions(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    result = user_repo.cli("apply", "--yes", "--detailed-exitcode", *remote(emulator))
    assert result.code == 2
    assert result.out_lines[-1] == summary(submitted=1)


def test_json_output(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    result = user_repo.cli("apply", "--yes", "--json", *remote(emulator))
    assert result.code == 0
    run_id = user_repo.state()["entries"]["shop/daily-us"]["run_id"]
    assert result.json() == {
        "format_version": 1,
        "summary": {"submitted": 1, "failed": 0, "unknown": 0, "skipped": 0, "forgotten": 0, "blocked": 0},
        "runs": [
            {"key": "shop/daily-us", "outcome": "submitted", "run_id": run_id, "status": "pending", "error": None}
        ],
        "forgotten": [],
    }


def test_a_removed_run_is_forgotten_and_kept_as_a_tombstone(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    ops = (user_repo.root / "runs.d/ops.yaml").read_text()
    user_repo.write("runs.d/ops.yaml", "")
    sent = len(emulator.received)
    result = user_repo.cli("apply", "--yes", "--detailed-exitcode", "--select", "portal/*", *remote(emulator))
    assert result.code == 2, result.err
    assert result.out_lines == [
        "- portal/orders  removed",
        "",
        "Plan: 0 to submit (0 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 to forget, 0 blocked.",
        "- portal/orders  forgotten (kept as a tombstone)",
        summary(forgotten=1),
    ]
    assert len(emulator.received) == sent  # runs cannot be deleted: nothing is sent
    entry = user_repo.state()["entries"]["portal/orders"]
    assert entry["removed_at"] is not None
    assert [line.split("  ")[0] for line in user_repo.cli("state", "list").out_lines] == [
        "shop/daily-us",
        "shop/hourly",
    ]
    assert user_repo.cli("state", "list", "--all").out_lines[0] == f"portal/orders  removed {entry['removed_at']}"
    user_repo.write("runs.d/ops.yaml", ops)  # re-adding the identical run: unchanged, not new
    assert user_repo.cli("plan", "--select", "portal/*").out_lines == ["No changes. 1 run up to date."]


def test_a_rename_with_moved_does_not_rerun(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN.replace("daily-us", "us-daily"))
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    user_repo.write("runs.d/shop.yaml", "moved:\n  - {from: shop/us-daily, to: shop/daily-us}\n" + ONE_RUN)
    result = user_repo.cli("apply", "--yes", *remote(emulator))
    assert result.code == 0, result.err
    assert result.out_lines == [
        "  shop/daily-us  up-to-date  runs.d/shop.yaml:4  → moved from shop/us-daily",
        "",
        "No changes. 1 run up to date.",
        "→ shop/daily-us  moved from shop/us-daily",
        summary(),
    ]
    assert sorted(user_repo.state()["entries"]) == ["shop/daily-us"]
    assert user_repo.cli("plan").out_lines == ["No changes. 1 run up to date."]
    assert len(emulator.received) == 1


# -- confirmation and guards: nothing is sent ---------------------------------------------------------


def test_without_a_tty_apply_refuses_without_yes(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    for argv in (["apply"], ["apply", "--json"]):
        result = user_repo.cli(*argv, *remote(emulator))
        assert result.code == 1
        assert result.err_lines == [user_repo.context(WS), CONFIRM]
        assert "Submit" not in result.err
    assert emulator.received == []
    assert user_repo.store.journal() is None


def test_on_a_terminal_apply_shows_the_plan_and_asks(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    argv = [*cli_command(), "-C", str(user_repo.root), "apply", *remote(emulator)]
    code, shown = run_in_terminal(argv, "n", standard_env())
    assert code == 1
    # On a terminal the symbols and keys are coloured (docs/plan.md, Colour): + green.
    assert "\x1b[32m+ shop/daily-us\x1b[0m  new  runs.d/shop.yaml:5\n" in shown
    assert "Submit 3 runs? [y/N] n\nApply cancelled: nothing was submitted.\n" in shown
    assert emulator.received == []
    assert user_repo.store.read() is None or user_repo.state()["entries"] == {}

    # A person at a terminal is the check max_submit stands in for: it does not apply there.
    code, shown = run_in_terminal([*argv, "--max-submit", "1"], "y", standard_env())
    assert code == 0, shown
    assert "Submit 3 runs? [y/N] y\n" in shown
    assert "Apply: 3 submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked." in shown
    assert len(emulator.received) == 3


@pytest.fixture
def guarded(user_repo: Repo, emulator: Emulator) -> Iterator[tuple[Repo, Emulator]]:
    user_repo.standard()
    yield user_repo, emulator
    assert emulator.received == []  # every guard refuses before anything is sent


def test_guard_validation_error(guarded: tuple[Repo, Emulator]) -> None:
    repo, emu = guarded
    repo.write(
        "runs.d/broken.yaml", "runs:\n  - {name: x, project: shop, request: {api: x, parameters: {}, saveTrace: 1}}\n"
    )
    result = repo.cli("apply", "--yes", *remote(emu))
    assert result.code == 1
    assert result.out == ""
    [shown, line] = result.err_lines
    assert shown == repo.context(WS)
    assert re.fullmatch(r"runs\.d/broken\.yaml:2:\d+: error: request\.saveTrace: .*boolean.*", line), line


def test_guard_missing_secrets_are_named_at_once(guarded: tuple[Repo, Emulator], env: pytest.MonkeyPatch) -> None:
    repo, emu = guarded
    for name in SECRETS:
        env.delenv(name)
    result = repo.cli("apply", "--yes", *remote(emu))
    assert result.code == 1
    assert result.err_lines == [
        repo.context(WS),
        "error: secrets not set: HOOK_TOKEN, PROXY_URL (needed by runs to submit): export them and retry",
    ]


def test_guard_an_empty_secret_is_missing(guarded: tuple[Repo, Emulator], env: pytest.MonkeyPatch) -> None:
    repo, emu = guarded
    env.setenv("PROXY_URL", "")
    result = repo.cli("apply", "--yes", *remote(emu))
    assert result.code == 1
    assert result.err_lines == [
        repo.context(WS),
        "error: secrets not set: PROXY_URL (needed by runs to submit): export them and retry",
    ]


def test_a_secret_only_needed_by_runs_not_submitted_is_not_needed(
    user_repo: Repo, emulator: Emulator, env: pytest.MonkeyPatch
) -> None:
    user_repo.standard()
    env.delenv("HOOK_TOKEN")
    result = user_repo.cli("apply", "--yes", "--select", "daily-us", "--select", "orders", *remote(emulator))
    assert result.code == 0, result.err
    assert sort_bodies(bodies(emulator)) == sort_bodies([("portal", BODY_ORDERS), ("shop", BODY_DAILY_US)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--base-url", "URL"],
            "error: workspace_id is not set: use the config, INTUNED_WORKSPACE_ID or --workspace-id",
        ),
        (
            ["--base-url", "URL", "--workspace-id", "not-a-uuid"],
            "<flag --workspace-id>: error: 'not-a-uuid' is not a UUID (find the workspace ID in Intuned's settings)",
        ),
        (
            ["--base-url", "http://api.example.com/api/v1/workspace", "--workspace-id", WS],
            "error: base_url must use https unless its host is loopback",
        ),
        (
            ["--base-url", "URL", "--workspace-id", WS, "--max-submit", "2"],
            "error: the plan submits 3 runs, more than max_submit 2: check the state is the right one, "
            "then pass --max-submit 3 (or set max_submit in the config)",
        ),
    ],
    ids=["no-workspace", "workspace-not-uuid", "http-not-loopback", "max-submit"],
)
def test_guards(guarded: tuple[Repo, Emulator], argv: list[str], message: str) -> None:
    repo, emu = guarded
    result = repo.cli("apply", "--yes", *[emu.url if a == "URL" else a for a in argv])
    assert result.code == 1
    assert result.err_lines == [repo.context(WS if WS in argv else None), message]
    assert outcome_lines(result) == []
    assert "Apply:" not in result.out


def test_guard_max_submit_from_the_config(guarded: tuple[Repo, Emulator]) -> None:
    repo, emu = guarded
    repo.write("intuned-runs.yaml", "max_submit: 1\n")
    result = repo.cli("apply", "--yes", *remote(emu))
    assert result.code == 1
    assert result.err_lines == [
        repo.context(WS),
        "error: the plan submits 3 runs, more than max_submit 1: check the state is the right one, "
        "then pass --max-submit 3 (or set max_submit in the config)",
    ]


def test_guard_no_api_key(guarded: tuple[Repo, Emulator], env: pytest.MonkeyPatch) -> None:
    repo, emu = guarded
    env.delenv("INTUNED_API_KEY")
    result = repo.cli("apply", "--yes", *remote(emu))
    assert result.code == 1
    assert result.err_lines == [
        repo.context(WS),
        "error: INTUNED_API_KEY is not set: export the workspace's API key (it is never read from a file)",
    ]


def test_guard_state_of_another_workspace(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    user_repo.edit("runs.d/shop.yaml", "region: us", "region: eu")
    result = user_repo.cli("apply", "--yes", *remote(emulator, OTHER_WS))
    assert result.code == 1
    assert result.err_lines == [
        user_repo.context(OTHER_WS),
        f"error: the state {user_repo.store.display} belongs to workspace {WS}, not {OTHER_WS}: "
        "use the right --env or state file",
    ]
    planned = user_repo.cli("plan", *remote(emulator, OTHER_WS))
    assert planned.code == 0
    assert planned.err_lines == [
        user_repo.context(OTHER_WS),
        f"warning: the state belongs to workspace {WS}, but the workspace is {OTHER_WS}: apply will refuse",
    ]
    assert len(emulator.received) == 1


# -- outcome classes ----------------------------------------------------------------------------------


@pytest.fixture
def one_run(user_repo: Repo) -> Repo:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    return user_repo


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backoff schedule itself is tested in test_api; here only the classification matters."""
    monkeypatch.setattr(api, "BACKOFF_BASE", 0.01)


def test_429_with_retry_after_is_retried_then_submitted(one_run: Repo) -> None:
    with Emulator(complete_after=0, script=[429], retry_after="1") as emu:
        started = time.monotonic()
        result = one_run.cli("apply", "--yes", *remote(emu))
        elapsed = time.monotonic() - started
        statuses = [r.status for r in emu.received]
    assert result.code == 0, result.err
    assert outcome_lines(result) == submitted_lines(one_run, "shop/daily-us")
    assert statuses == [429, 201]
    assert elapsed >= 0.95  # Retry-After: 1 was honoured


def test_503_is_retried(one_run: Repo) -> None:
    with Emulator(complete_after=0, script=[503, 503], retry_after="0") as emu:
        result = one_run.cli("apply", "--yes", *remote(emu))
        statuses = [r.status for r in emu.received]
    assert result.code == 0
    assert outcome_lines(result) == submitted_lines(one_run, "shop/daily-us")
    assert statuses == [503, 503, 201]


def test_503_five_times_fails_and_leaves_the_state_unchanged(one_run: Repo) -> None:
    with Emulator(complete_after=0, script=[503] * 5, retry_after="0") as emu:
        result = one_run.cli("apply", "--yes", *remote(emu))
        assert len(emu.received) == 5
    assert result.code == 1
    assert outcome_lines(result) == ["✗ shop/daily-us  503: Service Unavailable (injected fault)"]
    assert result.out_lines[-1] == summary(failed=1)
    assert one_run.state()["entries"] == {}
    assert one_run.cli("plan").out_lines[0] == "+ shop/daily-us  new  runs.d/shop.yaml:2"


def test_connection_refused_fails_after_retries_and_leaves_the_state_unchanged(
    one_run: Repo, fast_backoff: None
) -> None:
    result = one_run.cli("apply", "--yes", *remote(f"http://127.0.0.1:{free_port()}"))
    assert result.code == 1
    [line] = outcome_lines(result)
    assert line.startswith("✗ shop/daily-us  could not connect: ")
    assert result.out_lines[-1] == summary(failed=1)
    assert one_run.state()["entries"] == {}
    assert one_run.cli("plan").out_lines[0] == "+ shop/daily-us  new  runs.d/shop.yaml:2"


def test_500_is_unknown_and_blocks_the_run(one_run: Repo) -> None:
    with Emulator(complete_after=0, script=[500]) as emu:
        result = one_run.cli("apply", "--yes", *remote(emu))
        again = one_run.cli("apply", "--yes", *remote(emu))
        assert len(emu.received) == 1  # never resubmitted automatically
    assert result.code == 1
    assert outcome_lines(result) == ["? shop/daily-us  unknown: 500: Internal Server Error (injected fault)"]
    assert result.out_lines[-1] == summary(unknown=1)
    entry = one_run.state()["entries"]["shop/daily-us"]
    assert entry["run_id"] is None
    assert entry["unknown"]["reason"] == "500: Internal Server Error (injected fault)"
    blocked = (
        f"blocked: shop/daily-us: outcome unknown since {entry['unknown']['since']} "
        "(500: Internal Server Error (injected fault)); check it in Intuned, then "
        "'intuned-runs state resolve shop/daily-us --submitted|--not-submitted', or plan with --retry-unknown or --run"
    )
    assert again.code == 1  # a blocked run is a failure of apply
    assert again.err_lines == [one_run.context(WS), blocked]
    plan = one_run.cli("plan")
    assert plan.out_lines == [
        "? shop/daily-us  unknown  runs.d/shop.yaml:2",
        "",
        "Plan: 0 to submit (0 new, 0 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 1 blocked.",
    ]
    assert plan.err_lines == [one_run.context(), blocked]


def test_a_blocked_run_stays_blocked_after_an_edit(one_run: Repo) -> None:
    with Emulator(complete_after=0, script=[500]) as emu:
        assert one_run.cli("apply", "--yes", *remote(emu)).code == 1
        one_run.edit("runs.d/shop.yaml", "region: us", "region: eu")
        result = one_run.cli("apply", "--yes", *remote(emu))
        assert len(emu.received) == 1
    assert result.code == 1
    assert result.out_lines == [
        "Plan: 0 to submit (0 new, 0 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 1 blocked."
    ]
    assert [line.split(" since ")[0] for line in result.err_lines] == [
        one_run.context(WS),
        "blocked: shop/daily-us: outcome unknown",
    ]


def test_read_timeout_is_unknown(one_run: Repo) -> None:
    with Emulator(complete_after=0, hang_seconds=3) as emu:
        result = one_run.cli("apply", "--yes", "--read-timeout", "1s", *remote(emu))
    assert result.code == 1
    assert outcome_lines(result) == ["? shop/daily-us  unknown: read timeout"]
    assert one_run.state()["entries"]["shop/daily-us"]["unknown"]["reason"] == "read timeout"
    assert one_run.cli("plan").out_lines[0] == "? shop/daily-us  unknown  runs.d/shop.yaml:2"


def test_400_fails_with_the_server_message_and_is_offered_again(one_run: Repo) -> None:
    with Emulator(complete_after=0, script=[400]) as emu:
        result = one_run.cli("apply", "--yes", "--json", *remote(emu))
        assert len(emu.received) == 1
    assert result.code == 1
    assert result.json()["runs"] == [
        {
            "key": "shop/daily-us",
            "outcome": "failed",
            "run_id": None,
            "status": None,
            "error": {"http_status": 400, "message": "Bad Request (injected fault)"},
        }
    ]
    assert one_run.state()["entries"] == {}
    with Emulator(complete_after=0, script=[400]) as emu:
        text = one_run.cli("apply", "--yes", *remote(emu))
    assert outcome_lines(text) == ["✗ shop/daily-us  400: Bad Request (injected fault)"]
    assert one_run.cli("plan").out_lines[0] == "+ shop/daily-us  new  runs.d/shop.yaml:2"


def test_401_stops_the_remaining_submissions(user_repo: Repo) -> None:
    user_repo.standard()
    with Emulator(complete_after=0, api_key="the-right-key-123") as emu:
        result = user_repo.cli("apply", "--yes", "--concurrency", "1", "--json", *remote(emu))
        assert len(emu.received) == 1
    assert result.code == 1
    document = result.json()
    assert document["summary"] == {
        "submitted": 0,
        "failed": 1,
        "unknown": 0,
        "skipped": 2,
        "forgotten": 0,
        "blocked": 0,
    }
    assert document["runs"] == [
        {
            "key": "portal/orders",
            "outcome": "failed",
            "run_id": None,
            "status": None,
            "error": {"http_status": 401, "message": "Invalid API key"},
        },
        *(
            {
                "key": key,
                "outcome": "skipped",
                "run_id": None,
                "status": None,
                "error": {"http_status": None, "message": "not sent: authentication failed for an earlier run"},
            }
            for key in ("shop/daily-us", "shop/hourly")
        ),
    ]
    assert user_repo.state()["entries"] == {}


def test_401_text_lines(user_repo: Repo) -> None:
    user_repo.standard()
    with Emulator(complete_after=0, api_key="the-right-key-123") as emu:
        result = user_repo.cli("apply", "--yes", "--concurrency", "1", *remote(emu))
    assert outcome_lines(result) == [
        "- shop/daily-us  skipped: not sent: authentication failed for an earlier run",
        "- shop/hourly  skipped: not sent: authentication failed for an earlier run",
        "✗ portal/orders  401: Invalid API key",
    ]
    assert result.out_lines[-1] == summary(failed=1, skipped=2)


# -- unknown outcomes: resolve, retry ------------------------------------------------------------------


@pytest.fixture
def unknown(one_run: Repo) -> Iterator[tuple[Repo, Emulator]]:
    with Emulator(complete_after=0, script=[500]) as emu:
        assert one_run.cli("apply", "--yes", *remote(emu)).code == 1
        yield one_run, emu


def test_resolve_submitted_clears_the_block(unknown: tuple[Repo, Emulator]) -> None:
    repo, emu = unknown
    result = repo.cli("state", "resolve", "shop/daily-us", "--submitted", "--run-id", "ru_seen_in_console", "--yes")
    assert (result.code, result.out_lines) == (0, ["Resolved 1 run as submitted."])
    entry = repo.state()["entries"]["shop/daily-us"]
    assert (entry["unknown"], entry["run_id"]) == (None, "ru_seen_in_console")
    plan = repo.cli("plan")
    assert (plan.out_lines, plan.err_lines) == (["No changes. 1 run up to date."], [repo.context()])
    assert repo.cli("apply", "--yes", *remote(emu)).code == 0
    assert len(emu.received) == 1


def test_resolve_not_submitted_makes_it_new(unknown: tuple[Repo, Emulator]) -> None:
    repo, emu = unknown
    result = repo.cli("state", "resolve", "daily-us", "--not-submitted", "--yes")
    assert (result.code, result.out_lines) == (0, ["Resolved 1 run as not submitted."])
    assert repo.cli("plan").out_lines[0] == "+ shop/daily-us  new  runs.d/shop.yaml:2"
    applied = repo.cli("apply", "--yes", *remote(emu))
    assert applied.code == 0
    assert bodies(emu, 201) == [("shop", ONE_BODY)]


def test_retry_unknown_resubmits(unknown: tuple[Repo, Emulator]) -> None:
    repo, emu = unknown
    assert repo.cli("plan", "--retry-unknown").out_lines == [
        "! shop/daily-us  unknown  runs.d/shop.yaml:2",
        "",
        "Plan: 1 to submit (0 new, 0 changed, 1 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]
    result = repo.cli("apply", "--yes", "--retry-unknown", *remote(emu))
    assert result.code == 0, result.err
    assert outcome_lines(result) == submitted_lines(repo, "shop/daily-us")
    assert [r.status for r in emu.received] == [500, 201]
    assert repo.state()["entries"]["shop/daily-us"]["unknown"] is None


def test_run_resubmits_an_unknown_run(unknown: tuple[Repo, Emulator]) -> None:
    repo, emu = unknown
    result = repo.cli("apply", "--yes", "--run", "daily-us", *remote(emu))
    assert result.code == 0
    assert plan_part(result)[0] == "! shop/daily-us  requested  runs.d/shop.yaml:2"
    assert [r.status for r in emu.received] == [500, 201]


# -- waiting and status -------------------------------------------------------------------------------


def test_wait_records_the_final_status_without_bumping_the_serial(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    result = user_repo.cli("apply", "--yes", "--wait", "--json", *remote(emulator))
    assert result.code == 0, result.err
    state = user_repo.state()
    entry = state["entries"]["shop/daily-us"]
    assert result.json()["runs"] == [
        {
            "key": "shop/daily-us",
            "outcome": "submitted",
            "run_id": entry["run_id"],
            "status": "completed",
            "error": None,
        }
    ]
    assert entry["status"] == "completed"
    assert state["serial"] == 1


def test_wait_exits_1_when_a_run_failed(user_repo: Repo) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    with Emulator(complete_after=0, result_rates={"failed": 1.0}) as emu:
        result = user_repo.cli("apply", "--yes", "--wait", *remote(emu))
    assert result.code == 1
    run_id = user_repo.state()["entries"]["shop/daily-us"]["run_id"]
    assert f"  shop/daily-us  {run_id}  failed" in result.out_lines
    assert result.out_lines[-1] == summary(submitted=1)
    assert user_repo.state()["entries"]["shop/daily-us"]["status"] == "failed"


def test_status_json(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    serial = user_repo.state()["serial"]
    result = user_repo.cli("status", "--json", *remote(emulator))
    assert result.code == 0, result.err
    entries = user_repo.state()["entries"]
    expected: list[dict[str, Any]] = [
        {
            "key": key,
            "run_id": entries[key]["run_id"],
            "status": "completed",
            "error": None,
            "result": {"api": body["api"], "parameters": body["parameters"]},
        }
        for key, body in (
            ("portal/orders", BODY_ORDERS),
            ("shop/daily-us", BODY_DAILY_US),
            ("shop/hourly", BODY_HOURLY),
        )
    ]
    assert result.json() == {"format_version": 1, "runs": expected}
    assert {e["status"] for e in entries.values()} == {"completed"}
    assert user_repo.state()["serial"] == serial
    text = user_repo.cli("status", *remote(emulator))
    assert text.out_lines == [f"{r['key']}  {r['run_id']}  completed" for r in expected]


def test_status_detailed_exitcode_is_2_when_a_run_failed(user_repo: Repo) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    with Emulator(complete_after=0, result_rates={"failed": 1.0}) as emu:
        assert user_repo.cli("apply", "--yes", *remote(emu)).code == 0
        result = user_repo.cli("status", "--detailed-exitcode", "--json", *remote(emu))
    assert result.code == 2
    [run] = result.json()["runs"]
    assert run["status"] == "failed"
    assert run["error"] == {
        "code": "api-attempts-failed",
        "category": "execution",
        "message": "The API failed on every attempt (emulated failure)",
        "retirable": False,
    }


def test_status_exits_1_when_a_fetch_fails(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    with Emulator(complete_after=0) as other:  # knows no run
        result = user_repo.cli("status", "--json", *remote(other))
    assert result.code == 1
    run_id = user_repo.state()["entries"]["shop/daily-us"]["run_id"]
    [run] = result.json()["runs"]
    assert run == {
        "key": "shop/daily-us",
        "run_id": run_id,
        "status": None,
        "error": {"message": f"404: Run '{run_id}' not found in project 'shop'"},
        "result": None,
    }


def test_wait_gives_up_after_its_timeout_and_keeps_the_run_id(user_repo: Repo) -> None:
    user_repo.write("runs.d/shop.yaml", ONE_RUN)
    with Emulator(complete_after=600) as emu:
        started = time.monotonic()
        result = user_repo.cli("apply", "--yes", "--wait", "--timeout", "1s", *remote(emu))
        elapsed = time.monotonic() - started
    assert result.code == 1
    assert elapsed < 10
    assert result.err_lines[-1] == (
        "--timeout 1s passed before every run finished; 'intuned-runs status' shows them later"
    )
    entry = user_repo.state()["entries"]["shop/daily-us"]
    assert entry["run_id"].startswith("ru_")
    assert entry["status"] == "pending"
    assert result.out_lines[-1] == summary(submitted=1)


def test_an_unknown_rerun_resolved_as_not_submitted_restores_the_earlier_submission(one_run: Repo) -> None:
    """docs/README.md: resolving must never make an already-submitted definition look new."""
    with Emulator(complete_after=0, script=[201, 500]) as emu:
        assert one_run.cli("apply", "--yes", *remote(emu)).code == 0
        first = one_run.state()["entries"]["shop/daily-us"]
        assert one_run.cli("apply", "--yes", "--run", "daily-us", *remote(emu)).code == 1  # the re-run: 500
        unknown = one_run.state()["entries"]["shop/daily-us"]
        assert unknown["unknown"]["previous"]["run_id"] == first["run_id"]
        resolved = one_run.cli("state", "resolve", "shop/daily-us", "--not-submitted", "--yes")
        assert resolved.code == 0
        assert one_run.state()["entries"]["shop/daily-us"] == first
        assert one_run.cli("plan").out_lines == ["No changes. 1 run up to date."]
        assert one_run.cli("apply", "--yes", *remote(emu)).code == 0
        assert len(emu.received) == 2  # the definition was not sent a third time


def test_a_removed_and_readded_unknown_run_can_be_resolved(one_run: Repo) -> None:
    text = (one_run.root / "runs.d" / "shop.yaml").read_text()
    with Emulator(complete_after=0, script=[500]) as emu:
        assert one_run.cli("apply", "--yes", *remote(emu)).code == 1
        (one_run.root / "runs.d" / "shop.yaml").write_text("")
        assert one_run.cli("apply", "--yes", *remote(emu)).code == 0  # forgets it (a tombstone)
        (one_run.root / "runs.d" / "shop.yaml").write_text(text)
        assert one_run.cli("plan").out_lines[0] == "? shop/daily-us  unknown  runs.d/shop.yaml:2"
        resolved = one_run.cli("state", "resolve", "shop/daily-us", "--submitted", "--yes")
        assert resolved.code == 0
        assert one_run.cli("plan").out_lines == ["No changes. 1 run up to date."]
        assert len(emu.received) == 1
