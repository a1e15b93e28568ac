"""The Run API client (docs/apply.md, Sending and Outcomes; docs/run-api.md).

One `Client` holds ONE `httpx.Client`, i.e. one connection pool sized to the concurrency, and is shared by
every worker thread of an apply (a shared sync client measured ~2.5× the requests/s of an AsyncClient).
A semaphore of the same size admits requests into that pool, so they never queue inside httpcore: when they
do, httpcore 1.0.9 can close a connection that another thread is using (its idle check races the thread that
just took the connection; cf. encode/httpcore#1110), and measured 0.4-6% of POSTs then failed with
`[Errno 9] Bad file descriptor` — a started run reported as unknown.

`start` never raises for a request that went wrong: it classifies the outcome (submitted / failed /
unknown / skipped), because run start is not idempotent and only some failures prove nothing started.
`result` is a safe GET: it retries more and raises `ApiError` when it gives up. Both share one retry
loop. No httpx exception leaves this module, and every message and log line passes through the Redactor.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from msgspec import Struct
from msgspec.structs import replace

from intuned_runs import __version__
from intuned_runs.api.outcome import Kind, Outcome
from intuned_runs.api.wording import MAX_DELAY, describe, parse_retry_after, server_message
from intuned_runs.errors import ApiError, Refused, UsageError
from intuned_runs.net import is_loopback
from intuned_runs.redaction import Redactor

MAX_ATTEMPTS = 5
BACKOFF_BASE = 0.5  # seconds; doubles per attempt, full jitter
LOG_BODY_LIMIT = 500

# The server surely started nothing: safe to send the POST again (docs/apply.md, Outcomes).
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_RETRIED_STATUSES = frozenset({429, 503})
_SendError = httpx.HTTPError | httpx.InvalidURL


class _Retry(Struct, frozen=True):
    """An attempt that may be repeated: `last` is the answer if no attempt is left."""

    last: Any
    after: float | None = None  # the server's Retry-After, in seconds


def segment(text: str) -> str:
    """One URL path segment, percent-encoded and never normalised: httpx resolves `.` and `..` segments
    (`/ws/projects/../run/start` is `/ws/run/start`), so their dots are encoded too (docs/run-api.md)."""
    encoded = quote(text, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def encode_body(body: dict[str, Any]) -> bytes:
    """A start's body as sent: compact JSON, UTF-8. Encoded once, before sending begins: 100,000 encoded bodies
    take a sixth of the memory of the dicts, and no worker encodes while the others wait for the interpreter
    lock (docs/performance.md, Memory)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_base_url(url: str) -> str:
    """Refuse plain HTTP except on loopback (docs/apply.md, Guards); return the URL without a trailing slash."""
    url = url.strip()
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme != "https" and not is_loopback(host):
        raise Refused("base_url must use https unless its host is loopback")
    try:
        _ = parts.port  # raises on a port that is not a number in range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as e:
        raise Refused(f"base_url is not a valid URL: {e}") from e
    if scheme not in ("http", "https") or not host:
        raise Refused("base_url must be an http(s) URL with a host")
    return url.rstrip("/")


