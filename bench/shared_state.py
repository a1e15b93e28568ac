"""The shared-state benchmark (docs/performance.md): `intuned-runs apply --yes --concurrency 32` of 1,000 runs
with a postgresql state against the same apply with a file state, as the median of alternating pairs;
target ≥ 0.8×. The PostgreSQL server is a throwaway cluster started the way the tests start it
(tests/services.py: the server installed on the machine, fsync off, 127.0.0.1).

    python3 bench/shared_state.py            # this row alone, full size
    python3 bench/shared_state.py --quick    # tiny, a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from floor_apply import open_server, server_throughput
from harness import PROJECT_DIR, Unavailable, apply_command, bench_env, run_checked

PAIRS = 3
TARGET = 0.8


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster (tests/services.py); Unavailable when it cannot start."""
    sys.path.insert(0, str(PROJECT_DIR))
    try:
        import pytest

        from tests.services import postgres_cluster
    except ImportError as e:
        raise Unavailable(f"the test services are not importable: {e} (pip install -e '.[test]')") from e
    try:
        with postgres_cluster() as server:
            yield server
    except (pytest.skip.Exception, pytest.fail.Exception) as e:  # it says what to install
        raise Unavailable(str(e.msg)) from None


def apply_throughput(repo: Path, runs: int, concurrency: int, server: str, state: list[str]) -> float:
    """Runs per second of one apply of every run of `repo` from an empty state (`state`: --state flags)."""
    shutil.rmtree(repo / ".intuned-runs", ignore_errors=True)
    with open_server(server) as srv:
        run_checked([*apply_command(srv.url, runs, concurrency), *state], cwd=repo, env=bench_env())
        return server_throughput(srv, runs)


def bench_shared(runs: int, concurrency: int, repo: Path, server: str, row: Callable[..., Any]) -> Any:
    name = (
        f"shared state: apply of {runs:,} runs, concurrency {concurrency}, postgresql vs file (median of {PAIRS} pairs)"
    )
    target = f"≥ {TARGET}× file state"
    try:
        with postgres() as pg:
            pairs = []
            for i in range(PAIRS):
                print(f"bench: shared state: file and postgresql apply, pair {i + 1} of {PAIRS}", file=sys.stderr)
                on_file = apply_throughput(repo, runs, concurrency, server, [])
                on_pg = apply_throughput(repo, runs, concurrency, server, ["--state", pg.url(f"bench-{i}")])
                pairs.append((on_file, on_pg))
    except Unavailable as e:
        return row(name, "n/a", target=target, verdict=f"n/a: {e}")
    ratios = [on_pg / on_file for on_file, on_pg in pairs]
    middle = sorted(range(PAIRS), key=lambda i: ratios[i])[PAIRS // 2]
    on_file, on_pg = pairs[middle]
    ratio = statistics.median(ratios)
    return row(
        name,
        f"{on_pg:.0f} runs/s (pair ratios {', '.join(f'{r:.2f}' for r in ratios)})",
        f"{on_file:.0f} runs/s (file state)",
        f"{ratio:.2f}×",
        target=target,
        verdict="pass" if ratio >= TARGET else "FAIL",
    )


def main(argv: list[str] | None = None) -> int:
    from make_repo import make_repo

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 runs: a smoke run, not a measurement")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the target is met")
    args = parser.parse_args(argv)
    runs, files = (20, 2) if args.quick else (1_000, 50)
    with tempfile.TemporaryDirectory(prefix="intuned-runs-bench-") as tmp:
        repo = make_repo(runs, files, Path(tmp) / "shared")
        found = bench_shared(runs, 32, repo, "emulator", lambda *cells, **kw: (cells, kw))
    cells, extra = found
    print(" | ".join([*cells, extra.get("target", ""), extra.get("verdict", "")]))
    return 1 if args.check and extra.get("verdict") != "pass" else 0


if __name__ == "__main__":
    sys.exit(main())
