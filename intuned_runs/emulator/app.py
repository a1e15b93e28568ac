"""The emulated Intuned Run API (docs/emulator.md), for tests, demos and benchmarks: requests in,
responses out, with no HTTP server of its own (`emulator.server` serves it on loopback).

    POST /{workspaceId}/projects/{projectName}/run/start           201 {"runId": "ru_…", "status": "pending"}
    GET  /{workspaceId}/projects/{projectName}/run/{runId}/result  200 {"runId", "status", …}

Requests go through: route (404; another method on a known route 405 with `Allow`) → fault script /
fault rates (start only) → `x-api-key` (401) → body against the pulled schema (400) → a run that moves
pending → started → final over `complete_after` seconds of the injected clock. HEAD is answered as GET,
without a body. Every start request is recorded in `received` (and `record_file`).

Every answer parses in the models of Intuned's official Python SDK (`intuned-client`, docs/emulator.md):
a failed run's `error.code` and a canceled run's `reason.type` are values the SDK accepts.
"""

from __future__ import annotations

import hmac
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import jsonschema
from jsonschema.exceptions import ValidationError
from msgspec import Struct
from msgspec.structs import replace

from intuned_runs import schema as schema_module
from intuned_runs.errors import UsageError
from intuned_runs.problems import json_path

FINAL_OUTCOMES = ("failed", "canceled")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_NANOID_ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"
_BACK_PRESSURE = (429, 503)  # answered with Retry-After
_ERROR_KINDS = {  # status -> (code, category, retirable)
    400: ("INVALID_REQUEST", "user", False),
    401: ("UNAUTHORIZED", "auth", False),
    404: ("NOT_FOUND", "user", False),
    405: ("METHOD_NOT_ALLOWED", "user", False),
    429: ("RATE_LIMITED", "infrastructure", True),
    503: ("SERVICE_UNAVAILABLE", "infrastructure", True),
}


class Received(Struct, frozen=True):
    """One start request as the emulator saw it."""

    workspace_id: str
    project: str
    body: dict[str, Any] | None  # None when the body is not a JSON object
    headers: dict[str, str]  # lower-case names
    status: int
    at: float  # time.monotonic() on receipt


class _Run(Struct, frozen=True):
    created: float  # on the injected clock
    outcome: str  # completed | failed | canceled
    api: Any
    parameters: Any


class Response(Struct, frozen=True):
    status: int
    body: bytes
    retry_after: str | None = None
    delay: float = 0.0
    allow: str | None = None  # the `Allow` header of a 405
    run_id: str | None = None  # the run it is about, for the -v log line


def error_body(status: int, message: str, details: list[dict[str, str]], correlation: str) -> bytes:
    code, category, retirable = _ERROR_KINDS.get(
        status, (HTTPStatus(status).name, "infrastructure" if status >= 500 else "user", False)
    )
    return json.dumps(
        {
            "code": code,
            "category": category,
            "message": message,
            "retirable": retirable,
            "details": details,
            "correlationId": correlation,
        }
    ).encode()


def _leaf_errors(error: ValidationError) -> Iterator[ValidationError]:
    """The errors worth showing: inside a failed oneOf/anyOf, those of the branch that nearly matched.

    A branch whose `enum`/`const` failed (a `type` discriminator such as `s3` vs `webhook`) is not the one
    the user meant; among the others, the one with the fewest errors wins.
    """
    if not error.context:
        yield error
        return
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    viable = [b for b in branches.values() if not any(e.validator in ("enum", "const") for e in b)]
    if viable:
        for sub in min(viable, key=len):
            yield from _leaf_errors(sub)
        return
    enums = [e for b in branches.values() for e in b if e.validator == "enum"]
    if enums and len({tuple(e.absolute_path) for e in enums}) == 1:
        allowed = [v for e in enums if isinstance(e.validator_value, list) for v in e.validator_value]
        enums[0].message = f"{enums[0].instance!r} is not one of {allowed!r}"
        yield enums[0]
        return
    yield error


