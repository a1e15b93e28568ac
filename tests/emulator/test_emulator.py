"""The emulator over real HTTP on 127.0.0.1 (docs/emulator.md)."""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from intuned_runs.commands.emulator import parse_fail, parse_result, serve
from intuned_runs.emulator.app import Received
from intuned_runs.emulator.server import Emulator
from intuned_runs.errors import UsageError

WS = "6f1c9a52-3b7e-4d2a-9c1f-2e8b5d4a7c90"
START = f"/{WS}/projects/shop%2Fpricing/run/start"
BODY: dict[str, Any] = {"api": "products/list", "parameters": {"page": 1}}
KEY = {"x-api-key": "k-123"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def correlation(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def error(status_code: str, category: str, message: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "code": status_code,
        "category": category,
        "message": message,
        "retirable": extra.get("retirable", False),
        "details": extra.get("details", []),
        "correlationId": correlation(n),
    }


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def test_valid_start_answers_201_and_records_the_request(client: httpx.Client) -> None:
    with Emulator(seed=7) as emu:
        response = client.post(emu.url + START, json=BODY, headers=KEY)
        assert emu.url == f"http://127.0.0.1:{emu.port}"
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"runId": "ru_v4FwP0RXH6t99vO2aH10A", "status": "pending"}
    [received] = emu.received
    assert (received.workspace_id, received.project, received.body, received.status) == (
        WS,
        "shop/pricing",
        BODY,
        201,
    )
    assert received.headers["x-api-key"] == "k-123"
    assert received.headers["content-type"] == "application/json"
    assert emu.first_at == emu.last_at == received.at


def test_run_ids_are_21_character_nanoids_and_differ() -> None:
    with Emulator() as emu, httpx.Client(base_url=emu.url) as c:
        ids = [c.post(START, json=BODY, headers=KEY).json()["runId"] for _ in range(20)]
    assert len(set(ids)) == 20
    assert {(i[:3], len(i)) for i in ids} == {("ru_", 24)}


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"parameters": {}}, [{"path": "api", "message": "'api' is a required property"}]),
        (
            {"api": "a", "parameters": [1]},
            [{"path": "parameters", "message": "[1] is not of type 'object'"}],
        ),
        (
            {
                "api": "a",
                "parameters": {},
                "sink": {"type": "s3", "accessKeyId": "A", "secretAccessKey": "S", "region": "eu-west-1"},
            },
            [{"path": "sink.bucket", "message": "'bucket' is a required property"}],
        ),
        (
            {"api": "a", "parameters": {}, "sink": {"type": "ftp", "url": "x"}},
            [{"path": "sink.type", "message": "'ftp' is not one of ['webhook', 's3']"}],
        ),
        (
            {"api": 3, "parameters": {}, "retry": {"maximumAttempts": 0}, "authSession": {"id": 3}},
            [
                {"path": "api", "message": "3 is not of type 'string'"},
                {"path": "authSession.id", "message": "3 is not of type 'string'"},
                {"path": "retry.maximumAttempts", "message": "0 is less than the minimum of 1"},
            ],
        ),
    ],
)
def test_bad_body_answers_400_with_one_detail_per_error(
    client: httpx.Client, body: dict[str, Any], details: list[dict[str, str]]
) -> None:
    with Emulator() as emu:
        response = client.post(emu.url + START, json=body, headers=KEY)
    summary = "; ".join(f"{d['path']}: {d['message']}" for d in details)
    assert response.status_code == 400
    assert response.json() == error("INVALID_REQUEST", "user", f"Invalid request body: {summary}", 1, details=details)
    assert [(r.body, r.status) for r in emu.received] == [(body, 400)]


def test_body_that_is_not_json_answers_400(client: httpx.Client) -> None:
    with Emulator() as emu:
        response = client.post(emu.url + START, content=b"{nope", headers=KEY)
    message = "the body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    assert response.status_code == 400
    assert response.json() == error(
        "INVALID_REQUEST",
        "user",
        f"Invalid request body: {message}",
        1,
        details=[{"path": "", "message": message}],
    )
    assert [(r.body, r.status) for r in emu.received] == [(None, 400)]


