"""The Run API client: classification tables over MockTransport, plus real loopback sockets."""

from __future__ import annotations

import json
import random
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from intuned_runs import __version__
from intuned_runs.api.client import Client, check_base_url
from intuned_runs.api.outcome import Outcome
from intuned_runs.api.wording import parse_retry_after
from intuned_runs.errors import ApiError, Refused, UsageError
from intuned_runs.redaction import Redactor

BASE = "https://api.example.test/api/v1/workspace"
WS = "11111111-2222-3333-4444-555555555555"
KEY = "key-0123456789abcdef"
NOW = 1_700_000_000.0
BODY = {"api": "products/list", "parameters": {"page": 1}}

Handler = Callable[[httpx.Request], httpx.Response]


class MaxRandom(random.Random):
    """Full jitter drawn at its upper bound, so backoff delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Recorder:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


def sequence(*steps: httpx.Response | Exception) -> Handler:
    """Answer each request with the next step; the last one repeats."""
    queue = list(steps)

    def handle(request: httpx.Request) -> httpx.Response:
        step = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(step, Exception):
            raise step
        return step

    return handle


def make_client(
    handler: Handler | None = None,
    *,
    base_url: str = BASE,
    sleeps: list[float] | None = None,
    redactor: Redactor | None = None,
    log: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Client:
    sink = sleeps if sleeps is not None else []
    return Client(
        base_url,
        WS,
        KEY,
        transport=httpx.MockTransport(handler) if handler is not None else None,
        redactor=redactor or Redactor([KEY]),
        sleep=sink.append,
        rng=MaxRandom(),
        now=lambda: NOW,
        log=log,
        **kwargs,
    )


def start_with(*steps: httpx.Response | Exception, **kwargs: Any) -> tuple[Outcome, Recorder, list[float]]:
    recorder = Recorder(sequence(*steps))
    sleeps: list[float] = []
    with make_client(recorder, sleeps=sleeps, **kwargs) as client:
        outcome = client.start("shop", BODY)
    return outcome, recorder, sleeps


def intuned_error(status: int, message: str, **extra: Any) -> httpx.Response:
    body = {"code": "X", "category": "user", "message": message, "retirable": False, "correlationId": "c"}
    return httpx.Response(status, json={**body, **extra})


# -- classification of start ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "kind", "run_id", "status", "http_status", "message"),
    [
        (httpx.Response(201, json={"runId": "ru_1", "status": "pending"}), "submitted", "ru_1", "pending", 201, None),
        (httpx.Response(200, json={"runId": "ru_2"}), "submitted", "ru_2", "pending", 200, None),
        (httpx.Response(201, json={"runId": "ru_3", "status": "started"}), "submitted", "ru_3", "started", 201, None),
        (httpx.Response(201, json={"status": "pending"}), "unknown", None, None, 201, "201 without a runId"),
        (httpx.Response(201, json={"runId": 42}), "unknown", None, None, 201, "201 without a runId"),
        (httpx.Response(201, json=["ru_1"]), "unknown", None, None, 201, "201 without a runId"),
        (
            httpx.Response(200, text="<html>ok</html>"),
            "unknown",
            None,
            None,
            200,
            "200 without a runId (body is not JSON)",
        ),
        (intuned_error(400, "body.api is required"), "failed", None, None, 400, "body.api is required"),
        (
            intuned_error(
                400,
                "Invalid body",
                details=[{"path": "parameters.page", "message": "must be a string"}, {"message": "bad"}],
            ),
            "failed",
            None,
            None,
            400,
            "Invalid body (parameters.page: must be a string; bad)",
        ),
        (intuned_error(401, "Invalid API key"), "failed", None, None, 401, "Invalid API key"),
        (intuned_error(403, "Forbidden workspace"), "failed", None, None, 403, "Forbidden workspace"),
        (httpx.Response(404, text="<html>nope</html>"), "failed", None, None, 404, "Not Found"),
        (httpx.Response(409, text="project not deployed"), "failed", None, None, 409, "project not deployed"),
        (
            httpx.Response(302, headers={"location": "https://elsewhere.test/login"}),
            "failed",
            None,
            None,
            302,
            "Found (redirect to https://elsewhere.test/login not followed)",
        ),
        (intuned_error(500, "internal"), "unknown", None, None, 500, "500: internal"),
        (httpx.Response(502), "unknown", None, None, 502, "502: Bad Gateway"),
        (httpx.Response(504, text="upstream timed out"), "unknown", None, None, 504, "504: upstream timed out"),
    ],
)
def test_start_classifies_each_response_after_one_attempt(
    response: httpx.Response,
    kind: str,
    run_id: str | None,
    status: str | None,
    http_status: int,
    message: str | None,
) -> None:
    outcome, recorder, sleeps = start_with(response)

    assert outcome == Outcome(
        kind,  # type: ignore[arg-type]
        run_id=run_id,
        status=status,
        http_status=http_status,
        message=message,
        attempts=1,
    )
    assert len(recorder.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize(("status", "stops"), [(401, True), (403, True), (400, False), (404, False)])
def test_only_401_and_403_stop_all(status: int, stops: bool) -> None:
    outcome, _, _ = start_with(intuned_error(status, "no"))

    assert outcome.kind == "failed"
    assert outcome.stops_all is stops


def test_stops_all_is_false_for_other_kinds() -> None:
    assert not Outcome("unknown", http_status=403).stops_all
    assert Outcome("failed", http_status=401).stops_all


def test_a_long_server_text_is_truncated_to_200_characters() -> None:
    outcome, _, _ = start_with(httpx.Response(400, text="x" * 500))

    assert outcome.message == "x" * 199 + "…"


def test_redirect_is_not_followed() -> None:
    recorder = Recorder(
        lambda r: (
            httpx.Response(307, headers={"location": f"{BASE}/elsewhere"})
            if r.url.path.endswith("/run/start")
            else httpx.Response(201, json={"runId": "ru_wrong"})
        )
    )
    with make_client(recorder) as client:
        outcome = client.start("shop", BODY)

    assert (outcome.kind, outcome.http_status) == ("failed", 307)
    assert [str(r.url) for r in recorder.requests] == [f"{BASE}/{WS}/projects/shop/run/start"]


def test_429_with_retry_after_seconds_then_201() -> None:
    outcome, recorder, sleeps = start_with(
        httpx.Response(429, headers={"retry-after": "7"}), httpx.Response(201, json={"runId": "ru_1"})
    )

    assert (outcome.kind, outcome.run_id, outcome.attempts) == ("submitted", "ru_1", 2)
    assert sleeps == [7.0]
    assert len(recorder.requests) == 2


def test_429_with_retry_after_http_date_then_201() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 12, tz=timezone.utc), usegmt=True)
    outcome, _, sleeps = start_with(
        httpx.Response(429, headers={"retry-after": when}), httpx.Response(201, json={"runId": "ru_1"})
    )

    assert (outcome.kind, outcome.attempts) == ("submitted", 2)
    assert sleeps == [12.0]


def test_retry_after_is_capped_at_60_seconds() -> None:
    outcome, _, sleeps = start_with(
        httpx.Response(503, headers={"retry-after": "3600"}), httpx.Response(201, json={"runId": "ru_1"})
    )

    assert outcome.kind == "submitted"
    assert sleeps == [60.0]


def test_503_five_times_fails_after_five_attempts_with_backoff() -> None:
    outcome, recorder, sleeps = start_with(intuned_error(503, "Service busy"))

    assert outcome == Outcome("failed", http_status=503, message="Service busy", attempts=5)
    assert len(recorder.requests) == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]  # full jitter drawn at its upper bound


def test_backoff_jitter_stays_within_the_doubling_cap() -> None:
    recorder = Recorder(sequence(httpx.Response(429)))
    sleeps: list[float] = []
    with Client(
        BASE, WS, KEY, transport=httpx.MockTransport(recorder), redactor=Redactor(), sleep=sleeps.append,
        rng=random.Random(3),
    ) as client:  # fmt: skip
        outcome = client.start("shop", BODY)

    assert (outcome.kind, outcome.http_status, outcome.attempts) == ("failed", 429, 5)
    assert len(sleeps) == 4
    assert all(0 <= s <= 0.5 * 2**i for i, s in enumerate(sleeps))


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.PoolTimeout("pool"),
    ],
)
def test_connect_errors_are_retried(error: Exception) -> None:
    outcome, _, sleeps = start_with(error, httpx.Response(201, json={"runId": "ru_1"}))

    assert (outcome.kind, outcome.run_id, outcome.attempts) == ("submitted", "ru_1", 2)
    assert sleeps == [0.5]


def test_connect_errors_exhausted_fail() -> None:
    outcome, recorder, _ = start_with(httpx.ConnectError("[Errno 111] Connection refused"))

    # unreachable: counted by apply, which stops sending after a few in a row (docs/apply.md, Unreachable server)
    assert outcome == Outcome(
        "failed", message="could not connect: [Errno 111] Connection refused", attempts=5, unreachable=True
    )
    assert len(recorder.requests) == 5


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ReadTimeout("timed out"), "read timeout"),
        (httpx.WriteTimeout("timed out"), "write timeout"),
        (httpx.ReadError("[Errno 104] reset"), "connection lost after sending ([Errno 104] reset)"),
        (httpx.WriteError("broken pipe"), "write error: broken pipe"),
        (
            httpx.RemoteProtocolError("Server disconnected"),
            "connection lost after sending (Server disconnected)",
        ),
        (httpx.ProxyError("proxy said no"), "ProxyError: proxy said no"),
        (httpx.DecodingError("bad gzip"), "DecodingError: bad gzip"),
    ],
)
def test_errors_after_sending_are_unknown_and_never_retried(error: Exception, message: str) -> None:
    outcome, recorder, sleeps = start_with(error, httpx.Response(201, json={"runId": "ru_twice"}))

    assert outcome == Outcome("unknown", message=message, attempts=1)
    assert len(recorder.requests) == 1
    assert sleeps == []


def test_should_stop_between_attempts_skips() -> None:
    recorder = Recorder(sequence(httpx.Response(503)))
    sleeps: list[float] = []
    with make_client(recorder, sleeps=sleeps) as client:
        outcome = client.start("shop", BODY, should_stop=lambda: len(sleeps) >= 2)

    assert outcome.kind == "skipped"
    assert outcome.attempts == 2
    assert outcome.message == "stopped before retrying (Service Unavailable)"
    assert len(recorder.requests) == 2


def test_invalid_url_is_failed_without_sending() -> None:
    recorder = Recorder(sequence(httpx.Response(201, json={"runId": "ru_1"})))
    with make_client(recorder) as client:
        outcome = client.start("p" * 70_000, BODY)

    assert outcome.kind == "failed"
    assert outcome.message is not None and outcome.message.startswith("invalid URL")
    assert recorder.requests == []


# -- request shape ----------------------------------------------------------------------------------


def test_request_path_headers_and_body() -> None:
    recorder = Recorder(sequence(httpx.Response(201, json={"runId": "ru_1"})))
    with make_client(recorder) as client:
        client.start("my/proj name", BODY)

    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.url.raw_path == f"/api/v1/workspace/{WS}/projects/my%2Fproj%20name/run/start".encode()
    assert request.headers["x-api-key"] == KEY
    assert request.headers["user-agent"] == f"intuned-runs/{__version__}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == BODY


@pytest.mark.parametrize(
    ("project", "segment"),
    [("..", "%2E%2E"), (".", "%2E"), ("a..b", "a..b"), ("...", "..."), (".hidden", ".hidden"), ("%2E", "%252E")],
)
def test_a_project_is_one_segment_that_is_never_normalised(project: str, segment: str) -> None:
    # httpx resolves dot segments: `..` unencoded would POST to /{ws}/run/start (docs/run-api.md).
    recorder = Recorder(sequence(httpx.Response(201, json={"runId": "ru_1"})))
    with make_client(recorder) as client:
        client.start(project, BODY)
        assert client.result_url(project, "..") == f"{BASE}/{WS}/projects/{segment}/run/%2E%2E/result"
    (request,) = recorder.requests
    assert request.url.raw_path == f"/api/v1/workspace/{WS}/projects/{segment}/run/start".encode()


def test_result_url_encodes_project_and_run_id() -> None:
    with make_client(sequence(httpx.Response(200))) as client:
        assert client.result_url("my/proj", "ru/1") == f"{BASE}/{WS}/projects/my%2Fproj/run/ru%2F1/result"


def test_timeouts_and_pool_limits() -> None:
    client = Client(BASE, WS, KEY, concurrency=32, connect_timeout=3, read_timeout=7, redactor=Redactor())
    try:
        http = client._http
        assert http.timeout == httpx.Timeout(connect=3, read=7, write=7, pool=7)
        assert http.follow_redirects is False
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert (pool._max_connections, pool._max_keepalive_connections) == (32, 32)
    finally:
        client.close()


def test_requests_beyond_concurrency_wait_then_time_out_as_pool_timeouts() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(10)
        return httpx.Response(201, json={"runId": "ru_slow"})

    sleeps: list[float] = []
    with make_client(slow, sleeps=sleeps, concurrency=1, read_timeout=0.05) as client:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.start, "shop", BODY)
            assert entered.wait(10)
            try:
                second = client.start("shop", BODY)
            finally:
                release.set()
        assert first.result().run_id == "ru_slow"

    assert second == Outcome(
        "failed", message="could not connect: no free connection in the pool (pool timeout)", attempts=5
    )
    assert len(sleeps) == 4


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(UsageError, match="concurrency must be at least 1"):
        Client(BASE, WS, KEY, concurrency=0, redactor=Redactor())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://app.intuned.io/api/v1/workspace/", "https://app.intuned.io/api/v1/workspace"),
        ("https://app.intuned.io/api/v1/workspace", "https://app.intuned.io/api/v1/workspace"),
        ("http://127.0.0.1:8787/", "http://127.0.0.1:8787"),
        ("http://127.8.9.10:80", "http://127.8.9.10:80"),
        ("http://[::1]:8787/api/", "http://[::1]:8787/api"),
        ("http://localhost:8787", "http://localhost:8787"),
        ("HTTP://LOCALHOST:8787", "HTTP://LOCALHOST:8787"),
    ],
)
def test_base_url_accepted(url: str, expected: str) -> None:
    assert check_base_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://app.intuned.io/api/v1/workspace",
        "http://128.0.0.1:8787",
        "http://10.0.0.1",
        "http://[::2]:80",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "ftp://app.intuned.io",
        "app.intuned.io/api",
    ],
)
def test_base_url_refused(url: str) -> None:
    with pytest.raises(Refused, match=r"^base_url must use https unless its host is loopback$"):
        check_base_url(url)


@pytest.mark.parametrize("url", ["https://", "ftp://127.0.0.1/", "http://127.0.0.1:99999"])
def test_base_url_unusable(url: str) -> None:
    with pytest.raises(Refused, match=r"^base_url"):
        check_base_url(url)


def test_client_checks_its_base_url() -> None:
    with pytest.raises(Refused):
        Client("http://example.com", WS, KEY, redactor=Redactor())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        ("600", 60.0),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),  # NOW + 30 s
        ("Tue, 14 Nov 2023 22:12:00 GMT", 0.0),  # in the past
        ("Tue, 14 Nov 2023 23:13:20 GMT", 60.0),
        ("soon", None),
        ("", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


# -- result -----------------------------------------------------------------------------------------


def test_result_returns_the_object_and_passes_unknown_values_through() -> None:
    payload = {
        "runId": "ru_1",
        "status": "paused-by-operator",
        "error": {"message": "m", "code": "BRAND_NEW", "category": "cosmic", "retriable": True},
    }
    recorder = Recorder(sequence(httpx.Response(200, json=payload)))
    with make_client(recorder) as client:
        result = client.result("my/proj", "ru_1")

    assert result["status"] == "paused-by-operator"
    assert result["error"]["category"] == "cosmic"
    assert result["error"]["retirable"] is True  # both spellings accepted
    assert recorder.requests[0].method == "GET"
    assert recorder.requests[0].url.raw_path.endswith(b"/projects/my%2Fproj/run/ru_1/result")


@pytest.mark.parametrize(
    "transient",
    [
        httpx.Response(500),
        httpx.Response(502),
        httpx.Response(503),
        httpx.Response(429, headers={"retry-after": "3"}),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected"),
        httpx.ConnectError("refused"),
    ],
)
def test_result_retries_transient_failures(transient: httpx.Response | Exception) -> None:
    recorder = Recorder(sequence(transient, httpx.Response(200, json={"runId": "ru_1", "status": "completed"})))
    sleeps: list[float] = []
    with make_client(recorder, sleeps=sleeps) as client:
        result = client.result("shop", "ru_1")

    assert result["status"] == "completed"
    assert len(recorder.requests) == 2
    honoured = isinstance(transient, httpx.Response) and transient.status_code == 429
    assert sleeps == ([3.0] if honoured else [0.5])


def test_result_gives_up_after_five_attempts() -> None:
    recorder = Recorder(sequence(intuned_error(500, "boom")))
    sleeps: list[float] = []
    with make_client(recorder, sleeps=sleeps) as client, pytest.raises(ApiError) as caught:
        client.result("shop", "ru_1")

    assert (str(caught.value), caught.value.http_status) == ("500: boom", 500)
    assert len(recorder.requests) == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("response", "message", "http_status"),
    [
        (intuned_error(404, "Run not found"), "404: Run not found", 404),
        (intuned_error(401, "Invalid API key"), "401: Invalid API key", 401),
        (httpx.Response(200, text="nope"), "200: result of run ru_1 is not a JSON object with a string status", 200),
        (
            httpx.Response(200, json={"runId": "ru_1"}),
            "200: result of run ru_1 is not a JSON object with a string status",
            200,
        ),
        (httpx.Response(200, json=[1]), "200: result of run ru_1 is not a JSON object with a string status", 200),
    ],
)
def test_result_failures_raise_api_error_at_once(response: httpx.Response, message: str, http_status: int) -> None:
    recorder = Recorder(sequence(response))
    with make_client(recorder) as client, pytest.raises(ApiError) as caught:
        client.result("shop", "ru_1")

    assert (str(caught.value), caught.value.http_status) == (message, http_status)
    assert len(recorder.requests) == 1


# -- logging and redaction --------------------------------------------------------------------------


def test_log_has_one_line_per_request_and_response_without_body_or_key() -> None:
    lines: list[str] = []
    timings: list[str] = []
    body = {"api": "a", "parameters": {"token": "parameter-value-visible-only-in-body"}}
    recorder = Recorder(sequence(httpx.Response(201, json={"runId": "ru_1", "status": "pending"})))
    with make_client(recorder, log=lines.append, timing=timings.append) as client:
        client.start("shop", body)

    size = len(recorder.requests[0].content)
    url = f"{BASE}/{WS}/projects/shop/run/start"
    assert len(lines) == 2
    assert lines[0] == f"→ POST {url} ({size} bytes)"
    assert lines[1].startswith(f"← 201 POST {url} ")
    assert lines[1].endswith(' ms: {"runId":"ru_1","status":"pending"}')
    assert all("parameter-value" not in line and KEY not in line for line in lines + timings)
    assert len(timings) == 1 and timings[0].startswith(f"POST {url} 201 in ")


def test_log_truncates_long_response_bodies() -> None:
    lines: list[str] = []
    with make_client(sequence(httpx.Response(400, text="y" * 5000)), log=lines.append) as client:
        client.start("shop", BODY)

    assert lines[1].endswith(" ms: " + "y" * 500 + "…")


CANARY = "canary-s3cr3t-value"


@pytest.mark.parametrize(
    "steps",
    [
        (intuned_error(400, f"parameter {CANARY} is invalid", details=[{"path": CANARY, "message": CANARY}]),),
        (intuned_error(500, f"crashed on {CANARY}"),),
        (httpx.Response(201, text=f"created {CANARY}"),),
        (httpx.Response(302, headers={"location": f"https://x.test/?t={CANARY}"}),),
        (httpx.ConnectError(f"could not reach proxy http://user:{CANARY}@proxy.test:3128"),),
        (httpx.ProxyError(f"407 from http://user:{CANARY}@proxy.test:3128"),),
        (httpx.ReadError(f"reset by http://user:{CANARY}@proxy.test:3128"),),
        (intuned_error(503, f"busy with {CANARY}"),),
    ],
)
def test_canary_never_appears_in_messages_or_logs(steps: tuple[httpx.Response | Exception, ...]) -> None:
    lines: list[str] = []
    recorder = Recorder(sequence(*steps))
    body = {"api": "a", "parameters": {"password": CANARY}}
    with make_client(recorder, redactor=Redactor([CANARY]), log=lines.append, timing=lines.append) as client:
        outcome = client.start("shop", body)
        with pytest.raises(ApiError) as caught:
            client.result("shop", "ru_1")

    assert CANARY.encode() in recorder.requests[0].content  # the canary was really sent
    texts = [outcome.message or "", str(caught.value), *lines]
    assert any("***" in text for text in texts)  # the canary came back and was masked
    assert not any(CANARY in text for text in texts)


def test_api_key_is_redacted_even_when_the_redactor_lacks_it() -> None:
    outcome, _, _ = start_with(httpx.Response(401, text=f"key {KEY} revoked"), redactor=Redactor())

    assert outcome.message == "key *** revoked"


# -- real sockets on 127.0.0.1 -----------------------------------------------------------------------


@contextmanager
def tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            handle(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(rest) < length:
        rest += conn.recv(65536)
    return data


def test_real_server_that_never_answers_is_a_read_timeout_unknown() -> None:
    release = threading.Event()
    received: list[bytes] = []

    def silent(conn: socket.socket) -> None:
        received.append(read_request(conn))
        release.wait(10)

    try:
        with tcp_server(silent) as url, make_client(base_url=url, read_timeout=0.3) as client:
            outcome = client.start("shop", BODY)
    finally:
        release.set()

    assert outcome == Outcome("unknown", message="read timeout", attempts=1)
    assert len(received) == 1


def test_real_closed_port_is_retried_then_failed() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sleeps: list[float] = []

    with make_client(base_url=f"http://127.0.0.1:{port}", sleeps=sleeps) as client:
        outcome = client.start("shop", BODY)

    assert (outcome.kind, outcome.attempts, outcome.http_status) == ("failed", 5, None)
    assert outcome.message is not None and outcome.message.startswith("could not connect: ")
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_real_server_closing_after_reading_the_request_is_unknown() -> None:
    received: list[bytes] = []

    def hang_up(conn: socket.socket) -> None:
        received.append(read_request(conn))
        conn.close()

    with tcp_server(hang_up) as url, make_client(base_url=url) as client:
        outcome = client.start("shop", BODY)

    assert outcome.kind == "unknown"
    assert outcome.attempts == 1
    assert outcome.message is not None and outcome.message.startswith("connection lost after sending")
    assert len(received) == 1


def test_real_env_proxy_with_password_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:{CANARY}@127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    lines: list[str] = []

    with make_client(base_url=BASE, redactor=Redactor([CANARY]), log=lines.append) as client:
        outcome = client.start("shop", BODY)

    assert (outcome.kind, outcome.attempts) == ("failed", 5)
    assert outcome.message is not None and CANARY not in outcome.message
    assert len(lines) == 10 and not any(CANARY in line for line in lines)


def test_real_server_shared_by_more_threads_than_connections() -> None:
    """Every POST succeeds on one pool of at most `concurrency` connections, with 4× as many threads.

    Without the client's own admission semaphore, httpcore 1.0.9 closed connections in use here.
    """
    connections: set[tuple[str, int]] = set()
    lock = threading.Lock()
    counter = iter(range(1_000_000))

    class Api(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            with lock:
                connections.add(self.client_address)
                body = json.dumps({"runId": f"ru_{next(counter)}", "status": "pending"}).encode()
            self.send_response(201)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with make_client(base_url=url, concurrency=4) as client, ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(lambda i: client.start(f"p{i}", BODY), range(400)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert [o for o in outcomes if o.kind != "submitted"] == []
    assert len({o.run_id for o in outcomes}) == 400
    assert 1 <= len(connections) <= 4
