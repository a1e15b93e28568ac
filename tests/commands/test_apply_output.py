"""What apply shows (docs/apply.md): an unreachable server stops it early, `-q`, `--wait` progress and the
final statuses printed once; `status` lists every run and exits 1 when a fetch fails."""

from __future__ import annotations

import re
import threading

from intuned_runs.emulator.server import Emulator
from tests.helpers import (
    WS,
    Repo,
    cli_command,
    context,
    free_port,
    remote,
    run_in_terminal,
    standard_env,
)

SEVEN = "runs:\n" + "".join(
    f"  - {{name: r{n}, project: shop, request: {{api: x, parameters: {{n: {n}}}}}}}\n" for n in range(7)
)


def test_an_unreachable_server_stops_the_apply_after_three_runs_in_a_row(user_repo: Repo) -> None:
    user_repo.write("runs.d/shop.yaml", SEVEN)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = user_repo.cli("apply", "--yes", "--concurrency", "1", "--base-url", url, "--workspace-id", WS)
    assert result.code == 1
    outcomes = [line for line in result.out_lines if line[:2] in ("✓ ", "✗ ", "- ")]
    assert [line.split("  ")[0] for line in outcomes[:3]] == ["✗ shop/r0", "✗ shop/r1", "✗ shop/r2"]
    assert all("  could not connect: " in line for line in outcomes[:3])
    assert outcomes[3:] == [f"- shop/r{n}  skipped: not sent: cannot reach {url}" for n in range(3, 7)]
    assert result.out_lines[-1] == "Apply: 0 submitted, 3 failed, 0 unknown, 4 skipped, 0 forgotten, 0 blocked."
    # nothing was started: every run is offered again
    assert user_repo.cli("plan").out_lines[-1].startswith("Plan: 7 to submit (7 new,")


def test_quiet_apply_prints_only_failed_or_unknown_runs_and_the_summary(user_repo: Repo) -> None:
    user_repo.write("runs.d/shop.yaml", SEVEN)
    with Emulator(complete_after=0, script=[0, 400, 0, 500]) as emu:
        result = user_repo.cli("apply", "--yes", "-q", "--concurrency", "1", *remote(emu))
    assert result.code == 1
    assert result.out_lines == [
        "✗ shop/r1  400: Bad Request (injected fault)",
        "? shop/r3  unknown: 500: Internal Server Error (injected fault)",
        "Apply: 5 submitted, 1 failed, 1 unknown, 0 skipped, 0 forgotten, 0 blocked.",
    ]
    assert result.err == ""  # -q silences the context line too


class StepClock:
    """The emulator's clock: one step each time it is read (a start, then each result fetch), so a run
    with complete_after=2 is `started` at its first fetch and `completed` at its second."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.now += 1.0
            return self.now


ONE = "runs:\n  - {name: daily-us, project: shop, request: {api: x, parameters: {}}}\n"


def test_wait_without_a_tty_prints_a_line_per_status_change_and_the_final_statuses_once(user_repo: Repo) -> None:
    user_repo.write("runs.d/shop.yaml", ONE)
    with Emulator(complete_after=2, clock=StepClock()) as emu:
        result = user_repo.cli("apply", "--yes", "--wait", *remote(emu))
    assert result.code == 0, result.err
    run_id = user_repo.state()["entries"]["shop/daily-us"]["run_id"]
    assert result.err_lines == [context(WS), f"  shop/daily-us  {run_id}  started"]
    assert result.out_lines[-2:] == [
        f"  shop/daily-us  {run_id}  completed",
        "Apply: 1 submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked.",
    ]
    assert result.out.count(f"{run_id}  completed") == 1
    assert user_repo.state()["entries"]["shop/daily-us"]["status"] == "completed"


def test_wait_on_a_terminal_shows_a_live_line_and_the_final_statuses_once(user_repo: Repo) -> None:
    user_repo.write("runs.d/shop.yaml", ONE)
    with Emulator(complete_after=2, clock=StepClock()) as emu:
        argv = [*cli_command(), "-C", str(user_repo.root), "apply", "--yes", "--wait", "--no-color", *remote(emu)]
        code, shown = run_in_terminal(argv, "", standard_env())
    assert code == 0, shown
    run_id = user_repo.state()["entries"]["shop/daily-us"]["run_id"]
    assert "\r\x1b[Kwaiting: 0 completed, 0 failed, 1 pending" in shown
    assert "\r\x1b[Kwaiting: 1 completed, 0 failed, 0 pending" in shown
    assert shown.count(f"{run_id}  completed") == 1
    assert f"  shop/daily-us  {run_id}  started" not in shown  # the live line replaces the change lines
    assert shown.rstrip("\n").endswith("Apply: 1 submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked.")


def test_status_lists_every_run_and_exits_1_when_a_fetch_fails(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE + "  - {name: hourly, project: shop, request: {api: y, parameters: {}}}\n")
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    entries = user_repo.state()["entries"]
    # the emulator forgets one of the two runs: its result is a 404
    missing = entries["shop/hourly"]["run_id"]
    del emulator._runs[(WS, "shop", missing)]
    result = user_repo.cli("status", *remote(emulator))
    assert result.code == 1
    assert result.out_lines == [
        f"shop/daily-us  {entries['shop/daily-us']['run_id']}  completed",
        f"shop/hourly  {missing}  error: 404: Run '{missing}' not found in project 'shop'",
    ]
    assert re.fullmatch(r"ru_[\w-]{21}", missing)