def test_format_is_an_annotation_only(client: httpx.Client) -> None:
    with Emulator() as emu:
        response = client.post(emu.url + START, json={**BODY, "proxy": "not a uri"}, headers=KEY)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("api_key", "headers", "message"),
    [
        (None, {}, "Missing API key: send it in the x-api-key header"),
        (None, {"x-api-key": ""}, "Missing API key: send it in the x-api-key header"),
        ("k-secret", {"x-api-key": "k-123"}, "Invalid API key"),
    ],
)
def test_missing_or_wrong_key_answers_401(
    client: httpx.Client, api_key: str | None, headers: dict[str, str], message: str
) -> None:
    with Emulator(api_key=api_key) as emu:
        start = client.post(emu.url + START, json=BODY, headers=headers)
        result = client.get(emu.url + f"/{WS}/projects/shop/run/ru_x/result", headers=headers)
    assert (start.status_code, result.status_code) == (401, 401)
    assert start.json() == error("UNAUTHORIZED", "auth", message, 1)
    assert result.json() == error("UNAUTHORIZED", "auth", message, 2)


def test_the_configured_key_is_accepted(client: httpx.Client) -> None:
    with Emulator(api_key="k-123") as emu:
        assert client.post(emu.url + START, json=BODY, headers=KEY).status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/not-a-uuid/projects/shop/run/start", "Not found: workspace id 'not-a-uuid' is not a UUID"),
        ("POST", f"/{WS}/projects//run/start", "Not found: empty project name"),
        ("GET", "/", "Not found: no route for GET /"),
        ("POST", f"/{WS}/projects/shop/run/stop", f"Not found: no route for POST /{WS}/projects/shop/run/stop"),
        ("POST", f"/x{START}", f"Not found: no route for POST /x{START}"),
    ],
)
def test_unknown_route_or_workspace_answers_404(client: httpx.Client, method: str, path: str, message: str) -> None:
    with Emulator() as emu:
        response = client.request(method, emu.url + path, json=BODY, headers=KEY)
    assert response.status_code == 404
    assert response.json() == error("NOT_FOUND", "user", message, 1)


def test_unknown_run_answers_404_and_run_ids_belong_to_their_project(client: httpx.Client) -> None:
    with Emulator(seed=1) as emu:
        run_id = client.post(emu.url + START, json=BODY, headers=KEY).json()["runId"]
        other = client.get(emu.url + f"/{WS}/projects/shop/run/{run_id}/result", headers=KEY)
        unknown = client.get(emu.url + f"/{WS}/projects/shop%2Fpricing/run/ru_nope/result", headers=KEY)
    assert (other.status_code, unknown.status_code) == (404, 404)
    assert other.json() == error("NOT_FOUND", "user", f"Run '{run_id}' not found in project 'shop'", 1)
    assert unknown.json() == error("NOT_FOUND", "user", "Run 'ru_nope' not found in project 'shop/pricing'", 2)


def test_result_moves_pending_started_completed_on_the_clock(client: httpx.Client) -> None:
    clock = FakeClock()
    body = {"api": "products/list", "parameters": {"page": 2, "tags": ["a"]}, "saveTrace": False}
    with Emulator(complete_after=10, clock=clock) as emu:
        run_id = client.post(emu.url + START, json=body, headers=KEY).json()["runId"]
        result_url = emu.url + f"/{WS}/projects/shop%2Fpricing/run/{run_id}/result"
        seen = []
        for now in (1000.0, 1004.9, 1005.0, 1009.9, 1010.0, 2000.0):
            clock.now = now
            response = client.get(result_url, headers=KEY)
            assert response.status_code == 200
            seen.append(response.json())
    assert seen[:4] == [
        {"runId": run_id, "status": "pending"},
        {"runId": run_id, "status": "pending"},
        {"runId": run_id, "status": "started"},
        {"runId": run_id, "status": "started"},
    ]
    completed = {
        "runId": run_id,
        "status": "completed",
        "result": {"api": "products/list", "parameters": {"page": 2, "tags": ["a"]}},
        "extendedPayloads": [],
    }
    assert seen[4:] == [completed, completed]


def _final_statuses(emu: Emulator, client: httpx.Client, n: int) -> list[dict[str, Any]]:
    ids = [client.post(emu.url + START, json=BODY, headers=KEY).json()["runId"] for _ in range(n)]
    out = []
    for run_id in ids:
        payload = client.get(emu.url + f"/{WS}/projects/shop%2Fpricing/run/{run_id}/result", headers=KEY).json()
        assert payload.pop("runId") == run_id
        out.append(payload)
    return out


