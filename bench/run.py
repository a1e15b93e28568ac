"""Run every benchmark of docs/performance.md and print one markdown table: each figure beside its floor, measured
in the same run, its ratio, its target and a verdict.

- plan: `intuned-runs plan` on 10,000 runs in 500 files with a state holding all of them (filled by one
  `intuned-runs apply` to the emulator first), best-of-5 wall time of a fresh process, against
  `floor.py` on the same files, best of 5; peak RSS from `/usr/bin/time -v`.
- watch: `intuned-runs watch -v` on that repository, one file edited per round; judged on the tool's own
  `planned in N.N ms` (batch received → end of plan output, the span docs/performance.md names), best and median;
  beside it, from outside, file write → plan summary line (file-event delivery and batching included).
- apply: `intuned-runs apply --yes --concurrency 32` of 1,000 runs to the in-process emulator, throughput
  between the first and last request it receives, against the faster of `floor_apply.py`'s two loops;
  the emulator's capacity beside it.
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
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from floor_apply import MODES, Measurement, measure, open_server, server_throughput
from harness import (
    BENCH_DIR,
    Unavailable,
    apply_command,
    bench_env,
    peak_rss_mib,
    run_checked,
    tool_command,
    wall_time,
)
from make_repo import build_state, make_repo
from watch_latency import describe, watch_latencies

HEAVY = ("httpx", "jsonschema", "jinja2", "watchfiles")
CONCURRENCY = 32


@dataclass(frozen=True)
class Sizes:
    plan_runs: int
    plan_files: int
    apply_runs: int
    apply_files: int
    repeat: int
    watch_timeout: float


FULL = Sizes(plan_runs=10_000, plan_files=500, apply_runs=1_000, apply_files=50, repeat=5, watch_timeout=300)
QUICK = Sizes(plan_runs=50, plan_files=5, apply_runs=20, apply_files=2, repeat=1, watch_timeout=60)


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


def apply_once(repo: Path, runs: int, server: str) -> float:
    """Throughput of one `intuned-runs apply` of every run of `repo`, from an empty state."""
    shutil.rmtree(repo / ".intuned-runs", ignore_errors=True)
    with open_server(server) as srv:
        run_checked(apply_command(srv.url, runs, CONCURRENCY), cwd=repo, env=bench_env())
        return server_throughput(srv, runs)


def bench_apply(sizes: Sizes, repo: Path, server: str) -> list[Row]:
    n = sizes.apply_runs
    name = f"apply: {n:,} runs, concurrency {CONCURRENCY}"
    target = "≥ 0.8× floor"
    floors: dict[str, list[Measurement]] = {mode: [] for mode in MODES}
    applies: list[float] = []
    apply_error = None
    try:
        # Rounds alternate floors and apply so that a change in machine load hits all alike.
        for i in range(sizes.repeat):
            progress(f"apply: floor loops and intuned-runs apply, round {i + 1} of {sizes.repeat}")
            for mode in MODES:
                floors[mode].append(measure(mode, n, CONCURRENCY, server=server))
            if apply_error is None:
                try:
                    applies.append(apply_once(repo, n, server))
                except Unavailable as e:
                    apply_error = e
        best = {mode: max(rounds, key=lambda m: m.throughput) for mode, rounds in floors.items()}
        faster = max(best, key=lambda mode: best[mode].throughput)
        progress("apply: emulator capacity, 2 client processes at once")
        capacity = max(
            measure(faster, n, CONCURRENCY, clients=2, server=server).throughput for _ in range(sizes.repeat)
        )
    except Unavailable as e:
        reason = f"n/a: {e}"
        capacity_na = Row("emulator capacity", "n/a", verdict=reason, informational=True)
        return [Row(name, "n/a", target=target, verdict=reason), capacity_na]
    floor = best[faster].throughput
    others = "; ".join(f"{mode} {best[mode].throughput:.0f}" for mode in MODES if mode != faster)
    floor_text = f"{floor:.0f} runs/s ({faster}; {others})"
    busy = best[faster].server_busy
    capacity_row = Row(
        f"emulator capacity: 2 {faster} clients × {CONCURRENCY} in flight",
        f"{capacity:.0f} runs/s; busy {busy:.0%} of one core during the {faster} floor",
        ratio=f"{capacity / floor:.2f}× floor",
        target="not the bottleneck",
        verdict="ok" if busy < 0.8 else "emulator may limit the floor",
        informational=True,
    )
    if apply_error is not None:
        return [Row(name, "n/a", floor_text, target=target, verdict=f"n/a: {apply_error}"), capacity_row]
    figure = max(applies)
    ratio = figure / floor
    return [
        Row(name, f"{figure:.0f} runs/s", floor_text, f"{ratio:.2f}×", target=target, verdict=verdict(ratio >= 0.8)),
        capacity_row,
    ]


def imported_heavy_modules() -> list[str]:
    """Which of HEAVY `python3 -m intuned_runs --version` imports, from `-X importtime`."""
    proc = run_checked([sys.executable, "-X", "importtime", "-m", "intuned_runs", "--version"], env=bench_env())
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
        heavy = imported_heavy_modules()
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
    with tempfile.TemporaryDirectory(prefix="intuned-runs-bench-") as tmp:
        work = args.workdir or Path(tmp)
        try:
            plan_repo = make_repo(sizes.plan_runs, sizes.plan_files, work / "plan")
            apply_repo = make_repo(sizes.apply_runs, sizes.apply_files, work / "apply")
        except ValueError as e:
            print(f"run: {e}", file=sys.stderr)
            return 1
        startup = bench_startup(sizes)
        apply_rows = bench_apply(sizes, apply_repo, args.server)
        plan = bench_plan(sizes, plan_repo, args.server)
        watch = bench_watch(sizes, plan_repo)
    rows = [plan, watch, *apply_rows, startup]
    print(render_table(rows))
    print()
    print(caption(sizes, args.quick))
    missed = [r for r in rows if r.verdict != "pass" and not r.informational]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
