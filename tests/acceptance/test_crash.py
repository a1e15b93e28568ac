"""Crash safety (docs/apply.md): `intuned-runs apply` SIGKILLed while requests are in flight.

The emulator runs in a process of its own and records every start request it receives (JSON lines,
flushed per request), so the count of bodies received survives the apply's death. The properties:
every journaled 201 shows as submitted, every other intent as `?` unknown (at most 2 × concurrency),
never a false to-submit; a following `apply --yes` sends only runs never sent, so no body is ever
received twice; the state file is never half-written.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import EmulatorProcess, Repo, cli_command, remote, standard_env, wait_until

N = 40
CONCURRENCY = 4
JOBS = f"""\
runs:
  - name: "job-{{{{ matrix.n }}}}"
    project: shop
    matrix: {{n: {list(range(N))}}}
    request:
      api: products/list
      parameters: {{n: "{{{{ matrix.n }}}}"}}
"""


def job(record: dict[str, Any]) -> int:
    """The job a recorded request was for (`parameters.n` of its body)."""
    body = record["body"]
    assert isinstance(body, dict), f"the emulator received a body that is not a JSON object: {record}"
    return int(body["parameters"]["n"])


def received(emu: EmulatorProcess) -> Counter[int]:
    """How many times each job's body reached the emulator."""
    return Counter(job(r) for r in emu.records())


def settled(emu: EmulatorProcess) -> list[dict[str, Any]]:
    """The records once no request is still arriving (those sent just before the kill)."""
    previous = -1
    records = emu.records()
    while len(records) != previous:
        previous = len(records)
        time.sleep(0.3)
        records = emu.records()
    return records


def journal_keys(journal: bytes) -> tuple[set[str], set[str]]:
    """Keys with an intent, keys with a journaled 201 (a torn last line is ignored, as readers do)."""
    intents: set[str] = set()
    submitted: set[str] = set()
    lines = journal.split(b"\n")
    for number, line in enumerate(lines):
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            assert number >= len(lines) - 2, "only the last line may be torn"
            continue
        if record["type"] == "intent":
            intents.add(record["key"])
        elif record["type"] == "submitted":
            submitted.add(record["key"])
    return intents, submitted


def test_sigkill_mid_apply_never_sends_a_body_twice(
    user_repo: Repo, tmp_path: Path, state_backend: Callable[[Repo], Repo]
) -> None:
    state_backend(user_repo)  # against each backend (tests/state_backends.py)
    user_repo.write("runs.d/jobs.yaml", JOBS)
    assert user_repo.cli("plan").out_lines[-1] == (
        f"Plan: {N} to submit ({N} new, 0 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked."
    )
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=300) as emu:
        apply = subprocess.Popen(
            [
                *cli_command(),
                "-C",
                str(user_repo.root),
                *user_repo.with_state(["apply", "--yes", "--concurrency", str(CONCURRENCY), *remote(emu.url)]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=standard_env(),
        )
        try:
            wait_until(lambda: len(emu.records()) >= 10, timeout=30, what="10 requests to reach the emulator")
        finally:
            apply.send_signal(signal.SIGKILL)
            apply.wait(timeout=10)
        assert apply.returncode == -signal.SIGKILL
        first = Counter(job(r) for r in settled(emu))
        assert 10 <= sum(first.values()) < N, "the apply was killed mid-way"
        assert max(first.values()) == 1
        assert {r["status"] for r in emu.records()} == {201}

        # What the killed apply left: a journal, and a state file that is whole if it exists at all.
        journal = user_repo.store.journal()
        assert journal is not None
        if user_repo.store.read() is not None:
            assert user_repo.state()["version"] == 1
        intents, journaled_201 = journal_keys(journal)
        sent = {f"shop/job-{n}" for n in first}

        plan = user_repo.cli("plan", "--json")
        assert plan.code == 0
        actions = {run["key"]: (run["action"], run["reason"]) for run in plan.json()["runs"]}
        assert len(actions) == N
        up_to_date = {k for k, a in actions.items() if a == ("unchanged", "up-to-date")}
        unknown = {k for k, a in actions.items() if a == ("blocked", "unknown")}
        new = {k for k, a in actions.items() if a == ("submit", "new")}
        assert up_to_date | unknown | new == set(actions)
        assert up_to_date == journaled_201  # every journaled 201 is submitted
        assert unknown == intents - journaled_201  # every other intent is unknown
        assert 1 <= len(unknown) <= 2 * CONCURRENCY  # killed with requests in flight
        assert new, "killed before the end"
        assert sent <= up_to_date | unknown  # a false to-submit: never
        assert new == set(actions) - intents
        listed = user_repo.cli("state", "list").out_lines
        assert len([line for line in listed if " unknown since " in line]) == len(unknown)

        # The next apply sends every run never sent, and nothing else. It waits for the lock: an S3 lease
        # left by the killed runner ends only once it expires (docs/shared-state-s3.md, Locking).
        following = user_repo.cli("apply", "--yes", "--lock-timeout", "1m", *remote(emu.url))
        assert following.code == 1  # the unknown ones stay blocked
        assert following.out_lines[-1] == (
            f"Apply: {len(new)} submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, {len(unknown)} blocked."
        )
        after = received(emu)
        assert max(after.values()) == 1, "a body was received twice"
        assert {f"shop/job-{n}" for n in after} == sent | new
        assert user_repo.store.journal() is None
        state = user_repo.state()
        assert state["version"] == 1
        assert sum(1 for e in state["entries"].values() if e["unknown"] is not None) == len(unknown)

        # Only an explicit --retry-unknown sends the unknown ones again, each once more.
        retried = user_repo.cli("apply", "--yes", "--retry-unknown", *remote(emu.url))
        assert retried.code == 0, retried.err
        final = received(emu)
        resent = {f"shop/job-{n}" for n in final if final[n] > after.get(n, 0)}
        assert resent == unknown
        assert max(final.values()) <= 2
        assert {f"shop/job-{n}" for n, count in final.items() if count == 2} == unknown & sent
        assert user_repo.cli("plan").out_lines == [f"No changes. {N} runs up to date."]
