"""The apply floor of docs/performance.md: two bare loops posting the bodies `intuned-runs apply` would send.

(a) one `httpx.AsyncClient` with 32 requests in flight (a semaphore), and (b) one `httpx.Client` shared by
32 threads (a ThreadPoolExecutor), each posting N bodies (`make_repo.request_body`) to
`{url}/{workspace}/projects/bench/run/start` with `x-api-key: k`. Both pools hold as many keep-alive
connections as requests in flight, so the floor is the fastest a plain client gets. Throughput is runs ÷
seconds from the first request the server receives to the last, read from the server's own records, so
client start-up is excluded exactly as it is for apply. The emulator's capacity is measured too: several
client processes of the faster kind at once, to show the server is not what limits the figures.

The server (`intuned_runs.emulator.server.Emulator`) runs in this process and each client in a fresh one, as
`intuned-runs apply` does, so client and server never share an interpreter lock.

    python3 bench/floor_apply.py [--runs 1000] [--concurrency 32] [--repeat 5]
    python3 bench/floor_apply.py --url URL --mode async|threads   # client only: post, print a JSON line

`--server standin` swaps in `standin_server.py` to check this script without the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import httpx
from harness import API_KEY, PROJECT, WORKSPACE_ID, Unavailable, last_line
from make_repo import request_body

HEADERS = {"x-api-key": API_KEY}
Body = dict[str, Any]


class Server(Protocol):
    """What the benchmarks need of `intuned_runs.emulator.server.Emulator` (and of the stand-in)."""

    @property
    def url(self) -> str: ...
    @property
    def received(self) -> Sequence[Any]: ...  # records with `.at`, a time.monotonic() value
    @property
    def first_at(self) -> float | None: ...
    @property
    def last_at(self) -> float | None: ...


def start_url(base_url: str, workspace: str = WORKSPACE_ID) -> str:
    return f"{base_url}/{workspace}/projects/{PROJECT}/run/start"


def _limits(concurrency: int) -> httpx.Limits:
    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


def post_async(url: str, bodies: Sequence[Body], concurrency: int) -> Counter[int]:
    """(a) One AsyncClient, `concurrency` requests in flight; returns the count of each status."""

    async def post_all() -> list[int]:
        in_flight = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(headers=HEADERS, limits=_limits(concurrency), timeout=60) as client:

            async def post(body: Body) -> int:
                async with in_flight:
                    return (await client.post(url, json=body)).status_code

            return await asyncio.gather(*(post(body) for body in bodies))

    return Counter(asyncio.run(post_all()))


def post_threads(url: str, bodies: Sequence[Body], concurrency: int) -> Counter[int]:
    """(b) One Client shared by `concurrency` threads; returns the count of each status."""
    with (
        httpx.Client(headers=HEADERS, limits=_limits(concurrency), timeout=60) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        return Counter(pool.map(lambda body: client.post(url, json=body).status_code, bodies))


MODES: dict[str, Callable[[str, Sequence[Body], int], Counter[int]]] = {
    "async": post_async,
    "threads": post_threads,
}


@contextmanager
def open_server(kind: str = "emulator", latency_ms: int = 0) -> Iterator[Server]:
    """A fresh server in this process: the project's emulator, or the stdlib stand-in; with `latency_ms`,
    each start is answered that long after it arrives (a real Run API's latency)."""
    if kind == "standin":
        from standin_server import StandinServer

        with StandinServer(complete_after=0, latency_ms=latency_ms) as standin:
            yield standin
        return
    try:
        from intuned_runs.emulator.server import Emulator  # type: ignore[import-not-found,unused-ignore]
    except ImportError as e:
        raise Unavailable(f"intuned_runs.emulator is not importable: {e}") from e
    with Emulator(complete_after=0, latency_ms=latency_ms) as emulator:
        yield emulator


def server_throughput(server: Server, expected: int) -> float:
    """Runs per second between the first and the last request the server received."""
    count = len(server.received)
    if count != expected:
        raise Unavailable(f"server received {count} requests, expected {expected}")
    if server.first_at is None or server.last_at is None or server.last_at <= server.first_at:
        raise Unavailable("too few requests to time")
    return count / (server.last_at - server.first_at)


def client_command(url: str, mode: str, runs: int, concurrency: int) -> list[str]:
    return [
        *(sys.executable, __file__, "--url", url, "--mode", mode),
        *("--runs", str(runs), "--concurrency", str(concurrency)),
    ]


@dataclass(frozen=True)
class Measurement:
    throughput: float  # runs per second, first to last request the server received
    server_busy: float  # CPU seconds of this process (the server only) per wall second while clients ran


def measure(
    mode: str, runs: int, concurrency: int, *, clients: int = 1, server: str = "emulator", latency_ms: int = 0
) -> Measurement:
    """Server-side throughput of `clients` fresh client processes of `mode`, each posting `runs` bodies.

    Each client says `ready` once its imports are done and its bodies built, then waits for `go`, so
    several clients start together and none of their start-up falls inside the timed window. While they
    run, this process does nothing but serve, so its CPU time shows how close the server is to saturation.
    """
    with open_server(server, latency_ms) as srv:
        cmd = [*client_command(srv.url, mode, runs, concurrency), "--wait-for-go"]
        procs = [
            subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(clients)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    proc.wait(timeout=60)
                    raise Unavailable(f"floor client {mode}: exit {proc.returncode} before it was ready")
            cpu, wall = time.process_time(), time.perf_counter()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            for proc in procs:
                out, err = proc.communicate(timeout=600)
                if proc.returncode != 0:
                    raise Unavailable(f"floor client {mode}: exit {proc.returncode}: {last_line(err or out)}")
            busy = (time.process_time() - cpu) / (time.perf_counter() - wall)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return Measurement(server_throughput(srv, runs * clients), busy)


def best(measure_once: Callable[[], Measurement], repeat: int) -> Measurement:
    """The round of highest throughput."""
    return max((measure_once() for _ in range(repeat)), key=lambda m: m.throughput)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="bodies per client (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--repeat", type=int, default=5, help="best of this many (default 5)")
    parser.add_argument("--clients", type=int, default=2, help="client processes for the capacity figure")
    parser.add_argument("--server", choices=("emulator", "standin"), default="emulator")
    parser.add_argument("--url", help="client only: post to this server and print a JSON line")
    parser.add_argument("--mode", choices=sorted(MODES), default="async", help="client only: which loop")
    parser.add_argument("--wait-for-go", action="store_true", help="client only: print ready, await go")
    args = parser.parse_args(argv)
    if args.url:
        bodies = [request_body(i) for i in range(args.runs)]
        if args.wait_for_go:
            print("ready", flush=True)
            sys.stdin.readline()
        start = time.perf_counter()
        statuses = MODES[args.mode](start_url(args.url), bodies, args.concurrency)
        seconds = time.perf_counter() - start
        print(json.dumps({"mode": args.mode, "runs": args.runs, "client_seconds": seconds, "statuses": statuses}))
        return 0 if set(statuses) == {201} else 1
    try:
        figures = {
            mode: best(partial(measure, mode, args.runs, args.concurrency, server=args.server), args.repeat)
            for mode in MODES
        }
        faster = max(figures, key=lambda mode: figures[mode].throughput)
        capacity = best(
            partial(measure, faster, args.runs, args.concurrency, clients=args.clients, server=args.server),
            args.repeat,
        )
    except Unavailable as e:
        print(f"floor_apply: {e}", file=sys.stderr)
        return 1
    for mode, label in (("async", "one AsyncClient"), ("threads", "one Client, threads")):
        m = figures[mode]
        detail = f"{label}, {args.concurrency} in flight; emulator busy {m.server_busy:.0%}"
        print(f"{mode}: {m.throughput:.0f} runs/s ({detail})")
    print(f"emulator capacity: {capacity.throughput:.0f} runs/s ({args.clients} {faster} clients at once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
