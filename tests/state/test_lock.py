"""The state lock against real processes: naming the holder, waiting, and a SIGKILLed holder."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from intuned_runs.errors import LockHeld, StateError
from intuned_runs.state.lock import StateLock, force_unlock, lock_path
from tests.helpers import PROJECT

REPO = PROJECT
NOW = datetime(2026, 11, 28, 16, 20, 0, tzinfo=timezone.utc)

HOLDER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from intuned_runs.state.lock import StateLock

    StateLock(Path(sys.argv[1]), "intuned-runs apply").acquire()
    print("ready", flush=True)
    threading.Event().wait(120)
    """
)


class FakeTime:
    """A monotonic clock that moves only when the lock sleeps; `on_sleep` runs at each sleep."""

    def __init__(self, on_sleep: dict[int, object] | None = None) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep or {}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        action = self.on_sleep.get(len(self.sleeps))
        if callable(action):
            action()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / ".intuned-runs" / "state.json"


@pytest.fixture
def holder(state: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_held_lock_fails_at_once_naming_the_holder(state: Path, holder: subprocess.Popen[str]) -> None:
    fake = FakeTime()
    lock = StateLock(state, "intuned-runs plan", clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(LockHeld) as info:
        lock.acquire()
    message = str(info.value)
    assert message.startswith(f"state is locked by pid {holder.pid} on host {socket.gethostname()} since ")
    assert message.endswith(
        " (intuned-runs apply); wait for it, use --lock-timeout DUR, or if no such process exists run "
        "'intuned-runs state unlock'"
    )
    assert fake.sleeps == []
    assert not lock.held


def test_with_a_timeout_it_polls_every_tenth_of_a_second_then_fails(state: Path, holder: subprocess.Popen[str]) -> None:
    fake = FakeTime()
    lock = StateLock(state, "intuned-runs apply", clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(LockHeld, match=rf"pid {holder.pid} .* \(waited 0\.35s\); wait for it"):
        lock.acquire(timeout=0.35)
    assert fake.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.05])


def test_with_a_timeout_it_gets_the_lock_once_the_holder_is_gone(state: Path, holder: subprocess.Popen[str]) -> None:
    fake = FakeTime(on_sleep={3: lambda: kill9(holder)})
    lock = StateLock(state, "intuned-runs apply", clock=fake.clock, sleep=fake.sleep)
    with lock.acquire(timeout=10):
        assert lock.held
        assert len(fake.sleeps) == 3
    assert not lock.held


def test_a_sigkilled_holder_frees_the_lock_at_once(state: Path, holder: subprocess.Popen[str]) -> None:
    kill9(holder)
    lock = StateLock(state, "intuned-runs apply", now=lambda: NOW)
    with lock.acquire():
        info = json.loads(lock_path(state).read_text())
        assert info == {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": "2026-11-28T16:20:00Z",
            "command": "intuned-runs apply",
        }


def test_release_clears_the_holder_and_the_lock_can_be_taken_again(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "dir" / "state.json"  # directories are created
    first = StateLock(state, "intuned-runs apply").acquire()
    with pytest.raises(RuntimeError):
        first.acquire()
    # flock conflicts between two open files even in one process (watch, threads).
    with pytest.raises(LockHeld, match=rf"pid {os.getpid()} .*\(intuned-runs apply\)"):
        StateLock(state, "intuned-runs state mv").acquire()
    first.release()
    first.release()  # idempotent
    assert lock_path(state).read_text() == ""
    with StateLock(state, "intuned-runs state mv") as second:
        assert second.held
        assert json.loads(lock_path(state).read_text())["command"] == "intuned-runs state mv"


def test_force_unlock(state: Path) -> None:
    assert force_unlock(state) is None
    lock_path(state).parent.mkdir(parents=True)
    # What a holder on a filesystem without flock leaves when it dies.
    stale = {"pid": 4242, "host": "ci-7", "since": "2026-11-28T16:20:00Z", "command": "intuned-runs apply"}
    lock_path(state).write_text(json.dumps(stale))
    assert force_unlock(state) == "pid 4242 on host ci-7 since 2026-11-28T16:20:00Z (intuned-runs apply)"
    assert not lock_path(state).exists()


def test_force_unlock_refuses_while_a_live_process_holds_the_flock(state: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LockHeld, match=rf"pid {holder.pid} .*a running process: stop it"):
        force_unlock(state)
    assert lock_path(state).exists()


def no_flock(fd: int, operation: int) -> None:
    raise OSError(errno.EOPNOTSUPP, "Operation not supported")


def test_without_flock_the_file_itself_is_the_lock(state: Path) -> None:
    first = StateLock(state, "intuned-runs apply", flock=no_flock, now=lambda: NOW).acquire()
    with pytest.raises(LockHeld, match=rf"pid {os.getpid()} on host .* since 2026-11-28T16:20:00Z"):
        StateLock(state, "intuned-runs apply", flock=no_flock).acquire()
    first.release()
    assert not lock_path(state).exists()

    # A holder that died leaves its file: the lock stays taken until `state unlock`.
    StateLock(state, "intuned-runs apply", flock=no_flock, now=lambda: NOW).acquire()
    with pytest.raises(LockHeld, match="run 'intuned-runs state unlock'"):
        StateLock(state, "intuned-runs apply", flock=no_flock).acquire()
    assert force_unlock(state) == (
        f"pid {os.getpid()} on host {socket.gethostname()} since 2026-11-28T16:20:00Z (intuned-runs apply)"
    )
    with StateLock(state, "intuned-runs apply", flock=no_flock) as lock:
        assert lock.held


def test_a_holder_that_has_not_written_its_name_yet(state: Path, holder: subprocess.Popen[str]) -> None:
    lock_path(state).write_text("")  # between its flock and its write
    with pytest.raises(LockHeld, match="locked by another process \\(it has not recorded its name\\)"):
        StateLock(state, "intuned-runs apply").acquire()


def test_an_unwritable_directory_is_a_state_error_not_an_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match=r"^cannot lock .*file/state\.json\.lock: File exists$"):
        StateLock(blocker / "state.json", "intuned-runs apply").acquire()
