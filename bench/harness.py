"""Shared plumbing of the benchmarks (docs/performance.md): how to start the tool, time a fresh process, read its
peak memory, and the fixed identities (workspace, API key, secret) every bench script uses.

Not a benchmark itself; imported by `make_repo.py`, `floor.py`, `floor_apply.py` and `run.py`, which all
run as scripts from this folder (so this folder is first on `sys.path`). It never imports `intuned_runs`:
the tool is always measured as the command a user runs.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
SCHEMA_PATH = PROJECT_DIR / "intuned_runs" / "schemas" / "run-start.schema.json"

WORKSPACE_ID = "6f1d3c2a-8b4e-4f5a-9c7d-1e2f3a4b5c6d"
API_KEY = "k"
PROJECT = "bench"
SECRET_NAME = "BENCH_PROXY_URL"
SECRET_VALUE = "http://bench:bench-proxy-password@proxy.example.com:3128"

# Variables that would redirect or reconfigure the tool behind the benchmark's back.
_FOREIGN_ENV = ("INTUNED_WORKSPACE_ID", "INTUNED_BASE_URL", "INTUNED_RUNS_ENV", "INTUNED_API_KEY")
_MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_RSS_PROBE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


class Unavailable(Exception):
    """A measurement could not be taken (command missing, failed, or not implemented yet)."""


def tool_command() -> list[str]:
    """The `intuned-runs` console script of this interpreter, else `python3 -m intuned_runs`.

    Found beside `sys.executable` first so that no version-manager shim (pyenv's is a bash script)
    adds its own start-up to the figure.
    """
    script = Path(sys.executable).parent / "intuned-runs"
    if script.is_file():
        return [str(script)]
    found = shutil.which("intuned-runs")
    return [found] if found else [sys.executable, "-m", "intuned_runs"]


def precompile() -> None:
    """Byte-compile the package once, as `pip install` does for a user: with PYTHONDONTWRITEBYTECODE set (as
    on some CI machines) an editable checkout would compile every module again at each start, and a
    start-up figure would time the compiler instead of the tool."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(PROJECT_DIR / "intuned_runs")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        check=False,
    )


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of every measured process: the API key and the one secret set, nothing foreign."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env.update(INTUNED_API_KEY=API_KEY, NO_COLOR="1", **{SECRET_NAME: SECRET_VALUE})
    env.update(extra)
    return env


def run_checked(
    cmd: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` to completion; raise Unavailable naming the command and its last stderr line on failure."""
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"{_short(cmd)}: {e}") from e
    if proc.returncode != 0:
        raise Unavailable(f"{_short(cmd)}: exit {proc.returncode}: {last_line(proc.stderr or proc.stdout)}")
    return proc


def wall_time(cmd: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> float:
    """Wall time in seconds of one fresh process running `cmd` to a successful exit."""
    start = time.perf_counter()
    run_checked(cmd, cwd=cwd, env=env)
    return time.perf_counter() - start


def peak_rss_mib(cmd: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> float:
    """Peak resident memory of one run of `cmd`, from `/usr/bin/time -v` when present (docs/performance.md).

    The fallback runs `cmd` under a fresh Python parent, so RUSAGE_CHILDREN covers that one child only.
    """
    if Path("/usr/bin/time").is_file():
        proc = run_checked(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env)
        match = _MAX_RSS.search(proc.stderr)
        if match:
            return int(match.group(1)) / 1024
    proc = run_checked([sys.executable, "-c", _RSS_PROBE, *cmd], cwd=cwd, env=env)
    return int(proc.stdout.strip().splitlines()[-1]) / 1024  # Linux reports ru_maxrss in KiB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError as e:
            if time.monotonic() > deadline:
                raise Unavailable(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s") from e
            time.sleep(0.05)


def apply_command(base_url: str, runs: int, concurrency: int = 32) -> list[str]:
    """`intuned-runs apply` as the benchmark runs it: no prompt, every run allowed, loopback server."""
    return [
        *tool_command(),
        "apply",
        "--yes",
        "--concurrency",
        str(concurrency),
        "--max-submit",
        str(runs),
        "--base-url",
        base_url,
        "--workspace-id",
        WORKSPACE_ID,
    ]


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(no output)"


def _short(cmd: Sequence[str]) -> str:
    words = [Path(cmd[0]).name, *cmd[1:3]]
    return " ".join(words)
