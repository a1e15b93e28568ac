"""`intuned-runs emulator` (docs/emulator.md): serve the emulated Run API on loopback until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable

from intuned_runs.emulator.app import FINAL_OUTCOMES
from intuned_runs.emulator.server import Emulator
from intuned_runs.errors import EXIT_OK, UsageError
from intuned_runs.report.output import Output


def parse_fail(text: str) -> tuple[int, float]:
    """`"429:0.1"` -> `(429, 0.1)`: a status answered to that share of start requests."""
    status_text, sep, rate_text = text.partition(":")
    try:
        status, rate = int(status_text), float(rate_text)
    except ValueError:
        status, rate = 0, -1.0
    if not sep or not 400 <= status <= 599 or not 0.0 <= rate <= 1.0:
        raise UsageError(f"--fail {text!r}: expected STATUS:RATE with a 4xx/5xx status and 0 <= RATE <= 1")
    return status, rate


def parse_result(text: str) -> dict[str, float]:
    """`"failed:0.2,canceled:0.1"` -> `{"failed": 0.2, "canceled": 0.1}`."""
    rates: dict[str, float] = {}
    for item in text.split(","):
        name, sep, rate_text = item.strip().partition(":")
        try:
            rate = float(rate_text)
        except ValueError:
            rate = -1.0
        if not sep or name not in FINAL_OUTCOMES or name in rates or not 0.0 <= rate <= 1.0:
            raise UsageError(f"--result {text!r}: expected failed:RATE,canceled:RATE with each 0 <= RATE <= 1")
        rates[name] = rate
    if sum(rates.values()) > 1.0:
        raise UsageError(f"--result {text!r}: the rates add up to more than 1")
    return rates


def emulator_from(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> Emulator:
    return Emulator(
        log=log,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        complete_after=args.complete_after,
        latency_ms=args.latency,
        fail=[parse_fail(part) for item in args.fail or [] for part in item.split(",") if part],
        result_rates=parse_result(args.result) if args.result else None,
        seed=args.seed,
    )


def serve(
    args: argparse.Namespace,
    stop: threading.Event,
    announce: Callable[[str], None],
    log: Callable[[str], None] | None = None,
) -> int:
    """Serve until `stop` is set; `log` gets one line per request (-v)."""
    emulator = emulator_from(args, log).start()
    announce(f"Emulator listening on {emulator.url} (workspace ids: any UUID)")
    emulator.serve_forever(stop)
    return EXIT_OK


def run(args: argparse.Namespace, out: Output) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return serve(args, stop, out.err, out.err if out.verbose else None)
