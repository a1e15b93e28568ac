"""What a failed request or the server said, in one line a user can act on (docs/run-api.md, Errors).

Messages are redacted before they are cut short: a secret cut in half could no longer be recognised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timezone
from email.utils import parsedate_to_datetime

import httpx

MAX_DELAY = 60.0  # cap of both the backoff and Retry-After
MESSAGE_LIMIT = 200


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


def describe(error: httpx.HTTPError | httpx.InvalidURL) -> str:
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


def server_message(response: httpx.Response, redact: Callable[[str], str]) -> str:
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