class Client:
    """Thread-safe Run API client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        workspace_id: str,
        api_key: str,
        *,
        concurrency: int = 8,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        redactor: Redactor,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        now: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
        timing: Callable[[str], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, not {concurrency}")
        self.base_url = check_base_url(base_url)
        self.workspace_id = workspace_id
        # The key is a secret even when the caller forgot to give it to the redactor.
        self._redact = redactor.with_values([api_key])
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._rng_lock = threading.Lock()
        self._now = now
        self._log = log
        self._timing = timing
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool_timeout = read_timeout
        self._http = httpx.Client(
            headers={
                "x-api-key": api_key,
                "User-Agent": f"intuned-runs/{__version__}",
                "content-type": "application/json",
                "accept": "application/json",
            },
            timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- URLs

    def _project_url(self, project: str) -> str:
        # projectName (docs/run-api.md) is one path segment, so `/` must become %2F.
        return f"{self.base_url}/{segment(self.workspace_id)}/projects/{segment(project)}"

    def start_url(self, project: str) -> str:
        return f"{self._project_url(project)}/run/start"

    def result_url(self, project: str, run_id: str) -> str:
        return f"{self._project_url(project)}/run/{segment(run_id)}/result"

    # -- start

    def start(
        self, project: str, body: dict[str, Any] | bytes, should_stop: Callable[[], bool] = lambda: False
    ) -> Outcome:
        """POST one run start and classify what happened (docs/apply.md, Outcomes). Never raises for a
        request that went wrong: run start is not idempotent, and only some failures prove nothing started.
        `body` is the request, or already `encode_body`'s bytes."""
        content = body if isinstance(body, bytes) else encode_body(body)

        def judge(response: httpx.Response | None, error: _SendError | None, attempt: int) -> Outcome | _Retry:
            if isinstance(error, httpx.InvalidURL):  # refused while building the request: nothing sent
                return self._outcome("failed", attempt, message=describe(error))
            if error is not None:
                if not isinstance(error, _CONNECT_ERRORS):
                    # The request may have reached the server: never resend it.
                    return self._outcome("unknown", attempt, message=describe(error))
                # A pool timeout is ours (every connection busy), not a server that cannot be reached.
                reached = isinstance(error, httpx.PoolTimeout)
                return _Retry(
                    replace(self._outcome("failed", attempt, message=describe(error)), unreachable=not reached)
                )
            assert response is not None
            if response.status_code in _RETRIED_STATUSES:
                message = server_message(response, self._redact)
                last = self._outcome("failed", attempt, http_status=response.status_code, message=message)
                return _Retry(last, self._retry_after(response))
            return self._classify(response, attempt)

        def skipped(last: Outcome) -> Outcome:
            return self._outcome("skipped", last.attempts, message=f"stopped before retrying ({last.message})")

        outcome: Outcome = self._attempts("POST", self.start_url(project), content, judge, should_stop, skipped)
        return outcome

    def _classify(self, response: httpx.Response, attempt: int) -> Outcome:
        code = response.status_code
        if 200 <= code < 300:
            try:
                data = response.json()
            except ValueError:  # JSONDecodeError and UnicodeDecodeError
                return self._outcome(
                    "unknown", attempt, http_status=code, message=f"{code} without a runId (body is not JSON)"
                )
            run_id = data.get("runId") if isinstance(data, dict) else None
            if not isinstance(run_id, str):
                return self._outcome("unknown", attempt, http_status=code, message=f"{code} without a runId")
            status = data.get("status")
            return Outcome(
                "submitted",
                run_id=run_id,
                status=status if isinstance(status, str) else "pending",
                http_status=code,
                attempts=attempt,
            )
        if 300 <= code < 500:
            message = server_message(response, self._redact)
            if code < 400:
                where = response.headers.get("location")
                message += f" (redirect to {where} not followed)" if where else " (redirect not followed)"
            return self._outcome("failed", attempt, http_status=code, message=message)
        # 5xx other than 503, and anything outside the known ranges: the run may have started.
        return self._outcome(
            "unknown", attempt, http_status=code, message=f"{code}: {server_message(response, self._redact)}"
        )

    def _outcome(
        self, kind: Kind, attempts: int, *, http_status: int | None = None, message: str | None = None
    ) -> Outcome:
        return Outcome(
            kind,
            http_status=http_status,
            message=self._redact(message) if message is not None else None,
            attempts=attempts,
        )

    # -- result

    def result(self, project: str, run_id: str) -> dict[str, Any]:
        """GET a run's result; raises ApiError when it gives up. Unlike start, a lost or timed-out GET
        is retried, as are 5xx answers: it cannot start anything."""

        def judge(response: httpx.Response | None, error: _SendError | None, attempt: int) -> Any:
            if error is not None:
                failure = ApiError(self._redact(describe(error)))
                return _Retry(failure) if isinstance(error, httpx.TransportError) else failure
            assert response is not None
            code = response.status_code
            if 200 <= code < 300:
                return self._result_body(response, run_id)
            failure = ApiError(self._redact(f"{code}: {server_message(response, self._redact)}"), code)
            if code in _RETRIED_STATUSES:
                return _Retry(failure, self._retry_after(response))
            return _Retry(failure) if code >= 500 else failure

        answer = self._attempts("GET", self.result_url(project, run_id), None, judge)
        if isinstance(answer, ApiError):
            raise answer
        body: dict[str, Any] = answer
        return body

    def _attempts(
        self,
        method: str,
        url: str,
        content: bytes | None,
        judge: Callable[[httpx.Response | None, _SendError | None, int], Any],
        should_stop: Callable[[], bool] = lambda: False,
        on_stop: Callable[[Any], Any] = lambda last: last,
    ) -> Any:
        """The one retry loop: send, let `judge` answer or ask for another attempt (`_Retry`), wait
        (`Retry-After`, else exponential backoff with full jitter), at most MAX_ATTEMPTS times."""
        attempt = 0
        while True:
            attempt += 1
            response, error = self._send(method, url, content)
            verdict = judge(response, error, attempt)
            if not isinstance(verdict, _Retry):
                return verdict
            if attempt >= MAX_ATTEMPTS:
                return verdict.last
            if should_stop():
                return on_stop(verdict.last)
            self._sleep(self._delay(attempt, verdict.after))
            if should_stop():
                return on_stop(verdict.last)

    def _result_body(self, response: httpx.Response, run_id: str) -> dict[str, Any]:
        code = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise ApiError(
                self._redact(f"{code}: result of run {run_id} is not a JSON object with a string status"),
                code,
            )
        error = data.get("error")
        # the SDKs (docs/run-api.md) spell the flag `retirable`, the docs `retriable`; readers look at `retirable`.
        if isinstance(error, dict) and "retirable" not in error and "retriable" in error:
            error["retirable"] = error["retriable"]
        return data

    # -- one request

    def _send(self, method: str, url: str, content: bytes | None) -> tuple[httpx.Response | None, _SendError | None]:
        """One attempt: the response, or the httpx error that replaced it. Logs and times it."""
        size = f" ({len(content)} bytes)" if content is not None else ""
        # Never the body or headers: they carry secret values and the key.
        self._emit(self._log, f"→ {method} {url}{size}")
        started = time.perf_counter()
        try:
            if not self._slots.acquire(timeout=self._pool_timeout):
                raise httpx.PoolTimeout("no free connection in the pool")
            try:
                response = self._http.request(method, url, content=content)
            finally:
                self._slots.release()
        except httpx.HTTPError as e:
            ms = (time.perf_counter() - started) * 1000
            self._emit(self._log, f"← {method} {url} failed after {ms:.0f} ms: {describe(e)}")
            self._emit(self._timing, f"{method} {url} failed after {ms:.0f} ms")
            return None, e
        except httpx.InvalidURL as e:  # e.g. a project name too long for a URL
            self._emit(self._log, f"← {method} {url} not sent: {describe(e)}")
            return None, e
        ms = (time.perf_counter() - started) * 1000
        if self._log is not None:
            text = self._redact(response.text)  # before cutting: half a secret is not recognisable
            if len(text) > LOG_BODY_LIMIT:
                text = text[:LOG_BODY_LIMIT] + "…"
            self._emit(self._log, f"← {response.status_code} {method} {url} {ms:.0f} ms: {text}")
        self._emit(self._timing, f"{method} {url} {response.status_code} in {ms:.0f} ms")
        return response, None

    def _emit(self, sink: Callable[[str], None] | None, line: str) -> None:
        if sink is not None:
            sink(self._redact(line))

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        return parse_retry_after(value, self._now()) if value else None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """`Retry-After` when the server gave one, else exponential backoff with full jitter."""
        if retry_after is not None:
            return retry_after
        cap = min(MAX_DELAY, BACKOFF_BASE * 2 ** (attempt - 1))
        with self._rng_lock:
            return self._rng.uniform(0.0, cap)
