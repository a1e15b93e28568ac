"""A plan while another apply is sending (docs/plan.md, Blocked and in-progress runs): the intents it has
journaled without outcome are in progress, named with the holder of the lock, never blocked, interrupted or
to resolve; once the holder is gone (finished, or killed) they read as they are.

The apply is the installed command in a process of its own, held mid-way by the emulator's latency; the
plan runs in-process meanwhile.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import Repo, cli_command, context, remote, standard_env, wait_until

RUNS = """\
runs:
  - {name: a, project: shop, request: {api: products/list, parameters: {n: 1}}}
  - {name: b, project: shop, request: {api: products/list, parameters: {n: 2}}}
  - {name: c, project: shop, request: {api: products/list, parameters: {n: 3}}}
"""
KEYS = ("shop/a", "shop/b", "shop/c")


@pytest.fixture
def slow() -> Iterator[Emulator]:
    with Emulator(complete_after=0, latency_ms=4000) as emu:
        yield emu


def intents(repo: Repo) -> int:
    if not repo.journal_path.exists():
        return 0
    lines = repo.journal_path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.endswith("}") and json.loads(line)["type"] == "intent")


def holder_since(repo: Repo) -> str:
    since: str = json.loads(repo.state_path.with_name("state.json.lock").read_text())["since"]
    return since


@pytest.fixture
def sending(user_repo: Repo, slow: Emulator) -> Iterator[tuple[Repo, subprocess.Popen[str]]]:
    """An apply of three runs, all three intents journaled, their requests held by the emulator."""
    user_repo.write("runs.d/shop.yaml", RUNS)
    process = subprocess.Popen(
        [*cli_command(), "-C", str(user_repo.root), "apply", "--yes", *remote(slow)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=standard_env(),
    )
    try:
        wait_until(lambda: intents(user_repo) == 3, timeout=20, what="the apply to journal its intents")
        yield user_repo, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_a_plan_while_an_apply_is_sending_reports_its_runs_in_progress(
    sending: tuple[Repo, subprocess.Popen[str]], slow: Emulator
) -> None:
    repo, apply = sending
    result = repo.cli("plan")
    document = repo.cli("plan", "--json").json()
    assert apply.poll() is None  # still sending (each answer takes 4 s): the plans saw it mid-way
    running = f"an apply is running (pid {apply.pid} on {socket.gethostname()} since {holder_since(repo)})"
    assert result.code == 0
    assert result.err_lines == [context(), *(f"in progress: {running}: {key}" for key in KEYS)]
    assert result.out_lines == [
        "  shop/a  in-progress  runs.d/shop.yaml:2",
        "  shop/b  in-progress  runs.d/shop.yaml:3",
        "  shop/c  in-progress  runs.d/shop.yaml:4",
        "",
        "No changes. 3 runs up to date.",
    ]
    for word in ("blocked", "interrupted", "unknown", "resolve"):
        assert word not in result.out + result.err
    assert [(r["key"], r["action"], r["reason"]) for r in document["runs"]] == [
        (key, "unchanged", "in-progress") for key in KEYS
    ]
    assert document["summary"]["blocked"] == 0

    # Once it has finished, the same plan reads its outcomes: nothing in progress, nothing sent twice.
    _, err = apply.communicate(timeout=30)
    assert apply.returncode == 0, err
    after = repo.cli("plan")
    assert (after.code, after.out_lines, after.err_lines) == (0, ["No changes. 3 runs up to date."], [context()])
    assert len(slow.received) == 3


def test_intents_of_a_killed_apply_are_blocked_not_in_progress(sending: tuple[Repo, subprocess.Popen[str]]) -> None:
    repo, apply = sending
    apply.send_signal(signal.SIGKILL)
    apply.wait(timeout=10)
    # The lock file still names the dead holder; the kernel has freed its lock.
    assert json.loads(repo.state_path.with_name("state.json.lock").read_text())["pid"] == apply.pid
    result = repo.cli("plan")
    assert result.code == 0
    assert result.out_lines[:3] == [
        f"? {key}  unknown  runs.d/shop.yaml:{line}" for key, line in zip(KEYS, (2, 3, 4), strict=True)
    ]
    assert [line.split(":")[0] for line in result.err_lines[1:]] == ["blocked"] * 3
    assert "(interrupted before the outcome was recorded)" in result.err
    assert "in progress" not in result.out + result.err


def test_an_in_flight_run_given_with_run_is_requested(sending: tuple[Repo, subprocess.Popen[str]]) -> None:
    repo, _ = sending
    result = repo.cli("plan", "--run", "shop/a", "--detailed-exitcode")
    assert result.code == 2
    assert result.out_lines == [
        "! shop/a  requested  runs.d/shop.yaml:2",
        "",
        "Plan: 1 to submit (0 new, 0 changed, 1 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]


def test_a_state_without_a_lock_file_reads_intents_as_interrupted(user_repo: Repo, tmp_path: Path) -> None:
    """No holder ever: the probe takes no lock, creates no lock file and writes nothing."""
    user_repo.write("runs.d/shop.yaml", RUNS)
    header = {"type": "header", "lineage": "5d0c7a4e-1f2b-4c3d-9e8f-7a6b5c4d3e2f", "base_serial": 0}
    intent = {
        "type": "intent",
        "key": "shop/a",
        "fingerprint": "sha256:" + "1" * 64,
        "request": {},
        "at": "2026-11-28T10:00:00Z",
    }
    user_repo.journal_path.parent.mkdir(parents=True)
    user_repo.journal_path.write_text(json.dumps(header) + "\n" + json.dumps(intent) + "\n", encoding="utf-8")
    result = user_repo.cli("plan")
    assert result.out_lines[0] == "? shop/a  unknown  runs.d/shop.yaml:2"
    assert result.err_lines[1].startswith("blocked: shop/a: outcome unknown since 2026-11-28T10:00:00Z (interrupted")
    assert sorted(p.name for p in user_repo.journal_path.parent.iterdir()) == ["state.json.journal"]
