"""The watch figure of SPEC §12, measured from outside: `intuned-runs watch` on a generated repository,
time from writing one changed run file to the end of the plan summary line the watcher then prints.

The spec's figure starts when the watcher receives the batch; this one starts when the file is written,
so the file-event delivery (and any debounce) is included: an upper bound. Rounds alternate between the
edited and the original text of run file 0 (`make_repo.edit_one_file`), so each round is one real change.

    python3 bench/watch_latency.py DIR N FILES [--rounds 5]    # DIR made by make_repo.py N FILES DIR
"""

from __future__ import annotations

import argparse
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from harness import Unavailable, bench_env, last_line, tool_command
from make_repo import edit_one_file

SUMMARY_PREFIXES = ("Plan:", "No changes.")
SETTLE = 0.3  # seconds between rounds, so two edits never fall into one batch

Line = tuple[float, str] | None  # (time.monotonic() when read, text); None at end of output


def _read_lines(stream: IO[str], lines: queue.Queue[Line]) -> None:
    for text in stream:
        lines.put((time.monotonic(), text))
    lines.put(None)


def _next_summary(lines: queue.Queue[Line], after: float, timeout: float, stderr: Path) -> float:
    """Time at which the first summary line read after `after` arrived."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            item = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise Unavailable(f"watch printed no plan summary within {timeout:.0f} s") from None
        if item is None:
            detail = last_line(stderr.read_text(encoding="utf-8", errors="replace"))
            raise Unavailable(f"watch exited: {detail}")
        at, text = item
        if at >= after and text.lstrip().startswith(SUMMARY_PREFIXES):
            return at


def watch_latencies(
    repo: Path, n: int, files: int, *, rounds: int = 5, start_timeout: float = 300, round_timeout: float = 30
) -> list[float]:
    """Seconds from each one-file edit to the watcher's next plan summary line, one per round."""
    with tempfile.TemporaryDirectory(prefix="intuned-runs-watch-") as tmp:
        stderr = Path(tmp) / "stderr"
        with stderr.open("wb") as err:
            proc = subprocess.Popen(
                [*tool_command(), "watch"],
                cwd=repo,
                env=bench_env(PYTHONUNBUFFERED="1"),  # a pipe is block-buffered otherwise
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert proc.stdout is not None
        lines: queue.Queue[Line] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            _next_summary(lines, 0.0, start_timeout, stderr)
            latencies = []
            for i in range(rounds):
                time.sleep(SETTLE)
                edit_one_file(repo, n, files, edited=i % 2 == 0)
                written = time.monotonic()
                latencies.append(_next_summary(lines, written, round_timeout, stderr) - written)
            if rounds % 2:
                edit_one_file(repo, n, files, edited=False)  # leave the repository as generated
            return latencies
        finally:
            _stop(proc)
            reader.join(timeout=5)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a user stops the watcher; kill it if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, metavar="DIR", help="repository made by make_repo.py")
    parser.add_argument("n", type=int, metavar="N", help="runs it was made with")
    parser.add_argument("files", type=int, metavar="FILES", help="files it was made with")
    parser.add_argument("--rounds", type=int, default=5, help="edits to time (default 5)")
    args = parser.parse_args(argv)
    try:
        latencies = watch_latencies(args.dir, args.n, args.files, rounds=args.rounds)
    except Unavailable as e:
        print(f"watch_latency: {e}", file=sys.stderr)
        return 1
    figures = ", ".join(f"{s * 1000:.0f}" for s in latencies)
    print(f"watch: best {min(latencies) * 1000:.0f} ms over {len(latencies)} edits ({figures} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