def test_failed_and_canceled_rates_are_drawn_with_the_seed(client: httpx.Client) -> None:
    rates = {"failed": 0.3, "canceled": 0.2}
    with Emulator(complete_after=0, result_rates=rates, seed=42) as emu:
        first = _final_statuses(emu, client, 10)
    with Emulator(complete_after=0, result_rates=rates, seed=42) as emu:
        again = _final_statuses(emu, client, 10)
    assert first == again
    assert [p["status"] for p in first] == [
        "failed",
        "completed",
        "canceled",
        "completed",
        "completed",
        "completed",
        "completed",
        "failed",
        "failed",
        "completed",
    ]
    # The official SDK's values (docs/emulator.md, Results): its models accept them (test_sdk.py).
    failed = {
        "status": "failed",
        "message": "The run failed (emulated)",
        "error": {
            "code": "api-attempts-failed",
            "category": "execution",
            "message": "The API failed on every attempt (emulated failure)",
            "retirable": False,
        },
    }
    canceled = {
        "status": "canceled",
        "message": "The run was canceled (emulated)",
        "reason": {"type": "cancelled-user-action", "message": "The run was canceled (emulated)"},
    }
    assert first[0] == failed
    assert first[2] == canceled
    assert first[1] == {
        "status": "completed",
        "result": {"api": "products/list", "parameters": {"page": 1}},
        "extendedPayloads": [],
    }


def test_fault_script_then_normal_answers(client: httpx.Client) -> None:
    with Emulator(script=[503, 429, 201, 500], retry_after="2", seed=5) as emu:
        responses = [client.post(emu.url + START, json=BODY, headers={}) for _ in range(5)]
    assert [r.status_code for r in responses] == [503, 429, 401, 500, 401]
    assert [r.headers.get("retry-after") for r in responses] == ["2", "2", None, None, None]
    assert responses[0].json() == error(
        "SERVICE_UNAVAILABLE", "infrastructure", "Service Unavailable (injected fault)", 1, retirable=True
    )
    assert responses[1].json() == error(
        "RATE_LIMITED", "infrastructure", "Too Many Requests (injected fault)", 2, retirable=True
    )
    assert responses[3].json() == error(
        "INTERNAL_SERVER_ERROR", "infrastructure", "Internal Server Error (injected fault)", 4
    )
    assert [r.status for r in emu.received] == [503, 429, 401, 500, 401]


def test_fault_script_503_429_then_201(client: httpx.Client) -> None:
    with Emulator(script=[503, 429]) as emu:
        codes = [client.post(emu.url + START, json=BODY, headers=KEY).status_code for _ in range(3)]
    assert codes == [503, 429, 201]
    assert [r.body for r in emu.received] == [BODY, BODY, BODY]


def test_fault_rates_are_drawn_with_the_seed(client: httpx.Client) -> None:
    fail = [(429, 0.2), (500, 0.1), (503, 0.2)]
    with Emulator(fail=fail, seed=0) as emu:
        codes = [client.post(emu.url + START, json=BODY, headers=KEY).status_code for _ in range(12)]
    assert codes == [201, 500, 201, 503, 503, 201, 500, 201, 201, 201, 201, 429]
    assert [r.status for r in emu.received] == codes
    with Emulator(fail=[(502, 1.0)]) as emu:
        response = client.post(emu.url + START, json=BODY, headers=KEY)
    assert (response.status_code, response.headers.get("retry-after")) == (502, None)


def test_latency_delays_every_response(client: httpx.Client) -> None:
    with Emulator(latency_ms=60) as emu:
        began = time.monotonic()
        assert client.get(emu.url + "/", headers=KEY).status_code == 404
        elapsed = time.monotonic() - began
    assert 0.06 <= elapsed < 1.0


def test_hang_creates_the_run_before_the_slow_answer(tmp_path: Path) -> None:
    with Emulator(hang_seconds=5, record_file=tmp_path / "rec.jsonl") as emu:
        with httpx.Client(timeout=httpx.Timeout(5, read=0.1)) as c, pytest.raises(httpx.ReadTimeout):
            c.post(emu.url + START, json=BODY, headers=KEY)
        assert [r.status for r in emu.received] == [201]
        assert len(emu._runs) == 1
    # stop() returned although the answer was still sleeping
    line = json.loads((tmp_path / "rec.jsonl").read_text(encoding="utf-8"))
    assert (line["project"], line["body"], line["status"]) == ("shop/pricing", BODY, 201)


