"""Canary (docs/secrets.md): secret values set in the environment, and the API key, reach the sent
request and nothing else — not apply's output (text, --json, --debug), the state file, the journal, a
saved plan, nor the message of a failing HTTP call, even from a server that echoes the body back."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import (
    API_KEY,
    BODY_HOURLY,
    BODY_ORDERS,
    SECRETS,
    CliResult,
    EmulatorProcess,
    Repo,
    bodies,
    cli_command,
    remote,
    standard_env,
    wait_until,
)

CANARIES = [*SECRETS.values(), API_KEY]
# The distinctive part of each value: any 6 characters of it in a row is a leak (a value cut in the
# middle, e.g. by a truncated message, escapes a redactor that masks whole values only).
CORES = ["hook-T0ken-4f9c2a", "Pr0xyPass-81d3", "key-7Hq2Zr9"]
PARTS = sorted({core[i : i + 6] for core in CORES for i in range(len(core) - 5)})


def leaks(text: str) -> list[str]:
    found = []
    for value in CANARIES:
        forms = {
            value,
            json.dumps(value)[1:-1],
            quote(value, safe=""),
            quote_plus(value),
            base64.b64encode(value.encode()).decode().rstrip("="),
        }
        found += [form for form in forms if form in text]
    found += [part for part in PARTS if part in text]
    return found


def everything(result: CliResult) -> str:
    return result.out + result.err


def test_apply_output_state_and_saved_plan_hold_no_secret(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    plan_file = user_repo.root / "plan.json"
    saved = user_repo.cli("plan", "--out", str(plan_file), "-v", *remote(emulator))
    text = user_repo.cli("apply", str(plan_file), "--debug", "-v", *remote(emulator))
    assert text.code == 0, text.err
    assert "debug: → POST" in text.err
    as_json = user_repo.cli("apply", "--yes", "--json", "--debug", *remote(emulator))
    assert as_json.code == 0
    rendered = user_repo.cli("plan", "--json", "-v")
    shown = user_repo.cli("state", "show", "shop/hourly")
    listed = user_repo.cli("state", "list", "--json")
    status = user_repo.cli("status", "--json", "--debug", *remote(emulator))
    for result in (saved, text, as_json, rendered, shown, listed, status):
        assert leaks(everything(result)) == []
    assert leaks(plan_file.read_text(encoding="utf-8")) == []
    assert leaks(user_repo.state_path.read_text(encoding="utf-8")) == []
    # The secrets did reach the one place they belong: the bodies sent.
    assert ("shop", BODY_HOURLY) in bodies(emulator)
    assert ("portal", BODY_ORDERS) in bodies(emulator)


class _Echo(BaseHTTPRequestHandler):
    """A hostile API: answers every start with an error quoting the request body and the API key.

    `offset`: when set, the answer is plain text padded so that the HOOK_TOKEN value starts at that
    character — across the point where a long message or a long debug line gets cut.
    """

    status = 400
    offset: int | None = None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        key = self.headers.get("x-api-key", "")
        if self.offset is None:
            payload = json.dumps(
                {
                    "code": "INVALID_REQUEST",
                    "category": "user",
                    "message": f"Invalid body {body} for key {key}",
                    "details": [{"path": "sink.headers.Authorization", "message": f"{body} is not allowed"}],
                }
            )
            kind = "application/json"
        else:
            text = f"upstream rejected {body} (key {key})"
            pad = self.offset - text.index(SECRETS["HOOK_TOKEN"])
            payload, kind = "x" * pad + text, "text/plain"
        data = payload.encode()
        self.send_response(self.status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


ECHOES = [
    # (status, offset, outcome symbol): a JSON message quoting everything; a text answer whose secret
    # straddles the 200-character cut of messages (500: unknown, stored in state); one whose secret
    # straddles the 500-character cut of --debug response lines.
    (400, None, "✗"),
    (500, 188, "?"),
    (400, 488, "✗"),
]


@pytest.fixture(params=ECHOES, ids=["400-json-echo", "500-echo-cut-in-message", "400-echo-cut-in-debug-log"])
def echo(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    status, offset, symbol = request.param
    handler = type("Echo", (_Echo,), {"status": status, "offset": offset})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", symbol
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_error_messages_of_failing_calls_hold_no_secret(user_repo: Repo, echo: tuple[str, str]) -> None:
    url, symbol = echo
    user_repo.standard()
    text = user_repo.cli("apply", "--yes", "--debug", "--select", "hourly", *remote(url))
    assert text.code == 1
    [line] = [line for line in text.out_lines if line.startswith(symbol + " shop/hourly  ")]
    assert "debug: ← " in text.err
    assert leaks(everything(text)) == []
    assert "***" in line or "***" in text.err  # the echo was there, and was masked
    as_json = user_repo.cli(
        "apply", "--yes", "--json", "--debug", "--retry-unknown", "--select", "hourly", *remote(url)
    )
    assert as_json.code == 1
    assert as_json.json()["runs"][0]["error"]["message"]
    assert leaks(everything(as_json)) == []
    if user_repo.state_path.exists():  # an unknown outcome's reason is stored, and shown by later plans
        assert leaks(user_repo.state_path.read_text(encoding="utf-8")) == []
    assert leaks(everything(user_repo.cli("plan"))) == []
    assert leaks(everything(user_repo.cli("state", "list"))) == []


def test_the_journal_of_a_killed_apply_holds_no_secret(user_repo: Repo, tmp_path: Path) -> None:
    user_repo.standard()
    with EmulatorProcess(tmp_path / "received.jsonl", latency_ms=2000) as emu:
        apply = subprocess.Popen(
            [*cli_command(), "-C", str(user_repo.root), "apply", "--yes", *remote(emu.url)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=standard_env(),
        )
        try:
            wait_until(lambda: len(emu.records()) >= 3, timeout=30, what="every request to be in flight")
        finally:
            apply.send_signal(signal.SIGKILL)
            apply.wait(timeout=10)
        sent = [r["body"] for r in emu.records()]
    assert BODY_HOURLY in sent and BODY_ORDERS in sent  # the real values went out
    journal = user_repo.journal_path.read_text(encoding="utf-8")
    assert "(secret:HOOK_TOKEN)" in journal and "(secret:PROXY_URL)" in journal
    assert leaks(journal) == []
    plan = user_repo.cli("plan")
    assert plan.out_lines[-1] == (
        "Plan: 0 to submit (0 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 manual, 0 to forget, 3 blocked."
    )
    assert leaks(everything(plan)) == []
