"""Smoke tests of the benchmarks in `bench/` (docs/performance.md): the generated repository has exactly the shape
the benchmarks claim, the floors run and measure what they say, and `bench/run.py --quick` prints a row
for every benchmark. The scripts run as a user runs them: `python3 bench/NAME.py …`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from intuned_runs.emulator.server import Emulator
from tests.helpers import PROJECT

BENCH = PROJECT / "bench"
SECRET = "{{ secret('BENCH_PROXY_URL') }}"


def bench(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def expected_request(i: int) -> dict[str, Any]:
    return {
        "api": "products/list",
        "parameters": {"region": "{{ vars.region }}", "limit": "{{ vars.limit }}", "index": i, "page": 1},
        "proxy": SECRET,
        "sink": {
            "type": "webhook",
            "url": "https://hooks.example.com/x",
            "headers": {"Content-Type": "application/json"},
        },
    }


def test_make_repo_writes_exactly_the_promised_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    proc = bench("make_repo.py", "12", "5", str(repo))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{repo}: 12 runs in 5 files\n", "")

    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    assert files == [
        "intuned-runs.yaml",
        "runs.d/group-0/runs-0000.yaml",
        "runs.d/group-0/runs-0004.yaml",
        "runs.d/group-1/runs-0001.yaml",
        "runs.d/group-2/runs-0002.yaml",
        "runs.d/group-3/runs-0003.yaml",
    ]
    config = yaml.safe_load((repo / "intuned-runs.yaml").read_text())
    assert config == {"default_project": "bench", "env_allow": ["BENCH_*"], "vars": {"limit": 50, "region": "us"}}

    names_per_file = []
    for f in range(5):
        path = repo / f"runs.d/group-{f % 4}/runs-{f:04d}.yaml"
        doc = yaml.safe_load(path.read_text())
        assert set(doc) == {"defaults", "runs"}
        assert doc["defaults"] == {
            "project": "bench",
            "labels": {"team": f"team-{f}"},
            "request": {"retry": {"maximumAttempts": 3}},
        }
        names_per_file.append([run["name"] for run in doc["runs"]])
        for run in doc["runs"]:
            i = int(run["name"].removeprefix("run-"))
            assert run == {"name": f"run-{i:05d}", "labels": {"shard": f"s{i % 8}"}, "request": expected_request(i)}
            assert json.dumps(run).count("secret(") == 1
    assert names_per_file == [
        ["run-00000", "run-00001"],
        ["run-00002", "run-00003"],
        ["run-00004", "run-00005", "run-00006"],
        ["run-00007", "run-00008"],
        ["run-00009", "run-00010", "run-00011"],
    ]


def test_make_repo_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert bench("make_repo.py", "30", "7", str(tmp_path / name)).returncode == 0
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert len(a) == 8
    assert a == b


def test_make_repo_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")
    proc = bench("make_repo.py", "3", "1", str(tmp_path))
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"make_repo: {tmp_path} is not empty\n")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_floor_reads_validates_and_hashes_every_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert bench("make_repo.py", "12", "5", str(repo)).returncode == 0
    proc = bench("floor.py", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(
        r"floor: 12 runs in 5 files read, validated and hashed in \d+\.\d ms \(0 invalid\) digest [0-9a-f]{16}\n",
        proc.stdout,
    )


def test_floor_counts_an_invalid_request_and_exits_1(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert bench("make_repo.py", "4", "2", str(repo)).returncode == 0
    (repo / "runs.d" / "broken.yaml").write_text("runs:\n  - name: x\n    request: {parameters: {}}\n")
    proc = bench("floor.py", str(repo))
    assert proc.returncode == 1
    assert "floor: 5 runs in 3 files" in proc.stdout
    assert "(1 invalid)" in proc.stdout


@pytest.mark.parametrize("mode", ["async", "threads"])
def test_floor_apply_posts_the_bodies_apply_sends(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from harness import SECRET_VALUE, WORKSPACE_ID

    with Emulator(complete_after=0) as emu:
        proc = bench("floor_apply.py", "--url", emu.url, "--mode", mode, "--runs", "10", "--concurrency", "4")
        received = list(emu.received)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout)
    assert (line["mode"], line["runs"], line["statuses"]) == (mode, 10, {"201": 10})
    assert {(r.workspace_id, r.project, r.headers["x-api-key"], r.status) for r in received} == {
        (WORKSPACE_ID, "bench", "k", 201)
    }
    sent = sorted((r.body for r in received), key=lambda body: body["parameters"]["index"])
    rendered = [
        {
            **expected_request(i),
            "parameters": {"region": "us", "limit": 50, "index": i, "page": 1},
            "proxy": SECRET_VALUE,
            "retry": {"maximumAttempts": 3},
        }
        for i in range(10)
    ]
    assert sent == rendered


def test_watch_latency_reports_both_figures_per_edit_and_restores_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert bench("make_repo.py", "20", "3", str(repo)).returncode == 0
    generated = {p: p.read_bytes() for p in repo.rglob("*.yaml")}
    proc = bench("watch_latency.py", str(repo), "20", "3", "--rounds", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 5, proc.stdout
    for i, line in enumerate(lines[:3], 1):
        assert re.fullmatch(rf"edit {i}: in tool \d+\.\d ms; file write → summary \d+\.\d ms", line)
    assert re.fullmatch(r"watch, in tool \(.*\): best \d+\.\d ms, median \d+\.\d ms", lines[3])
    assert re.fullmatch(r"watch, file write → summary line: best \d+\.\d ms, median \d+\.\d ms", lines[4])
    assert {p: p.read_bytes() for p in repo.rglob("*.yaml")} == generated


def test_run_quick_prints_every_row() -> None:
    """Passes once `intuned-runs plan` and `apply` exist: their rows must hold figures, not `n/a`."""
    proc = bench("run.py", "--quick", timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [
        [cell.strip() for cell in line.strip("|").split(" | ")]
        for line in proc.stdout.splitlines()
        if line.startswith("| ")
    ]
    assert rows[0] == ["benchmark", "measured", "floor", "ratio", "peak RSS", "target", "verdict"]
    names = [row[0].split(":")[0] for row in rows[1:]]
    assert names == [
        "plan",
        "watch",
        "apply",
        "emulator capacity",
        "apply against 100 ms latency",
        "shared state",
        "small repository",
        "scale",
        "scale",
        "start-up",
    ]
    by_name = {row[0].split(":")[0]: row for row in rows[1:]}
    scale_apply, scale_plan = (row for row in rows[1:] if row[0].startswith("scale"))
    assert scale_apply[4].endswith(" MB") and scale_plan[4].endswith(" MB"), (scale_apply, scale_plan)
    for name in ("plan", "apply", "apply against 100 ms latency", "small repository", "scale", "start-up"):
        measured, floor = by_name[name][1], by_name[name][2]
        assert not measured.startswith("n/a"), by_name[name]
        assert floor != "–", by_name[name]
    assert by_name["start-up"][-1] == "pass", by_name["start-up"]
    assert re.fullmatch(
        r"in tool: best \d+\.\d ms, median \d+\.\d ms; "
        r"file write → summary line \(information\): best \d+\.\d ms, median \d+\.\d ms",
        by_name["watch"][1],
    ), by_name["watch"]
