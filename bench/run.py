"""Run every benchmark of docs/performance.md and print one markdown table: each figure beside its floor, measured
in the same run, its ratio, its target and a verdict.

- plan: `intuned-runs plan` on 10,000 runs in 500 files with a state holding all of them (filled by one
  `intuned-runs apply` to the emulator first), best-of-5 wall time of a fresh process, against
  `floor.py` on the same files, best of 5; peak RSS from `/usr/bin/time -v`.
- watch: `intuned-runs watch -v` on that repository, one file edited per round; judged on the tool's own
  `planned in N.N ms` (batch received → end of plan output, the span docs/performance.md names), best and median;
  beside it, from outside, file write → plan summary line (file-event delivery and batching included).
- apply: `intuned-runs apply --yes --concurrency 32` of 1,000 runs to the in-process emulator, throughput
  between the first and last request it receives, against the faster of `floor_apply.py`'s two loops, as
  the median of 3 alternating pairs; the emulator's capacity beside it.
- apply against latency: 2,000 runs to the emulator answering each start after 100 ms, against the bare
  threaded loop on the same server (the limit is 32 ÷ 0.1 s = 320 runs/s), median of 3 alternating pairs.
- shared state: the same apply of 1,000 runs with a postgresql state (a throwaway cluster) against a file
  state, median of 3 alternating pairs (`shared_state.py`, which also runs this row alone).
- small repository: `intuned-runs plan` of this repository's own examples, a fresh process, against a
  fresh `python3 -c "import yaml, jinja2"`; and which of httpx, jsonschema it imports.
- scale: 100,000 runs in 5,000 files: the apply that fills the state from empty (peak RSS), then `plan`
  against `floor.py` with that full state (time and peak RSS).
- start-up: `intuned-runs --version` wall time against `python3 -c pass`, and which of httpx,
  jsonschema, jinja2, watchfiles it imports.

A measurement that cannot be taken (a command not implemented yet, a failure) shows `n/a` with the reason;
the table always prints. Progress goes to stderr, the table to stdout.

    python3 bench/run.py            # full sizes, as docs/performance.md states them (a few minutes)
    python3 bench/run.py --quick    # tiny sizes, best of 1: a smoke run for CI, not a measurement
    python3 bench/run.py --check    # exit 1 unless every target is met
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from floor_apply import MODES, Measurement, measure, open_server, server_throughput
from harness import (
    BENCH_DIR,
    PROJECT_DIR,
    Unavailable,
    apply_command,
    bench_env,
    peak_rss_mib,
    precompile,
    run_checked,
    tool_command,
    wall_time,
)
from make_repo import build_state, make_repo
from shared_state import bench_shared
from watch_latency import describe, watch_latencies

HEAVY = ("httpx", "jsonschema", "jinja2", "watchfiles")
PLAN_MUST_NOT_IMPORT = ("httpx", "jsonschema")
CONCURRENCY = 32
LATENCY_MS = 100
PAIRS = 3  # apply figures are the median of this many alternating (floor, apply) pairs


@dataclass(frozen=True)
class Sizes:
    plan_runs: int
    plan_files: int
    apply_runs: int
    apply_files: int
    latency_runs: int
    scale_runs: int
    scale_files: int
    repeat: int
    scale_repeat: int
    watch_timeout: float


FULL = Sizes(
    plan_runs=10_000,
    plan_files=500,
    apply_runs=1_000,
    apply_files=50,
    latency_runs=2_000,
    scale_runs=100_000,
    scale_files=5_000,
    repeat=5,
    scale_repeat=3,
    watch_timeout=300,
)
QUICK = Sizes(
    plan_runs=50,
    plan_files=5,
    apply_runs=20,
    apply_files=2,
    latency_runs=20,
    scale_runs=100,
    scale_files=10,
    repeat=1,
    scale_repeat=1,
    watch_timeout=60,
)


@dataclass(frozen=True)
class Row:
    benchmark: str
    measured: str
    floor: str = "–"
    ratio: str = "–"
    peak_rss: str = "–"
    target: str = "–"
    verdict: str = "–"
    informational: bool = False  # shown for context; --check ignores it


COLUMNS = ("benchmark", "measured", "floor", "ratio", "peak RSS", "target", "verdict")


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def bench_plan(sizes: Sizes, repo: Path, server: str) -> Row:
    name = f"plan: {sizes.plan_runs:,} runs in {sizes.plan_files} files, full state"
    target = "≤ 1.25× floor, < 200 MB"
    floor_cmd = [sys.executable, str(BENCH_DIR / "floor.py"), str(repo)]
    plan_cmd = [*tool_command(), "plan"]
    env = bench_env()
    floors: list[float] = []
    plans: list[float] = []
    state_error = None
    try:
        progress(f"plan: filling the state with one apply of {sizes.plan_runs} runs")
        with open_server(server) as srv:
            build_state(repo, srv.url, sizes.plan_runs)
    except Unavailable as e:
        state_error = e
    try:
        # Rounds alternate floor and plan so that a change in machine load hits both alike.
        for i in range(sizes.repeat):
            progress(f"plan: floor.py and intuned-runs plan, round {i + 1} of {sizes.repeat}")
            floors.append(wall_time(floor_cmd, env=env))
            if state_error is None:
                plans.append(wall_time(plan_cmd, cwd=repo, env=env))
        if state_error is not None:
            raise state_error
        rss = peak_rss_mib(plan_cmd, cwd=repo, env=env)
        up_to_date = run_checked(plan_cmd, cwd=repo, env=env).stdout.lstrip().startswith("No changes.")
    except Unavailable as e:
        shown = f"{min(floors) * 1000:.0f} ms (floor.py)" if floors else "–"
        return Row(name, "n/a", shown, target=target, verdict=f"n/a: {e}")
    plan, floor = min(plans), min(floors)
    note = "" if up_to_date else " (plan was not `No changes.`)"
    return Row(
        name,
        f"{plan * 1000:.0f} ms{note}",
        f"{floor * 1000:.0f} ms (floor.py)",
        f"{plan / floor:.2f}×",
        f"{rss:.0f} MB",
        target,
        verdict(plan <= 1.25 * floor and rss < 200 and up_to_date),
    )


def bench_watch(sizes: Sizes, repo: Path) -> Row:
    name = "watch: re-plan after 1 file changed (in tool: batch received → end of plan output)"
    target = "< 100 ms (in tool, best)"
    try:
        progress(f"watch: intuned-runs watch -v, one file edited per round, {sizes.repeat} rounds")
        edits = watch_latencies(
            repo, sizes.plan_runs, sizes.plan_files, rounds=sizes.repeat, start_timeout=sizes.watch_timeout
        )
    except Unavailable as e:
        return Row(name, "n/a", target=target, verdict=f"n/a: {e}")
    in_tool = [e.in_tool for e in edits]
    external = [e.external for e in edits]
    return Row(
        name,
        f"in tool: {describe(in_tool)}; file write → summary line (information): {describe(external)}",
        target=target,
        verdict=verdict(min(in_tool) < 0.1),
    )


def apply_once(repo: Path, runs: int, server: str, latency_ms: int = 0) -> float:
    """Throughput of one `intuned-runs apply` of every run of `repo`, from an empty state."""
    shutil.rmtree(repo / ".intuned-runs", ignore_errors=True)
    with open_server(server, latency_ms) as srv:
        run_checked(apply_command(srv.url, runs, CONCURRENCY), cwd=repo, env=bench_env())
        return server_throughput(srv, runs)


def bench_apply(sizes: Sizes, repo: Path, server: str) -> list[Row]:
    n = sizes.apply_runs
    name = f"apply: {n:,} runs, concurrency {CONCURRENCY} (median of {PAIRS} pairs)"
    target = "≥ 0.9× floor"
    pairs: list[tuple[dict[str, Measurement], float]] = []
    try:
        # Each pair measures both floor loops and the apply back to back, so that a change in machine load
        # hits both sides of its ratio alike; the median pair is the figure (one good round is not enough).
        for i in range(PAIRS):
            progress(f"apply: floor loops and intuned-runs apply, pair {i + 1} of {PAIRS}")
            floors = {mode: measure(mode, n, CONCURRENCY, server=server) for mode in MODES}
            pairs.append((floors, apply_once(repo, n, server)))
        faster = max(MODES, key=lambda mode: max(f[mode].throughput for f, _ in pairs))
        progress("apply: emulator capacity, 2 client processes at once")
        capacity = max(
            measure(faster, n, CONCURRENCY, clients=2, server=server).throughput for _ in range(sizes.repeat)
        )
    except Unavailable as e:
        reason = f"n/a: {e}"
        capacity_na = Row("emulator capacity", "n/a", verdict=reason, informational=True)
        return [Row(name, "n/a", target=target, verdict=reason), capacity_na]
    ratios = [applied / max(f[mode].throughput for mode in MODES) for f, applied in pairs]
    middle = sorted(range(PAIRS), key=lambda i: ratios[i])[PAIRS // 2]
    floors, applied = pairs[middle]
    floor = max(floors[mode].throughput for mode in MODES)
    shown = "; ".join(f"{mode} {floors[mode].throughput:.0f}" for mode in MODES)
    busy = floors[faster].server_busy
    capacity_row = Row(
        f"emulator capacity: 2 {faster} clients × {CONCURRENCY} in flight",
        f"{capacity:.0f} runs/s; busy {busy:.0%} of one core during the {faster} floor",
        ratio=f"{capacity / floor:.2f}× floor",
        target="not the bottleneck",
        verdict="ok" if busy < 0.8 else "emulator may limit the floor",
        informational=True,
    )
    ratio = statistics.median(ratios)
    return [
        Row(
            name,
            f"{applied:.0f} runs/s (pair ratios {', '.join(f'{r:.2f}' for r in ratios)})",
            f"{floor:.0f} runs/s ({shown})",
            f"{ratio:.2f}×",
            target=target,
            verdict=verdict(ratio >= 0.9),
        ),
        capacity_row,
    ]


def bench_latency(sizes: Sizes, repo: Path, server: str) -> Row:
    n = sizes.latency_runs
    limit = CONCURRENCY / (LATENCY_MS / 1000)
    name = f"apply against {LATENCY_MS} ms latency: {n:,} runs, concurrency {CONCURRENCY} (median of {PAIRS} pairs)"
    target = "≥ 0.95× floor"
    ratios, pairs = [], []
    try:
        for i in range(PAIRS):
            progress(f"apply against latency: threaded loop and intuned-runs apply, pair {i + 1} of {PAIRS}")
            floor = measure("threads", n, CONCURRENCY, server=server, latency_ms=LATENCY_MS).throughput
            applied = apply_once(repo, n, server, LATENCY_MS)
            pairs.append((floor, applied))
            ratios.append(applied / floor)
    except Unavailable as e:
        return Row(name, "n/a", target=target, verdict=f"n/a: {e}")
    middle = sorted(range(PAIRS), key=lambda i: ratios[i])[PAIRS // 2]
    floor, applied = pairs[middle]
    ratio = statistics.median(ratios)
    return Row(
        name,
        f"{applied:.0f} runs/s (pair ratios {', '.join(f'{r:.2f}' for r in ratios)})",
        f"{floor:.0f} runs/s (threads; limit {limit:.0f})",
        f"{ratio:.2f}×",
        target=target,
        verdict=verdict(ratio >= 0.95),
    )


def bench_small(sizes: Sizes, work: Path) -> Row:
    """The plan of this repository's own examples, copied beside no state, against its import floor."""
    name = "small repository: plan of this repository's examples, fresh process"
    target = f"≤ 1.5× floor, imports neither {' nor '.join(PLAN_MUST_NOT_IMPORT)}"
    repo = work / "small"
    shutil.copytree(PROJECT_DIR / "runs.d", repo / "runs.d")
    shutil.copy(PROJECT_DIR / "intuned-runs.yaml", repo / "intuned-runs.yaml")
    (repo / ".git").mkdir()
    plan_cmd = [*tool_command(), "plan"]
    floor_cmd = [sys.executable, "-c", "import yaml, jinja2"]
    env = bench_env()
    try:
        plans, floors = [], []
        for i in range(sizes.repeat):
            progress(f"small repository: plan and its import floor, round {i + 1} of {sizes.repeat}")
            floors.append(wall_time(floor_cmd, env=env))
            plans.append(wall_time(plan_cmd, cwd=repo, env=env))
        heavy = imported_modules([sys.executable, "-X", "importtime", "-m", "intuned_runs", "plan"], repo)
    except Unavailable as e:
        return Row(name, "n/a", target=target, verdict=f"n/a: {e}")
    plan, floor = min(plans), min(floors)
    wrong = sorted(set(heavy) & set(PLAN_MUST_NOT_IMPORT))
    return Row(
        name,
        f"{plan * 1000:.0f} ms; imports: {', '.join(wrong) or 'neither'}",
        f'{floor * 1000:.0f} ms (python3 -c "import yaml, jinja2")',
        f"{plan / floor:.2f}×",
        target=target,
        verdict=verdict(plan <= 1.5 * floor and not wrong),
    )


