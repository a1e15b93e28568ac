"""The proof of a shared postgresql state (docs/shared-state.md), against a real PostgreSQL server:
many runners applying one repository at once send every run exactly once; a killed lock holder's lock is
free at once and its in-flight runs are unknown; a lost connection stops the apply. Every start request
the emulator receives is recorded in a file (tests/helpers.py, EmulatorProcess), so counts per body
survive the processes that sent them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WS, EmulatorProcess, Repo, cli_command, remote, standard_env, wait_until
from tests.services import PostgresServer
from tests.state_backends import PostgresStateStore


def jobs(count: int) -> str:
    return f"""\
runs:
  - name: "job-{{{{ matrix.n }}}}"
    project: shop
    matrix: {{n: {list(range(count))}}}
    request:
      api: products/list
      parameters: {{n: "{{{{ matrix.n }}}}"}}
"""


def received(emu: EmulatorProcess) -> Counter[int]:
    """How many times each job's body reached the emulator."""
    return Counter(int(r["body"]["parameters"]["n"]) for r in emu.records())


def settled(emu: EmulatorProcess) -> Counter[int]:
    """The counts once no request is still arriving."""
    previous, now = -1, len(emu.records())
    while now != previous:
        time.sleep(0.3)
        previous, now = now, len(emu.records())
    return received(emu)


@pytest.fixture
def shared(user_repo: Repo, postgres_server: PostgresServer) -> Repo:
    """The user repository with its state in the session's database, under a name of its own."""
    name = f"proof-{time.monotonic_ns()}"
    user_repo.store = PostgresStateStore(postgres_server.url(name), postgres_server.conninfo(), name)
    return user_repo


class Runner:
    """`intuned-runs apply --yes …` in a process of its own, its output in files (a pipe nobody reads
    while it waits would fill up and stall it)."""

    def __init__(self, repo: Repo, emu: EmulatorProcess, *extra: str) -> None:
        self.out_file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in finish()
        self.err_file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        argv = repo.with_state(["apply", "--yes", *extra, *remote(emu.url)])
        self.process = subprocess.Popen(
            [*cli_command(), "-C", str(repo.root), *argv],
            stdout=self.out_file,
            stderr=self.err_file,
            text=True,
            env=standard_env(),
        )

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.kill()
        outputs = []
        for stream in (self.out_file, self.err_file):
            stream.seek(0)
            outputs.append(stream.read())
            stream.close()
        return self.process.returncode, outputs[0], outputs[1]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def actions(repo: Repo) -> dict[str, tuple[str, str]]:
    plan = repo.cli("plan", "--json")
    assert plan.code == 0, plan.err
    return {run["key"]: (run["action"], run["reason"]) for run in plan.json()["runs"]}


def test_eight_runners_at_once_send_every_run_exactly_once(shared: Repo, tmp_path: Path) -> None:
    n = 1000
    shared.write("intuned-runs.yaml", "max_submit: 2000\n")
    shared.write("runs.d/jobs.yaml", jobs(n))
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=0, lifetime=400) as emu:
        runners = [Runner(shared, emu, "--lock-timeout", "5m", "--concurrency", "16") for _ in range(8)]
        results = [runner.finish() for runner in runners]
        counts = settled(emu)
    for code, _, err in results:
        assert code == 0, err
    assert sorted(counts) == list(range(n))  # every run received ...
    assert set(counts.values()) == {1}  # ... exactly once
    summaries = [out.splitlines()[-1] for _, out, _ in results]
    submitted = [s for s in summaries if s.startswith("Apply: ")]
    # One runner submitted them all (its lock held the others off); the rest found nothing to do.
    assert submitted == [f"Apply: {n} submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked."]
    assert summaries.count(f"No changes. {n} runs up to date.") == 7
    state = shared.state()
    assert state["serial"] == 1
    assert len(state["entries"]) == n
    assert shared.store.journal() is None


