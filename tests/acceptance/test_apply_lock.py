"""The state lock (docs/apply.md, Locking): a second apply while one is submitting fails at once naming the
holder, or waits with --lock-timeout; either way no run is sent twice.

The first apply is the installed command in a process of its own, held up by the emulator's latency;
the second runs in-process against the same emulator on 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import WS, Repo, cli_command, context, remote, standard_env, wait_until

RUNS = """\
runs:
  - {name: a, project: shop, request: {api: products/list, parameters: {n: 1}}}
  - {name: b, project: shop, request: {api: products/list, parameters: {n: 2}}}
  - {name: c, project: shop, request: {api: products/list, parameters: {n: 3}}}
"""


@pytest.fixture
def user_repo(user_repo: Repo, state_backend: Callable[[Repo], Repo]) -> Repo:
    """Every test here runs against each backend (tests/state_backends.py)."""
    return state_backend(user_repo)


@pytest.fixture
def slow() -> Iterator[Emulator]:
    with Emulator(complete_after=0, latency_ms=1500) as emu:
        yield emu


def start_apply(repo: Repo, emu: Emulator) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*cli_command(), "-C", str(repo.root), *repo.with_state(["apply", "--yes", *remote(emu)])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=standard_env(),
    )


def test_a_second_apply_fails_at_once_naming_the_holder(user_repo: Repo, slow: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", RUNS)
    first = start_apply(user_repo, slow)
    try:
        wait_until(lambda: len(slow.received) >= 1, timeout=20, what="the first apply to send")
        started = time.monotonic()
        second = user_repo.cli("apply", "--yes", *remote(slow))
        elapsed = time.monotonic() - started
        writer = user_repo.cli("state", "forget", "a", "--yes")
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.code == 1
    [shown, line] = second.err_lines
    assert shown == context(WS, state=user_repo.store.display)
    assert line.startswith(f"error: state is locked by pid {first.pid} on host {socket.gethostname()} since ")
    assert line.endswith(f" (intuned-runs apply){user_repo.store.lock_advice}")
    assert "✓" not in second.out
    assert elapsed < 1.0  # at once, not after the holder finished
    assert writer.code == 1 and "state is locked by pid" in writer.err
    assert first.returncode == 0, err
    assert out.splitlines()[-1] == "Apply: 3 submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked."
    assert sorted(r.body["parameters"]["n"] for r in slow.received if r.body) == [1, 2, 3]
    assert user_repo.state()["workspace_id"] == WS


def test_lock_timeout_waits_for_the_holder_then_finds_nothing_to_do(user_repo: Repo, slow: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", RUNS)
    first = start_apply(user_repo, slow)
    try:
        wait_until(lambda: len(slow.received) >= 1, timeout=20, what="the first apply to send")
        started = time.monotonic()
        second = user_repo.cli("apply", "--yes", "--lock-timeout", "30s", *remote(slow))
        waited = time.monotonic() - started
        _, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert waited > 0.5  # held up by the first apply's in-flight requests (1.5 s each)
    assert (second.code, second.out_lines, second.err_lines) == (
        0,
        ["No changes. 3 runs up to date."],
        [context(WS, state=user_repo.store.display)],
    )
    assert len(slow.received) == 3  # nothing sent twice
    assert user_repo.state()["serial"] == 1


def test_a_lock_timeout_that_runs_out_names_the_wait(user_repo: Repo, slow: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", RUNS)
    first = start_apply(user_repo, slow)
    try:
        wait_until(lambda: len(slow.received) >= 1, timeout=20, what="the first apply to send")
        second = user_repo.cli("apply", "--yes", "--lock-timeout", "1s", *remote(slow))
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.code == 1
    assert f"state is locked by pid {first.pid} " in second.err
    assert "(intuned-runs apply) (waited 1s); wait for it" in second.err
    assert len(slow.received) == 3
