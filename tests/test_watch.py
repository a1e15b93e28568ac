"""watch (docs/watch.md) with real files, real filesystem events and the emulator on 127.0.0.1.

The watcher runs in a thread of the test process and is stopped through its stop event, as the CLI
stops it on SIGINT. Waiting is bounded polling on what the watcher reported, never a fixed sleep.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from intuned_runs.apply.session import ApplyOptions
from intuned_runs.apply.signals import Signals
from intuned_runs.cli import main
from intuned_runs.commands.common import backend_of
from intuned_runs.config import Settings
from intuned_runs.emulator.server import Emulator
from intuned_runs.report.apply import outcome_line
from intuned_runs.report.output import Output
from intuned_runs.report.plan import plan_text, summary_line
from intuned_runs.repository import Repository
from intuned_runs.state.backend import Backend
from intuned_runs.watch import Watcher, WatchOptions, WatchReport, run_watch
from tests.services import PostgresServer

WORKSPACE = "123e4567-e89b-12d3-a456-426614174000"
CANARY = "CANARY-watch-secret-value-4711"
RUN = """runs:
  - name: {name}
    project: shop
    request:
      api: products/list
      parameters: {{limit: {limit}}}
      proxy: "{{{{ secret('PROXY') }}}}"
"""


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def add(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.text()):
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; watcher said:\n{self.text()}")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "intuned-runs.yaml").write_text(f"workspace_id: {WORKSPACE}\n")
    (tmp_path / "runs.d").mkdir()
    (tmp_path / "runs.d" / "a.yaml").write_text(RUN.format(name="alpha", limit=1))
    return tmp_path


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(complete_after=0) as emu:
        yield emu


def store_of(repository: Repository) -> Backend:
    return backend_of(repository, Output())


def start_watch(
    repo: Path, emulator: Emulator, *, apply: bool, force: tuple[str, ...] = (), state: str | None = None
) -> tuple[Recorder, threading.Event, threading.Thread]:
    recorder = Recorder()
    environ = {"PROXY": f"http://user:{CANARY}@proxy:1", "INTUNED_API_KEY": "test-key-123456"}

    def show_plan(plan, previous) -> None:  # type: ignore[no-untyped-def]
        lines = plan_text(plan, False) if previous is None else [summary_line(plan)]
        for line in lines:
            recorder.add(line)

    report = WatchReport(
        plan=show_plan,
        problems=lambda problems: [recorder.add(p.as_text()) for p in problems],
        outcome=lambda outcome: recorder.add(outcome_line(outcome)),
        message=recorder.add,
    )
    settings = Settings(chdir=str(repo), base_url=emulator.url, state=state)
    signals = Signals.new()
    options = WatchOptions(apply=apply, api_key=environ["INTUNED_API_KEY"], session=ApplyOptions(force=force))
    watcher = Watcher(settings, environ, options, report, signals, backend=store_of)
    thread = threading.Thread(target=run_watch, args=(watcher, signals.stop), daemon=True)
    thread.start()
    return recorder, signals.stop, thread


def bodies(emulator: Emulator) -> list[dict[str, object]]:
    return [r.body for r in emulator.received if r.body is not None]  # type: ignore[misc]


def plan_json(repo: Path, emulator: Emulator) -> dict[str, object]:
    out = io.StringIO()
    code = main(
        ["plan", "--json", "-C", str(repo), "--base-url", emulator.url], output=Output(stdout=out, stderr=io.StringIO())
    )
    assert code == 0
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def test_watch_apply_follows_edits_errors_new_folders_and_deletions(repo: Path, emulator: Emulator) -> None:
    recorder, stop, thread = start_watch(repo, emulator, apply=True)
    try:
        recorder.wait_for(lambda t: "✓ shop/alpha" in t, "the first apply")
        assert [b["parameters"] for b in bodies(emulator)] == [{"limit": 1}]
        assert bodies(emulator)[0]["proxy"] == f"http://user:{CANARY}@proxy:1"  # the real secret, only on the wire

        (repo / "runs.d" / "a.yaml").write_text(RUN.format(name="alpha", limit=2))
        recorder.wait_for(lambda t: t.count("✓ shop/alpha") == 2, "the edit to be applied")
        assert [b["parameters"] for b in bodies(emulator)] == [{"limit": 1}, {"limit": 2}]

        (repo / "runs.d" / "a.yaml").write_text("runs:\n  - name: alpha\n    project: shop\n    request: {api: x}\n")
        recorder.wait_for(lambda t: "runs.d/a.yaml:4:14: error: request.parameters" in t, "the broken edit reported")
        recorder.wait_for(lambda t: "nothing is submitted until the repository is valid" in t, "the wait message")
        assert len(bodies(emulator)) == 2

        (repo / "runs.d" / "a.yaml").write_text(RUN.format(name="alpha", limit=3))
        recorder.wait_for(lambda t: t.count("✓ shop/alpha") == 3, "the fix to be applied")

        (repo / "runs.d" / "new" / "deeper").mkdir(parents=True)
        (repo / "runs.d" / "new" / "deeper" / "b.yaml").write_text(RUN.format(name="beta", limit=9))
        recorder.wait_for(lambda t: "✓ shop/beta" in t, "a new file in a new folder to be applied")

        (repo / "runs.d" / "new" / "deeper" / "b.yaml").unlink()
        recorder.wait_for(  # shown as to forget, never applied (docs/watch.md)
            lambda t: t.rstrip().endswith("1 to forget, 0 blocked."),
            "the deletion to be planned",
        )
        time.sleep(0.3)  # give a wrong submission the chance to happen before counting
        assert [b["parameters"] for b in bodies(emulator)] == [{"limit": 1}, {"limit": 2}, {"limit": 3}, {"limit": 9}]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    # A stop leaves the state consistent: nothing left to submit (beta is shown as removed, never forgotten).
    after = plan_json(repo, emulator)
    assert after["summary"]["submit"] == 0  # type: ignore[index]
    assert after["summary"]["forget"] == 1  # type: ignore[index]
    assert CANARY not in recorder.text()
    for path in (repo / ".intuned-runs").rglob("*"):
        if path.is_file():
            assert CANARY not in path.read_text()


def test_watch_apply_keeps_a_postgresql_state(repo: Path, emulator: Emulator, postgres_server: PostgresServer) -> None:
    """A shared state is not a file to watch: edits of the run files still drive the batches, and each
    batch applies with the lock held only while applying (docs/watch.md; docs/shared-state.md)."""
    url = postgres_server.url(f"watch-{time.monotonic_ns()}")
    recorder, stop, thread = start_watch(repo, emulator, apply=True, state=url)
    try:
        recorder.wait_for(lambda t: "✓ shop/alpha" in t, "the first apply")
        (repo / "runs.d" / "a.yaml").write_text(RUN.format(name="alpha", limit=2))
        recorder.wait_for(lambda t: t.count("✓ shop/alpha") == 2, "the edit to be applied")
        assert [b["parameters"] for b in bodies(emulator)] == [{"limit": 1}, {"limit": 2}]
        out = io.StringIO()
        argv = ["-C", str(repo), "state", "unlock", "--state", url]
        assert main(argv, output=Output(stdout=out, stderr=io.StringIO())) == 0  # refused while a holder is alive
        assert out.getvalue() == "The state was not locked.\n"  # not held between batches
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert not (repo / ".intuned-runs" / "state.json").exists()
    assert CANARY not in recorder.text()


def test_watch_without_apply_only_plans(repo: Path, emulator: Emulator) -> None:
    recorder, stop, thread = start_watch(repo, emulator, apply=False)
    try:
        recorder.wait_for(lambda t: "+ shop/alpha  new  runs.d/a.yaml:2" in t, "the first plan")
        (repo / "runs.d" / "a.yaml").write_text(RUN.format(name="alpha", limit=5))
        recorder.wait_for(lambda t: t.count("Plan: 1 to submit (1 new") == 2, "the re-plan")
    finally:
        stop.set()
        thread.join(10)
    assert emulator.received == []
    assert CANARY not in recorder.text()


def test_watch_submits_an_always_run_once_per_session(repo: Path, emulator: Emulator) -> None:
    (repo / "runs.d" / "a.yaml").write_text(
        RUN.format(name="alpha", limit=1).replace("    project: shop\n", "    project: shop\n    trigger: always\n")
    )
    recorder, stop, thread = start_watch(repo, emulator, apply=True)
    try:
        recorder.wait_for(lambda t: "✓ shop/alpha" in t, "the first apply")
        (repo / "runs.d" / "other.yaml").write_text(RUN.format(name="gamma", limit=1))
        recorder.wait_for(lambda t: "✓ shop/gamma" in t, "the second batch")
    finally:
        stop.set()
        thread.join(10)
    assert sorted(r.project + ":" + str(r.body["parameters"]) for r in emulator.received if r.body) == [  # type: ignore[index]
        "shop:{'limit': 1}",
        "shop:{'limit': 1}",
    ]
    assert recorder.text().count("✓ shop/alpha") == 1


def test_watch_submits_a_run_forced_with_run_once_per_session(repo: Path, emulator: Emulator) -> None:
    recorder, stop, thread = start_watch(repo, emulator, apply=True, force=("shop/alpha",))
    try:
        recorder.wait_for(lambda t: "✓ shop/alpha" in t, "the first apply")
        (repo / "runs.d" / "other.yaml").write_text(RUN.format(name="gamma", limit=1))  # not planned: --run alone
        recorder.wait_for(lambda t: "No changes. 1 run up to date." in t, "the second batch")
        time.sleep(0.3)  # give a wrong submission the chance to happen before counting
    finally:
        stop.set()
        thread.join(10)
    # A save of another file must not submit the forced run again (docs/README.md: never twice by accident).
    assert recorder.text().count("✓ shop/alpha") == 1
    assert len(emulator.received) == 1