def _detail(error: ValidationError) -> dict[str, str]:
    parts: tuple[str | int, ...] = tuple(error.absolute_path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        # Address the missing property itself (`sink.bucket`), not the object that lacks it.
        named = [p for p in error.validator_value if error.message.startswith(f"{p!r} is a required")]
        parts = (*parts, *named[:1])
    return {"path": json_path(parts), "message": error.message}


class EmulatedApi:
    """The emulated Run API, transport-independent: `respond` answers one request (thread-safe). The
    server (`emulator.server.Emulator`) serves it over HTTP on loopback."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        complete_after: float = 2.0,
        latency_ms: int = 0,
        fail: Iterable[tuple[int, float]] = (),
        result_rates: Mapping[str, float] | None = None,
        seed: int | None = None,
        script: Iterable[int] = (),
        hang_seconds: float = 0.0,
        retry_after: str = "1",
        record_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fail = tuple(fail)
        self.result_rates = dict(result_rates or {})
        if any(not 400 <= s <= 599 or not 0.0 <= r <= 1.0 for s, r in self.fail):
            raise UsageError("--fail: expected 4xx/5xx statuses with rates between 0 and 1")
        if sum(r for _, r in self.fail) > 1.0:
            raise UsageError("--fail: the rates add up to more than 1")
        if set(self.result_rates) - set(FINAL_OUTCOMES) or sum(self.result_rates.values()) > 1.0:
            raise UsageError("--result: expected failed and canceled rates adding up to at most 1")
        if complete_after < 0 or latency_ms < 0 or hang_seconds < 0:
            raise UsageError("--complete-after, --latency and hang must not be negative")
        self.api_key = api_key
        self.complete_after, self.latency_ms, self.hang_seconds = complete_after, latency_ms, hang_seconds
        self.script = list(script)  # an entry below 400 means "answer normally"
        self.retry_after, self.record_file, self.clock = retry_after, record_file, clock
        self.received: list[Received] = []
        self.first_at: float | None = None
        self.last_at: float | None = None
        self._validator = jsonschema.Draft202012Validator(schema_module.load())  # no format checker
        self._rng = random.Random(seed)
        self._runs: dict[tuple[str, str, str], _Run] = {}
        self._lock = threading.Lock()
        self._correlations = itertools.count(1)
        self._starts = 0
        self._record: IO[str] | None = None

    def open_record(self) -> None:
        if self.record_file is not None:
            self._record = self.record_file.open("a", encoding="utf-8")

    def close_record(self) -> None:
        with self._lock:
            if self._record is not None:
                self._record.close()
                self._record = None

    # -- the API ---------------------------------------------------------------------------------------

    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one request (transport-independent; thread-safe)."""
        at = time.monotonic()
        delay = self.latency_ms / 1000
        parts = target.split("?", 1)[0].split("/")
        route = not parts[0] and len(parts) in (6, 7) and parts[2] == "projects" and parts[4] == "run"
        allowed = "POST" if route and len(parts) == 6 and parts[5] == "start" else None
        allowed = "GET" if route and len(parts) == 7 and parts[6] == "result" else allowed
        if allowed is None:
            return self._error(404, f"Not found: no route for {method} {target}", delay=delay)
        if method != allowed and not (method == "HEAD" and allowed == "GET"):
            response = self._error(405, f"Method {method} not allowed here: use {allowed}", delay=delay)
            return replace(response, allow=allowed)
        is_start = allowed == "POST"
        workspace, project = parts[1], unquote(parts[3])
        parsed: Any = None
        if is_start:
            delay += self.hang_seconds
            try:
                parsed = json.loads(body)
            except ValueError as e:
                parsed = e
        if not _UUID.match(workspace):
            response = self._error(404, f"Not found: workspace id {workspace!r} is not a UUID", delay=delay)
        elif not project:
            response = self._error(404, "Not found: empty project name", delay=delay)
        elif is_start:
            forced = self._fault()
            response = (
                self._error(forced, HTTPStatus(forced).phrase + " (injected fault)", delay=delay)
                if forced
                else self._authorize(headers, delay) or self._start(workspace, project, parsed, delay)
            )
        else:
            response = self._authorize(headers, delay) or self._result(workspace, project, parts[5], delay)
        if is_start:
            self._note(workspace, project, parsed if isinstance(parsed, dict) else None, headers, response, at)
        return response

    def _fault(self) -> int:
        with self._lock:
            self._starts += 1
            if self._starts <= len(self.script):
                return self.script[self._starts - 1] if self.script[self._starts - 1] >= 400 else 0
            if self.fail:
                draw, edge = self._rng.random(), 0.0
                for status, rate in self.fail:
                    edge += rate
                    if draw < edge:
                        return status
        return 0

    def _authorize(self, headers: dict[str, str], delay: float) -> Response | None:
        key = headers.get("x-api-key", "")
        if not key:
            return self._error(401, "Missing API key: send it in the x-api-key header", delay=delay)
        if self.api_key is not None and not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return self._error(401, "Invalid API key", delay=delay)
        return None

    def _start(self, workspace: str, project: str, parsed: Any, delay: float) -> Response:
        if isinstance(parsed, ValueError):
            details = [{"path": "", "message": f"the body is not valid JSON: {parsed}"}]
        else:
            errors = self._validator.iter_errors(parsed)
            details = sorted((_detail(leaf) for e in errors for leaf in _leaf_errors(e)), key=lambda d: d["path"])
        if details:
            summary = "; ".join(f"{d['path']}: {d['message']}" if d["path"] else d["message"] for d in details)
            return self._error(400, f"Invalid request body: {summary}", details, delay=delay)
        with self._lock:
            bits = self._rng.getrandbits(126)
            run_id = "ru_" + "".join(_NANOID_ALPHABET[(bits >> (6 * i)) & 63] for i in range(21))
            outcome, draw, edge = "completed", self._rng.random() if self.result_rates else 1.0, 0.0
            for name in FINAL_OUTCOMES:
                edge += self.result_rates.get(name, 0.0)
                if draw < edge:
                    outcome = name
                    break
            self._runs[(workspace, project, run_id)] = _Run(
                self.clock(), outcome, parsed.get("api"), parsed.get("parameters")
            )
        return Response(201, json.dumps({"runId": run_id, "status": "pending"}).encode(), delay=delay, run_id=run_id)

    def _result(self, workspace: str, project: str, run_id_text: str, delay: float) -> Response:
        run_id = unquote(run_id_text)
        with self._lock:
            run = self._runs.get((workspace, project, run_id))
        if run is None:
            return replace(
                self._error(404, f"Run {run_id!r} not found in project {project!r}", delay=delay), run_id=run_id
            )
        elapsed = self.clock() - run.created
        status = (
            run.outcome
            if elapsed >= self.complete_after
            else ("started" if elapsed >= self.complete_after / 2 else "pending")
        )
        payload: dict[str, Any] = {"runId": run_id, "status": status}
        if status == "completed":
            payload["result"] = {"api": run.api, "parameters": run.parameters}
            payload["extendedPayloads"] = []
        elif status == "failed":  # the SDK's values (docs/run-api.md): an API that failed all its attempts
            payload["message"] = "The run failed (emulated)"
            payload["error"] = {
                "code": "api-attempts-failed",
                "category": "execution",
                "message": "The API failed on every attempt (emulated failure)",
                "retirable": False,
            }
        elif status == "canceled":
            payload["message"] = "The run was canceled (emulated)"
            payload["reason"] = {"type": "cancelled-user-action", "message": "The run was canceled (emulated)"}
        return Response(200, json.dumps(payload).encode(), delay=delay, run_id=run_id)

    def _error(
        self, status: int, message: str, details: list[dict[str, str]] | None = None, *, delay: float
    ) -> Response:
        return Response(
            status,
            error_body(status, message, details or [], self.correlation()),
            self.retry_after if status in _BACK_PRESSURE else None,
            delay,
        )

    def correlation(self) -> str:
        return str(uuid.UUID(int=next(self._correlations)))

    def _note(
        self,
        workspace: str,
        project: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        response: Response,
        at: float,
    ) -> None:
        received = Received(workspace, project, body, headers, response.status, at)
        with self._lock:
            self.received.append(received)
            if self.first_at is None:
                self.first_at = at
            self.last_at = at
            if self._record is not None:
                line = {"project": project, "body": body, "status": response.status, "at": at}
                self._record.write(json.dumps(line) + "\n")
                self._record.flush()  # the test reading it may SIGKILL this process next
