"""The Run API client (docs/apply.md, Sending and Outcomes; docs/run-api.md).

One `Client` holds ONE `httpx.Client`, i.e. one connection pool sized to the concurrency, and is shared by
every worker thread of an apply (a shared sync client measured ~2.5× the requests/s of an AsyncClient).
A semaphore of the same size admits requests into that pool, so they never queue inside httpcore: when they
do, httpcore 1.0.9 can close a connection that another thread is using (its idle check races the thread that
just took the connection; cf. encode/httpcore#1110), and measured 0.4-6% of POSTs then failed with
`[Errno 9] Bad file descriptor` — a started run reported as unknown.

`start` never raises for a request that went wrong: it classifies the outcome (submitted / failed /
unknown / skipped), because run start is not idempotent and only some failures prove nothing started.
`result` is a safe GET: it retries more and raises `ApiError` when it gives up. No httpx exception leaves
this module, and every message and log line passes through the Redactor first.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from intuned_runs import __version__
from intuned_runs.errors import ApiError, Refused, UsageError
from intuned_runs.redaction import Redactor

MAX_ATTEMPTS = 5
BACKOFF_BASE = 0.5  # seconds; doubles per attempt, full jitter
MAX_DELAY = 60.0  # cap of both the backoff and Retry-After
MESSAGE_LIMIT = 200
LOG_BODY_LIMIT = 500

Kind = Literal["submitted", "failed", "unknown", "skipped"]

# The server surely started nothing: safe to send the POST again (docs/apply.md, Outcomes).
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_RETRIED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class StartOutcome:
    kind: Kind
    run_id: str | None = None
    status: str | None = None
    http_status: int | None = None
    message: str | None = None
    attempts: int = 1

    @property
    def stops_all(self) -> bool:
        """A 401 or 403 stops every remaining submission (docs/apply.md, Outcomes)."""
        return self.kind == "failed" and self.http_status in (401, 403)


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


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value (delay-seconds or HTTP-date), within [0, 60]."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # `-0000` means UTC with no stated zone
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_DELAY)


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
        return f"{self.base_url}/{quote(self.workspace_id, safe='')}/projects/{quote(project, safe='')}"

    def start_url(self, project: str) -> str:
        return f"{self._project_url(project)}/run/start"

    def result_url(self, project: str, run_id: str) -> str:
        return f"{self._project_url(project)}/run/{quote(run_id, safe='')}/result"

    # -- start

    def start(
        self, project: str, body: dict[str, Any], should_stop: Callable[[], bool] = lambda: False
    ) -> StartOutcome:
        """POST one run start and classify what happened (docs/apply.md, Outcomes)."""
        url = self.start_url(project)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        attempt = 0
        while True:
            attempt += 1
            response, error = self._send("POST", url, content)
            retry_after: float | None = None
            if isinstance(error, httpx.InvalidURL):  # refused while building the request: nothing sent
                return self._outcome("failed", attempt, message=_describe(error))
            if error is not None:
                if not isinstance(error, _CONNECT_ERRORS):
                    # The request may have reached the server: never resend it.
                    return self._outcome("unknown", attempt, message=_describe(error))
                last = StartOutcome("failed", message=_describe(error), attempts=attempt)
            else:
                assert response is not None
                code = response.status_code
                if code in _RETRIED_STATUSES:
                    retry_after = self._retry_after(response)
                    last = StartOutcome(
                        "failed", http_status=code, message=_server_message(response, self._redact), attempts=attempt
                    )
                else:
                    return self._classify(response, attempt)
            if attempt >= MAX_ATTEMPTS:
                return self._outcome(last.kind, attempt, http_status=last.http_status, message=last.message)
            if should_stop():
                return self._skipped(attempt, last)
            self._sleep(self._delay(attempt, retry_after))
            if should_stop():
                return self._skipped(attempt, last)

    def _classify(self, response: httpx.Response, attempt: int) -> StartOutcome:
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
            return StartOutcome(
                "submitted",
                run_id=run_id,
                status=status if isinstance(status, str) else "pending",
                http_status=code,
                attempts=attempt,
            )
        if 300 <= code < 500:
            message = _server_message(response, self._redact)
            if code < 400:
                where = response.headers.get("location")
                message += f" (redirect to {where} not followed)" if where else " (redirect not followed)"
            return self._outcome("failed", attempt, http_status=code, message=message)
        # 5xx other than 503, and anything outside the known ranges: the run may have started.
        return self._outcome(
            "unknown", attempt, http_status=code, message=f"{code}: {_server_message(response, self._redact)}"
        )

    def _outcome(
        self, kind: Kind, attempts: int, *, http_status: int | None = None, message: str | None = None
    ) -> StartOutcome:
        return StartOutcome(
            kind,
            http_status=http_status,
            message=self._redact(message) if message is not None else None,
            attempts=attempts,
        )

    def _skipped(self, attempts: int, last: StartOutcome) -> StartOutcome:
        return self._outcome("skipped", attempts, message=f"stopped before retrying ({last.message})")

    # -- result

    def result(self, project: str, run_id: str) -> dict[str, Any]:
        """GET a run's result; retried on anything transient since a GET is safe to repeat."""
        url = self.result_url(project, run_id)
        attempt = 0
        while True:
            attempt += 1
            response, error = self._send("GET", url, None)
            retry_after: float | None = None
            if error is not None:
                # Unlike start, a lost or timed-out GET is retried: it cannot start anything.
                failure = ApiError(self._redact(_describe(error)))
                retried = isinstance(error, httpx.TransportError)
            else:
                assert response is not None
                code = response.status_code
                if 200 <= code < 300:
                    return self._result_body(response, run_id)
                failure = ApiError(self._redact(f"{code}: {_server_message(response, self._redact)}"), code)
                retried = code in _RETRIED_STATUSES or code >= 500
                if code in _RETRIED_STATUSES:
                    retry_after = self._retry_after(response)
            if not retried or attempt >= MAX_ATTEMPTS:
                raise failure
            self._sleep(self._delay(attempt, retry_after))

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

    def _send(
        self, method: str, url: str, content: bytes | None
    ) -> tuple[httpx.Response | None, httpx.HTTPError | httpx.InvalidURL | None]:
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
            self._emit(self._log, f"← {method} {url} failed after {ms:.0f} ms: {_describe(e)}")
            self._emit(self._timing, f"{method} {url} failed after {ms:.0f} ms")
            return None, e
        except httpx.InvalidURL as e:  # e.g. a project name too long for a URL
            self._emit(self._log, f"← {method} {url} not sent: {_describe(e)}")
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