def test_a_killed_lock_holder_frees_the_lock_at_once(shared: Repo, tmp_path: Path) -> None:
    n = 60
    shared.write("runs.d/jobs.yaml", jobs(n))
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=300) as emu:
        holder = Runner(shared, emu, "--concurrency", "4")
        try:
            wait_until(lambda: len(emu.records()) >= 8, timeout=60, what="the holder to send 8 runs")
            waiting = Runner(shared, emu, "--lock-timeout", "5m", "--max-submit", "1000")
            time.sleep(1.0)  # the second runner is waiting for the lock now
            assert waiting.process.poll() is None
            sent_before = len(emu.records())
            holder.process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            holder.process.wait(timeout=10)
            # The server released the dead holder's lock: the waiting runner goes on at once.
            wait_until(lambda: len(emu.records()) > sent_before + 4, timeout=20, what="the next holder to send")
            assert time.monotonic() - killed_at < 10
        finally:
            holder.kill()
        code, out, err = waiting.finish()
        counts = settled(emu)
    assert holder.process.returncode == -signal.SIGKILL
    assert max(counts.values()) == 1, "a body was received twice"
    planned = actions(shared)
    unknown = {k for k, a in planned.items() if a == ("blocked", "unknown")}
    up_to_date = {k for k, a in planned.items() if a == ("unchanged", "up-to-date")}
    assert 1 <= len(unknown) <= 2 * 4  # the killed runner's in-flight runs
    assert up_to_date | unknown == set(planned)  # nothing left to submit, nothing planned twice
    sent = {f"shop/job-{i}" for i in counts}
    assert set(planned) - sent <= unknown  # never sent: only false unknowns (intents ahead of sending)
    assert code == 1, err  # the unknown ones stay blocked
    assert out.splitlines()[-1].endswith(f", {len(unknown)} blocked.")


def test_a_lost_connection_stops_the_apply_and_reads_as_unknown(
    shared: Repo, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    import psycopg

    n = 60
    shared.write("runs.d/jobs.yaml", jobs(n))
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=300) as emu:
        apply = Runner(shared, emu, "--concurrency", "4")
        try:
            wait_until(lambda: len(emu.records()) >= 8, timeout=60, what="the apply to send 8 runs")
            with psycopg.connect(postgres_server.conninfo(), autocommit=True) as conn:
                killed = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'intuned-runs'"
                ).fetchall()
            assert killed
        finally:
            code, _, err = apply.finish(timeout=60)
        first = settled(emu)
        assert code == 1
        assert "error: lost the connection to state postgresql://intuned:***@" in err
        assert len(first) < n, "the apply went on after losing its state"
        planned = actions(shared)
        unknown = {k for k, a in planned.items() if a == ("blocked", "unknown")}
        sent = {f"shop/job-{i}" for i in first}
        new = {k for k, a in planned.items() if a == ("submit", "new")}
        assert unknown and sent <= {k for k, a in planned.items() if a[0] != "submit"}  # no false to-submit
        following = shared.cli("apply", "--yes", *remote(emu.url))
        assert following.code == 1  # the unknown ones stay blocked
        after = settled(emu)
    assert max(after.values()) == 1, "a body was received twice"
    assert {f"shop/job-{i}" for i in after} == sent | new


def test_the_state_password_appears_in_no_output_log_or_file(
    user_repo: Repo, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """A canary: the cluster user's password, in the config's state URL, and in PGPASSWORD."""
    password = postgres_server.password
    url = postgres_server.url("canary")
    user_repo.write("intuned-runs.yaml", f"state: '{url}'\nmax_submit: 10\n")
    user_repo.write("runs.d/a.yaml", jobs(3))
    outputs: list[str] = []
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=0) as emu:
        for argv in (
            ["plan"],
            ["plan", "--json"],
            ["plan", "--format", "markdown"],
            ["plan", "--out", str(tmp_path / "plan.json"), "--workspace-id", WS],
            ["--debug", "apply", str(tmp_path / "plan.json"), "--state", url, *remote(emu.url)],
            ["state", "list", "--all", "--json"],
            ["state", "show", "shop/job-1"],
            ["status", *remote(emu.url)],
            ["state", "migrate", "--to", str(tmp_path / "copy.json"), "--yes"],
            ["apply", "--yes", "--state", url.replace(f":{postgres_server.port}/", ":1/"), *remote(emu.url)],
            ["plan", "--state", url.replace("postgresql://", "postgress://")],
        ):
            result = user_repo.cli(*argv)
            outputs += [result.out, result.err]
        done = subprocess.run(
            [
                *cli_command(),
                "-C",
                str(user_repo.root),
                "--debug",
                "plan",
                "--state",
                postgres_server.url("canary", password=False),
            ],
            capture_output=True,
            text=True,
            env={**standard_env(), "PGPASSWORD": password},
            timeout=60,
        )
        outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stderr
    shown = "".join(outputs)
    assert "postgresql://intuned:***@127.0.0.1" in shown  # the URL is shown, masked
    assert "✓ shop/job-1  ru_" in shown and "serial 1, 3 entries" in shown  # applied, then migrated
    for text in outputs:
        assert password not in text
    files = [p for p in tmp_path.rglob("*") if p.is_file()] + [postgres_server.log]
    assert len(files) >= 3
    for path in files:
        if path.name != "intuned-runs.yaml":  # the user's own config holds the URL they wrote
            assert password.encode() not in path.read_bytes(), path
    saved: dict[str, Any] = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    assert saved["state_path"] == postgres_server.url("canary").replace(password, "***")