def test_record_file_has_one_flushed_line_per_start_request(tmp_path: Path, client: httpx.Client) -> None:
    record = tmp_path / "received.jsonl"
    record.write_text('{"earlier": true}\n', encoding="utf-8")
    with Emulator(record_file=record, script=[429]) as emu:
        client.post(emu.url + START, json=BODY, headers=KEY)
        client.post(emu.url + START, json={"api": "x", "parameters": {}}, headers=KEY)
        client.post(emu.url + START, content=b"[", headers=KEY)
        client.get(emu.url + f"/{WS}/projects/shop/run/ru_x/result", headers=KEY)  # not a start: not recorded
        lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {"earlier": True}
    assert [{k: v for k, v in line.items() if k != "at"} for line in lines[1:]] == [
        {"project": "shop/pricing", "body": BODY, "status": 429},
        {"project": "shop/pricing", "body": {"api": "x", "parameters": {}}, "status": 201},
        {"project": "shop/pricing", "body": None, "status": 400},
    ]
    assert [line["at"] for line in lines[1:]] == [r.at for r in emu.received]
    assert emu.first_at == emu.received[0].at
    assert emu.last_at == emu.received[2].at


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    with Emulator() as emu:
        connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        statuses = []
        for _ in range(3):
            connection.request("POST", START, body=json.dumps(BODY), headers=KEY)
            response = connection.getresponse()
            response.read()
            statuses.append((response.status, response.version, response.will_close))
            sock = connection.sock
        assert connection.sock is sock
        connection.close()
    assert statuses == [(201, 11, False)] * 3


def _raw_exchange(port: int, request: bytes) -> tuple[str, dict[str, str], Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):  # the server closes the connection after a malformed request
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return status_line, headers, json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status_line", "payload"),
    [
        (
            b"BREW / HTTP/1.1\r\nhost: x\r\n\r\n",
            "HTTP/1.1 501 Not Implemented",
            {"code": "NOT_IMPLEMENTED", "category": "infrastructure", "message": "Unsupported method ('BREW')"},
        ),
        (
            f"POST {START} HTTP/1.1\r\nhost: x\r\ncontent-length: ten\r\n\r\n".encode(),
            "HTTP/1.1 400 Bad Request",
            {"code": "INVALID_REQUEST", "category": "user", "message": "Bad Content-Length"},
        ),
        (
            f"POST {START} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".encode(),
            "HTTP/1.1 411 Length Required",
            {
                "code": "LENGTH_REQUIRED",
                "category": "user",
                "message": "Send the request body with a Content-Length",
            },
        ),
    ],
)
def test_malformed_http_answers_in_the_error_shape_and_closes(
    request_bytes: bytes, status_line: str, payload: dict[str, str]
) -> None:
    with Emulator() as emu:
        line, headers, body = _raw_exchange(emu.port, request_bytes)
    assert line == status_line
    assert (headers["connection"], headers["content-type"]) == ("close", "application/json")
    assert body == {**payload, "retirable": False, "details": [], "correlationId": correlation(1)}
    assert emu.received == []


def test_concurrent_starts_are_all_recorded_once() -> None:
    bodies = [{"api": "a", "parameters": {"i": i}} for i in range(200)]
    with Emulator() as emu, httpx.Client(base_url=emu.url, limits=httpx.Limits(max_connections=32)) as c:
        results: list[str] = []

        def worker(chunk: list[dict[str, Any]]) -> None:
            for body in chunk:
                results.append(c.post(START, json=body, headers=KEY).json()["runId"])

        threads = [threading.Thread(target=worker, args=(bodies[i::32],)) for i in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(set(results)) == 200
    assert sorted(r.body["parameters"]["i"] for r in emu.received if r.body) == list(range(200))
    assert {r.status for r in emu.received} == {201}


def test_stop_closes_kept_alive_connections(client: httpx.Client) -> None:
    with Emulator() as emu:
        assert client.post(emu.url + START, json=BODY, headers=KEY).status_code == 201
    with pytest.raises(httpx.TransportError):
        client.post(emu.url + START, json=BODY, headers=KEY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("429:0.1", (429, 0.1)), ("503:1", (503, 1.0)), ("500:0", (500, 0.0))],
)
def test_parse_fail(text: str, expected: tuple[int, float]) -> None:
    assert parse_fail(text) == expected