def bench_scale(sizes: Sizes, work: Path, server: str) -> list[Row]:
    """100,000 runs: the apply that fills the state from empty (memory), then plan against the floor."""
    n, files = sizes.scale_runs, sizes.scale_files
    apply_name = f"scale: apply of {n:,} runs in {files:,} files from an empty state"
    plan_name = f"scale: plan of {n:,} runs in {files:,} files, full state"
    apply_target, plan_target = "< 400 MB", "≤ 1.25× floor, < 350 MB"
    try:
        progress(f"scale: generating {n} runs in {files} files")
        repo = make_repo(n, files, work / "scale")
        progress(f"scale: intuned-runs apply of {n} runs from an empty state (peak memory)")
        with open_server(server) as srv:
            apply_rss = peak_rss_mib(apply_command(srv.url, n, CONCURRENCY), cwd=repo, env=bench_env())
            if len(srv.received) != n:
                raise Unavailable(f"the emulator received {len(srv.received)} starts, expected {n}")
    except (Unavailable, ValueError) as e:
        return [
            Row(apply_name, "n/a", target=apply_target, verdict=f"n/a: {e}"),
            Row(plan_name, "n/a", target=plan_target, verdict=f"n/a: {e}"),
        ]
    apply_row = Row(
        apply_name,
        f"{n:,} runs submitted",
        peak_rss=f"{apply_rss:.0f} MB",
        target=apply_target,
        verdict=verdict(apply_rss < 400),
    )
    floor_cmd = [sys.executable, str(BENCH_DIR / "floor.py"), str(repo)]
    plan_cmd = [*tool_command(), "plan", "-q"]
    env = bench_env()
    try:
        plans, floors = [], []
        for i in range(sizes.scale_repeat):
            progress(f"scale: floor.py and intuned-runs plan, round {i + 1} of {sizes.scale_repeat}")
            floors.append(wall_time(floor_cmd, env=env))
            plans.append(wall_time(plan_cmd, cwd=repo, env=env))
        plan_rss = peak_rss_mib(plan_cmd, cwd=repo, env=env)
        floor_rss = peak_rss_mib(floor_cmd, env=env)
    except Unavailable as e:
        return [apply_row, Row(plan_name, "n/a", target=plan_target, verdict=f"n/a: {e}")]
    plan, floor = min(plans), min(floors)
    return [
        apply_row,
        Row(
            plan_name,
            f"{plan:.1f} s",
            f"{floor:.1f} s (floor.py; {floor_rss:.0f} MB)",
            f"{plan / floor:.2f}×",
            f"{plan_rss:.0f} MB",
            plan_target,
            verdict(plan <= 1.25 * floor and plan_rss < 350),
        ),
    ]