def _describe(error: httpx.HTTPError | httpx.InvalidURL) -> str:
    detail = " ".join(str(error).split())
    if isinstance(error, httpx.InvalidURL):
        return f"invalid URL: {detail}"
    if isinstance(error, httpx.ConnectTimeout):
        return "could not connect: connect timeout"
    if isinstance(error, httpx.PoolTimeout):
        return "could not connect: no free connection in the pool (pool timeout)"
    if isinstance(error, httpx.ConnectError):
        return f"could not connect: {detail or 'connection failed'}"
    if isinstance(error, httpx.ReadTimeout):
        return "read timeout"
    if isinstance(error, httpx.WriteTimeout):
        return "write timeout"
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError)):
        return f"connection lost after sending ({detail})" if detail else "connection lost after sending"
    if isinstance(error, httpx.WriteError):
        return f"write error: {detail}" if detail else "write error"
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def _server_message(response: httpx.Response, redact: Callable[[str], str]) -> str:
    """The JSON body's `message` (with its `details`, briefly), else the text or the reason phrase.

    Redacted before it is cut short: a secret cut in half could no longer be recognised."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str) and data["message"].strip():
        message = data["message"]
        details = _details(data.get("details"))
        if details and details.strip(" ()") in message:
            details = ""  # the message already says it (the emulator's does)
        return _truncate(redact(message + details))
    text = " ".join(response.text.split())
    if text and not text.startswith("<"):  # an HTML error page says nothing a reason phrase doesn't
        return _truncate(redact(text))
    return response.reason_phrase or f"HTTP {response.status_code}"


def _details(details: object) -> str:
    if not isinstance(details, list) or not details:
        return ""
    shown: list[str] = []
    for item in details[:3]:
        if isinstance(item, dict):
            path, message = item.get("path"), item.get("message")
            if isinstance(path, list):
                path = ".".join(str(p) for p in path)
            shown.append(f"{path}: {message}" if path not in (None, "") else str(message))
        else:
            shown.append(str(item))
    more = f"; +{len(details) - 3} more" if len(details) > 3 else ""
    return f" ({'; '.join(shown)}{more})"


def _truncate(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