@pytest.mark.parametrize("text", ["429", "429:", "abc:0.1", "200:0.1", "429:1.5", "429:-0.1"])
def test_parse_fail_rejects(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_fail(text)
    assert str(caught.value) == (f"--fail {text!r}: expected STATUS:RATE with a 4xx/5xx status and 0 <= RATE <= 1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failed:0.2,canceled:0.1", {"failed": 0.2, "canceled": 0.1}),
        ("canceled:0.5", {"canceled": 0.5}),
        ("failed:1", {"failed": 1.0}),
    ],
)
def test_parse_result(text: str, expected: dict[str, float]) -> None:
    assert parse_result(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("failed", "expected failed:RATE,canceled:RATE with each 0 <= RATE <= 1"),
        ("completed:0.2", "expected failed:RATE,canceled:RATE with each 0 <= RATE <= 1"),
        ("failed:0.1,failed:0.2", "expected failed:RATE,canceled:RATE with each 0 <= RATE <= 1"),
        ("failed:x", "expected failed:RATE,canceled:RATE with each 0 <= RATE <= 1"),
        ("failed:0.7,canceled:0.4", "the rates add up to more than 1"),
    ],
)
def test_parse_result_rejects(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_result(text)
    assert str(caught.value) == f"--result {text!r}: {message}"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_binds_to_loopback_only(host: str) -> None:
    with pytest.raises(UsageError) as caught:
        Emulator(host=host)
    assert str(caught.value) == f"--host {host}: the emulator binds to loopback only"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fail": [(429, 0.6), (503, 0.6)]}, "--fail: the rates add up to more than 1"),
        ({"fail": [(200, 0.1)]}, "--fail: expected 4xx/5xx statuses with rates between 0 and 1"),
        ({"result_rates": {"lost": 0.1}}, "--result: expected failed and canceled rates adding up to at most 1"),
        ({"complete_after": -1.0}, "--complete-after, --latency and hang must not be negative"),
    ],
)
def test_bad_options_are_usage_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        Emulator(**options)
    assert str(caught.value) == message


def test_port_in_use_is_a_usage_error() -> None:
    with Emulator() as emu, pytest.raises(UsageError) as caught:
        Emulator(port=emu.port).start()
    assert str(caught.value).startswith(f"the emulator cannot listen on 127.0.0.1:{emu.port}: ")


def test_cli_options_build_and_serve_until_stopped() -> None:
    from intuned_runs.arguments import build_parser

    def parse(argv: list[str]) -> argparse.Namespace:  # the parser `intuned-runs emulator` really uses
        return build_parser().parse_args(["emulator", *argv])

    defaults = parse([])
    assert (defaults.host, defaults.port, defaults.api_key, defaults.complete_after, defaults.latency) == (
        "127.0.0.1",
        8787,
        None,
        2.0,
        0,
    )
    assert (defaults.fail, defaults.result, defaults.seed) == ([], None, None)
    argv = ["--port", "0", "--api-key", "k-123", "--complete-after", "0", "--fail", "429:0"]
    args = parse([*argv, "--fail", "503:0", "--result", "failed:1", "--seed", "9"])
    stop, announced, codes = threading.Event(), [], []
    ready = threading.Event()

    def announce(text: str) -> None:
        announced.append(text)
        ready.set()

    server = threading.Thread(target=lambda: codes.append(serve(args, stop, announce)))
    server.start()
    try:
        assert ready.wait(5)
        url = announced[0].split(" ")[3]
        with httpx.Client(base_url=url, timeout=5) as c:
            run_id = c.post(START, json=BODY, headers=KEY).json()["runId"]
            result = c.get(f"/{WS}/projects/shop%2Fpricing/run/{run_id}/result", headers=KEY).json()
            wrong = c.post(START, json=BODY, headers={"x-api-key": "other"}).status_code
    finally:
        stop.set()
        server.join(5)
    assert announced == [f"Emulator listening on {url} (workspace ids: any UUID)"]
    assert url.startswith("http://127.0.0.1:")
    assert result["status"] == "failed"
    assert wrong == 401
    assert codes == [0]


def test_received_is_a_frozen_record() -> None:
    record = Received("w", "p", None, {}, 201, 1.0)
    with pytest.raises(AttributeError):
        record.status = 400  # type: ignore[misc]