def imported_modules(cmd: list[str], cwd: Path | None = None) -> list[str]:
    """Which of HEAVY a `python3 -X importtime …` command imports."""
    proc = run_checked(cmd, cwd=cwd, env=bench_env())
    imported = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            imported.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return sorted(imported.intersection(HEAVY))


def bench_startup(sizes: Sizes) -> Row:
    name = "start-up: intuned-runs --version"
    target = "imports none of " + ", ".join(HEAVY)
    env = bench_env()
    try:
        versions, bares = [], []
        for _ in range(sizes.repeat):
            versions.append(wall_time([*tool_command(), "--version"], env=env))
            bares.append(wall_time([sys.executable, "-c", "pass"], env=env))
        heavy = imported_modules([sys.executable, "-X", "importtime", "-m", "intuned_runs", "--version"])
    except Unavailable as e:
        return Row(name, "n/a", target=target, verdict=f"n/a: {e}")
    version, bare = min(versions), min(bares)
    return Row(
        name,
        f"{version * 1000:.0f} ms; imports: {', '.join(heavy) or 'none'}",
        f"{bare * 1000:.0f} ms (python3 -c pass)",
        f"{version / bare:.2f}×",
        target=target,
        verdict=verdict(not heavy),
    )


def render_table(rows: list[Row]) -> str:
    cells = [list(COLUMNS)] + [
        [r.benchmark, r.measured, r.floor, r.ratio, r.peak_rss, r.target, r.verdict] for r in rows
    ]
    cells = [[c.replace("|", "\\|") for c in row] for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def caption(sizes: Sizes, quick: bool) -> str:
    kind = "quick run: sizes too small for the targets to mean anything" if quick else "full run"
    return (
        f"_{kind}; best of {sizes.repeat}; Python {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs._"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, best of 1 (CI smoke run)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every verdict is pass")
    parser.add_argument("--workdir", type=Path, help="keep the generated repositories here (absent or empty)")
    parser.add_argument(
        "--server", choices=("emulator", "standin"), default="emulator", help="standin: check the bench only"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    precompile()
    with tempfile.TemporaryDirectory(prefix="intuned-runs-bench-") as tmp:
        work = args.workdir or Path(tmp)
        try:
            plan_repo = make_repo(sizes.plan_runs, sizes.plan_files, work / "plan")
            apply_repo = make_repo(sizes.apply_runs, sizes.apply_files, work / "apply")
            latency_repo = make_repo(sizes.latency_runs, 2 * sizes.apply_files, work / "latency")
        except ValueError as e:
            print(f"run: {e}", file=sys.stderr)
            return 1
        startup = bench_startup(sizes)
        small = bench_small(sizes, work)
        apply_rows = bench_apply(sizes, apply_repo, args.server)
        latency = bench_latency(sizes, latency_repo, args.server)
        shared = bench_shared(sizes.apply_runs, CONCURRENCY, apply_repo, args.server, Row)
        plan = bench_plan(sizes, plan_repo, args.server)
        watch = bench_watch(sizes, plan_repo)
        scale = bench_scale(sizes, work, args.server)
    rows = [plan, watch, *apply_rows, latency, shared, small, *scale, startup]
    print(render_table(rows))
    print()
    print(caption(sizes, args.quick))
    missed = [r for r in rows if r.verdict != "pass" and not r.informational]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
