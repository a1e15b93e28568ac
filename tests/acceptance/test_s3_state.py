"""The S3 state end to end (docs/shared-state-s3.md), against moto's S3 server and the emulator, each in a
process of its own: `apply --state s3://…`, the proof of many runners sharing one state (every run received
exactly once), a SIGKILLed lock holder whose lease the next runner takes over once it expires, and the AWS
secret key as a canary that appears in no output, log or file."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from intuned_runs.emulator.server import Emulator
from intuned_runs.state.format import loads
from intuned_runs.state.s3 import S3Backend
from tests.acceptance.test_crash import job, received, settled
from tests.helpers import EmulatorProcess, Repo, cli_command, remote, standard_env, wait_until
from tests.s3_server import SECRET_ACCESS_KEY, Address, S3Place


def jobs(n: int) -> str:
    return f"""\
runs:
  - name: "job-{{{{ matrix.n }}}}"
    project: shop
    matrix: {{n: {list(range(n))}}}
    request:
      api: products/list
      parameters: {{n: "{{{{ matrix.n }}}}"}}
"""


def apply_process(repo: Repo, emu: EmulatorProcess, state: str, *extra: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*cli_command(), "-C", str(repo.root), "apply", "--yes", "--state", state, *remote(emu.url), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=standard_env() | env,
    )


def test_apply_plan_and_state_commands_with_an_s3_state(user_repo: Repo, s3: S3Place, tmp_path: Path) -> None:
    user_repo.standard()
    url = s3.url("ci/prod.json")
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=0) as emu:
        applied = user_repo.cli("apply", "--yes", "--json", "--state", url, *remote(emu.url))
        assert applied.code == 0, applied.err
        submitted = sorted(r["key"] for r in applied.json()["runs"] if r["outcome"] == "submitted")
        assert len(submitted) == len(emu.records()) > 0
        state = loads(s3.read("ci/prod.json"), url)
        assert sorted(state.live()) == submitted
        assert s3.object_keys() == ["ci/prod.json"]  # journal folded and removed, lock released
        assert not user_repo.state_path.exists()  # nothing was kept in a file

        plan = user_repo.cli("plan", "--state", url, *remote(emu.url))
        assert plan.code == 0, plan.err
        assert "(0 new, 0 changed, 0 requested, 1 always), 2 unchanged" in plan.out_lines[-1], plan.out
        listed = user_repo.cli("state", "list", "--state", url)
        assert listed.code == 0, listed.err
        assert [line.split()[0] for line in listed.out_lines] == submitted
        forgotten = user_repo.cli("state", "forget", submitted[0], "--yes", "--state", url)
        assert forgotten.code == 0, forgotten.err
        after = loads(s3.read("ci/prod.json"), url)
        assert after.serial == state.serial + 1
        assert submitted[0] not in after.live()
        assert user_repo.cli("state", "unlock", "--state", url).code == 0


def test_a_second_runner_is_refused_naming_the_holder(user_repo: Repo, s3: S3Place, tmp_path: Path) -> None:
    user_repo.write("runs.d/jobs.yaml", jobs(30))
    url = s3.url()
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=300) as emu:
        first = apply_process(user_repo, emu, url, "--concurrency", "2")
        try:
            wait_until(lambda: len(emu.records()) >= 2, timeout=60, what="the first apply to send")
            second = user_repo.cli("apply", "--yes", "--state", url, *remote(emu.url))
        finally:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=60)
    assert second.code == 1
    assert f"state is locked by pid {first.pid} on host " in second.err
    assert "(intuned-runs apply" in second.err and "--lock-timeout" in second.err


def test_four_runners_at_once_submit_every_run_exactly_once(user_repo: Repo, s3: S3Place, tmp_path: Path) -> None:
    n = 1000
    user_repo.write("runs.d/jobs.yaml", jobs(n))
    url = s3.url("shared/state.json")
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=0, lifetime=600) as emu:
        # -q: a runner must never block on a full pipe while it holds the lock
        flags = ("--lock-timeout", "5m", "--max-submit", str(n), "-q")
        runners = [apply_process(user_repo, emu, url, *flags) for _ in range(4)]
        results = [runner.communicate(timeout=600) for runner in runners]
        codes = [runner.returncode for runner in runners]
        counts = received(emu)
    assert codes == [0, 0, 0, 0], [err[-2000:] for _, err in results]
    outcomes = sorted(out.splitlines()[-1] for out, _ in results)
    assert outcomes[0] == f"Apply: {n} submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked."
    assert outcomes[1:] == [f"No changes. {n} runs up to date."] * 3
    assert sorted(counts) == list(range(n))
    assert set(counts.values()) == {1}  # every run received exactly once
    state = loads(s3.read("shared/state.json"), url)
    assert len(state.live()) == n and all(e.run_id for e in state.entries.values())
    assert s3.object_keys() == ["shared/state.json"]


def test_sigkill_of_the_holder_the_next_takes_over_once_the_lease_expires(
    user_repo: Repo, s3: S3Place, tmp_path: Path
) -> None:
    n, concurrency, lease = 60, 4, "4"
    user_repo.write("runs.d/jobs.yaml", jobs(n))
    url = s3.url()
    short = {"INTUNED_RUNS_S3_LEASE_SECONDS": lease}
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=300) as emu:
        first = apply_process(user_repo, emu, url, "--concurrency", str(concurrency), **short)
        try:
            wait_until(lambda: len(emu.records()) >= 10, timeout=60, what="10 requests to reach the emulator")
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=10)
        assert first.returncode == -signal.SIGKILL
        sent_first = Counter(job(r) for r in settled(emu))
        assert 10 <= sum(sent_first.values()) < n and max(sent_first.values()) == 1
        assert "state.json.lock" in s3.object_keys()  # the killed holder's lease is left behind

        started = time.monotonic()
        following = user_repo.cli("apply", "--yes", "--state", url, "--lock-timeout", "1m", *remote(emu.url))
        waited = time.monotonic() - started
        after = received(emu)
    assert following.code == 1, following.err  # the killed runner's in-flight runs stay blocked (unknown)
    assert waited >= 1.0  # it waited for the lease to expire (at most 4 s after the kill)
    assert max(after.values()) == 1  # nothing received twice
    state = loads(s3.read("state.json"), url)
    unknown = {k for k, e in state.entries.items() if e.unknown is not None}
    submitted = {k for k, e in state.entries.items() if e.run_id is not None and e.unknown is None}
    assert unknown | submitted == {f"shop/job-{i}" for i in range(n)}
    assert 1 <= len(unknown) <= 2 * concurrency
    assert {f"shop/job-{i}" for i in after} >= submitted  # submitted means received
    assert {f"shop/job-{i}" for i in after} <= submitted | unknown
    assert {f"shop/job-{i}" for i in sent_first} <= submitted | unknown  # a false to-submit: never
    assert s3.object_keys() == ["state.json"]


def test_the_aws_secret_key_appears_in_no_output_log_or_file(user_repo: Repo, s3: S3Place, tmp_path: Path) -> None:
    user_repo.standard()
    url = s3.url()
    outputs: list[str] = []
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=0) as emu:
        for argv in (
            ["apply", "--yes", "-v", "--json"],
            ["apply", "--yes", "-v"],
            ["plan", "-v"],
            ["plan", "--json"],
            ["status", "--json"],
            ["state", "list", "--all"],
            ["state", "show", "shop/pricing-daily", "--json"],
            ["state", "unlock"],
        ):
            flags = remote(emu.url) if argv[0] in ("apply", "plan", "status") else []
            result = user_repo.cli(*argv, "--state", url, *flags)
            outputs += [result.out, result.err]
        # failing ones: a bucket that does not exist, a wrong secret, an endpoint that does not answer
        for bad in (url.replace(s3.bucket, "no-such-bucket-x"), url.replace("127.0.0.1:", "127.0.0.1:1")):
            result = user_repo.cli("apply", "--yes", "--state", bad, *remote(emu.url))
            assert result.code == 1 and "Traceback" not in result.err
            outputs += [result.out, result.err]
        outputs.append(emu.record_file.read_text())
    outputs.append(s3.server.log.read_text(errors="replace"))
    outputs += [s3.read(key).decode() for key in s3.object_keys()]
    outputs += [p.read_text(errors="replace") for p in user_repo.root.rglob("*") if p.is_file()]
    leaked = [text for text in outputs if SECRET_ACCESS_KEY in text or SECRET_ACCESS_KEY[-12:] in text]
    assert leaked == []
    assert "Apply: " in "".join(outputs)  # the commands did run


def test_migrate_file_to_postgresql_to_s3_to_file_keeps_everything(
    user_repo: Repo, s3: S3Place, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.services import PostgresServer

    user_repo.standard()
    with Emulator(complete_after=0) as emu:
        assert user_repo.cli("apply", "--yes", *remote(emu)).code == 0
    with Emulator(complete_after=0, script=[500]) as emu:  # an unknown outcome
        assert user_repo.cli("apply", "--yes", "--run", "daily-us", *remote(emu)).code == 1
    assert user_repo.cli("state", "forget", "orders", "--yes").code == 0  # a tombstone (or none)
    source = user_repo.state_path.read_bytes()
    server: PostgresServer = request.getfixturevalue("postgres_server")
    pg = server.url(f"round-{uuid.uuid4().hex[:8]}")
    url = s3.url("migrated/state.json")
    back = tmp_path / "back" / "state.json"
    steps = [([], pg), (["--state", pg], url), (["--state", url], str(back))]
    for state, target in steps:
        result = user_repo.cli("state", "migrate", "--to", target, "--yes", *state)
        assert result.code == 0, result.err
    assert s3.read("migrated/state.json") == source  # every value, timestamps included, byte for byte
    assert back.read_bytes() == source
    assert s3.object_keys() == ["migrated/state.json"]  # locks released, no journal left
    assert user_repo.cli("plan", "--state", url).out == user_repo.cli("plan").out
    again = user_repo.cli("state", "migrate", "--to", url, "--yes")
    assert again.code == 1 and "already holds a state" in again.err


def test_a_holder_whose_lease_is_taken_stops_submitting_and_exits_1(
    user_repo: Repo, s3: S3Place, tmp_path: Path
) -> None:
    n = 80
    user_repo.write("runs.d/jobs.yaml", jobs(n))
    url = s3.url()
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=200) as emu:
        runner = apply_process(user_repo, emu, url, "--concurrency", "2", INTUNED_RUNS_S3_LEASE_SECONDS="5")
        try:
            wait_until(lambda: len(emu.records()) >= 4, timeout=60, what="the apply to send")
            # Another process took the lease over (as if this one had been frozen past its expiry).
            s3.put(
                "state.json.lock",
                b'{"command": "other", "expires": "2999-01-01T00:00:00Z", "host": "h", '
                b'"pid": 1, "since": "2026-01-01T00:00:00Z"}',
            )
            _, err = runner.communicate(timeout=60)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.communicate()
        sent = received(emu)
    assert runner.returncode == 1
    assert "stopped submitting" in err
    [error] = [line for line in err.splitlines() if line.startswith("error:")]
    assert error.startswith("error: lost the lock s3://") and "another process replaced it" in error
    assert "Traceback" not in err
    assert sum(sent.values()) < n  # it stopped
    assert max(sent.values()) == 1
    assert b'"pid": 1' in s3.read("state.json.lock")  # the other holder's lease is untouched
    state = S3Backend(Address(s3.bucket, "state.json", s3.endpoint, "us-east-1", True)).load()
    assert {f"shop/job-{i}" for i in sent} <= {k for k, e in state.entries.items() if e.run_id or e.unknown}
