"""The watch figure of docs/performance.md: `intuned-runs watch -v` on a generated repository, one run file edited
per round, two figures per edit.

- **in tool** (judged against the spec's 100 ms): the `planned in N.N ms` line the watcher prints on
  stderr with `-v` after each batch's plan output, its own measurement from receiving the batch to the
  end of the plan output, which is exactly the span the spec names.
- **file write → summary line** (information): measured from outside, from writing the file to reading
  the plan summary line on stdout, so it also holds the file-event delivery and the watcher's 50 ms
  debounce: an upper bound of the in-tool figure.

Rounds alternate between the edited and the original text of run file 0 (`make_repo.edit_one_file`), so
each round is one real change; the repository is left as generated.

    python3 bench/watch_latency.py DIR N FILES [--rounds 5]    # DIR made by make_repo.py N FILES DIR
"""

from __future__ import annotations

import argparse
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness import Unavailable, bench_env, last_line, tool_command
from make_repo import edit_one_file

SUMMARY_PREFIXES = ("Plan:", "No changes.")
PLANNED_IN = re.compile(r"^planned in (\d+(?:\.\d+)?) ms$")
SETTLE = 0.3  # seconds between rounds, so two edits never fall into one batch

Line = tuple[float, str] | None  # (time.monotonic() when read, text); None at end of output


@dataclass(frozen=True)
class Edit:
    """One edit's figures, in seconds."""

    in_tool: float  # the watcher's `planned in`: batch received → end of plan output
    external: float  # file written → plan summary line read on stdout


def _read_lines(stream: IO[str], lines: queue.Queue[Line], keep: deque[str] | None = None) -> None:
    for text in stream:
        lines.put((time.monotonic(), text))
        if keep is not None:
            keep.append(text)
    lines.put(None)


def _next_line(
    lines: queue.Queue[Line], after: float, deadline: float, match: Callable[[str], bool], what: str, stderr: deque[str]
) -> tuple[float, str]:
    """The first line read at or after `after` for which `match(text)` holds: (time read, text)."""
    while True:
        try:
            item = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise Unavailable(f"watch printed no {what} in time; stderr: {last_line(''.join(stderr))}") from None
        if item is None:
            raise Unavailable(f"watch exited: {last_line(''.join(stderr))}")
        at, text = item
        if at >= after and match(text):
            return at, text


def _is_summary(text: str) -> bool:
    return text.lstrip().startswith(SUMMARY_PREFIXES)


def _is_timing(text: str) -> bool:
    return PLANNED_IN.match(text.strip()) is not None


def _drain(lines: queue.Queue[Line]) -> None:
    """Drop what was already read (an earlier round's output); keep the end-of-output marker."""
    while True:
        try:
            item = lines.get_nowait()
        except queue.Empty:
            return
        if item is None:
            lines.put(None)
            return


def watch_latencies(
    repo: Path, n: int, files: int, *, rounds: int = 5, start_timeout: float = 300, round_timeout: float = 30
) -> list[Edit]:
    """Both figures of each one-file edit, one `Edit` per round."""
    proc = subprocess.Popen(
        [*tool_command(), "watch", "-v"],
        cwd=repo,
        env=bench_env(PYTHONUNBUFFERED="1"),  # a pipe is block-buffered otherwise
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out: queue.Queue[Line] = queue.Queue()
    err: queue.Queue[Line] = queue.Queue()
    err_text: deque[str] = deque(maxlen=50)  # the last stderr lines, to say why the watcher stopped
    readers = [
        threading.Thread(target=_read_lines, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_read_lines, args=(proc.stderr, err, err_text), daemon=True),
    ]
    for reader in readers:
        reader.start()
    edited = False
    try:
        # The first plan: its summary, then its timing line (printed after the plan output).
        deadline = time.monotonic() + start_timeout
        _next_line(out, 0.0, deadline, _is_summary, "plan summary", err_text)
        _next_line(err, 0.0, deadline, _is_timing, "`planned in` line", err_text)
        edits = []
        for i in range(rounds):
            time.sleep(SETTLE)
            _drain(out)
            _drain(err)
            edited = i % 2 == 0
            edit_one_file(repo, n, files, edited=edited)
            written = time.monotonic()
            deadline = written + round_timeout
            summary_at, _ = _next_line(out, written, deadline, _is_summary, "plan summary", err_text)
            _, timing = _next_line(err, written, deadline, _is_timing, "`planned in` line", err_text)
            match = PLANNED_IN.match(timing.strip())
            assert match is not None
            edits.append(Edit(in_tool=float(match.group(1)) / 1000, external=summary_at - written))
        return edits
    finally:
        _stop(proc)
        for reader in readers:
            reader.join(timeout=5)
        if edited:
            edit_one_file(repo, n, files, edited=False)  # leave the repository as generated


def _stop(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a user stops the watcher; kill it if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def describe(seconds: list[float]) -> str:
    """`best B ms, median M ms` of a list of seconds."""
    return f"best {min(seconds) * 1000:.1f} ms, median {statistics.median(seconds) * 1000:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, metavar="DIR", help="repository made by make_repo.py")
    parser.add_argument("n", type=int, metavar="N", help="runs it was made with")
    parser.add_argument("files", type=int, metavar="FILES", help="files it was made with")
    parser.add_argument("--rounds", type=int, default=5, help="edits to time (default 5)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        edits = watch_latencies(args.dir, args.n, args.files, rounds=args.rounds)
    except Unavailable as e:
        print(f"watch_latency: {e}", file=sys.stderr)
        return 1
    for i, edit in enumerate(edits, 1):
        print(f"edit {i}: in tool {edit.in_tool * 1000:.1f} ms; file write → summary {edit.external * 1000:.1f} ms")
    print(f"watch, in tool (batch received → end of plan output): {describe([e.in_tool for e in edits])}")
    print(f"watch, file write → summary line: {describe([e.external for e in edits])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
