"""The S3 backend's objects (docs/shared-state-s3.md): reads with their ETag, conditional writes, and every
botocore error turned into one line saying what to do.

boto3 is imported here, and this module only by `state.s3`, which `open_backend` imports for `s3://`
states only: the core never needs boto3. A conditional write that loses (HTTP 412, or 409 when two
conditional writes race) is `Conflict`, which callers word for their object; everything else is a
StateError. Credentials come from the standard AWS chain and never appear in a message: a message holds
the error code and the server's text, never a request, its headers or its signature.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
from msgspec import Struct

from intuned_runs.errors import StateError

# The per-request timeouts of the Run API client (docs/apply.md, Sending); a few retries of what surely
# failed (botocore's standard mode: throttling, 5xx, connection errors).
CONNECT_TIMEOUT, READ_TIMEOUT, ATTEMPTS = 10, 60, 3
POOL = 16  # journal objects are read in parallel

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict"}


class S3Address(Protocol):
    """Where the state is (`location.S3Location`, parsed from `s3://BUCKET/KEY?…`)."""

    @property
    def bucket(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def endpoint(self) -> str | None: ...
    @property
    def region(self) -> str | None: ...
    @property
    def path_style(self) -> bool: ...


class Conflict(Exception):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


class Got(Struct, frozen=True):
    body: bytes
    etag: str
    server_time: float | None  # the response's `Date`, seconds since the epoch


class Objects:
    """One bucket, through one boto3 client (thread-safe: journal writer, lease renewal and readers share it)."""

    def __init__(self, address: S3Address, *, display: str) -> None:
        self.bucket = address.bucket
        self.display = display
        self.endpoint = address.endpoint
        config = Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"max_attempts": ATTEMPTS, "mode": "standard"},
            max_pool_connections=POOL,
            s3={"addressing_style": "path" if address.path_style else "auto"},
        )
        try:
            self._client: Any = boto3.session.Session().client(
                "s3", endpoint_url=address.endpoint, region_name=address.region, config=config
            )
        except (BotoCoreError, ValueError) as e:
            raise self._error(e, "setting up the S3 client") from None
        # server clock - local clock, from the last response's `Date` (leases run on the server's clock)
        self.skew = 0.0

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def server_now(self) -> float:
        return time.time() + self.skew

    def get(self, key: str) -> Got | None:
        """The object and its ETag; None when there is no such object."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"].read()
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404"):
                self._note_date(e.response)
                return None
            raise self._error(e, f"reading {self.url(key)}") from None
        except BotoCoreError as e:
            raise self._error(e, f"reading {self.url(key)}") from None
        return Got(body, response["ETag"], self._note_date(response))

    def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        """Write `body` only if the object is absent (`if_match=None`: `If-None-Match: *`) or still has
        the ETag `if_match`; returns the new ETag. Conflict when the condition does not hold."""
        condition = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"}
        try:
            response = self._client.put_object(Bucket=self.bucket, Key=key, Body=body, **condition)
        except ClientError as e:
            if _code(e) in _CONFLICT or _status(e) in (409, 412) or (if_match and _code(e) == "NoSuchKey"):
                self._note_date(e.response)
                # A retry of a write that succeeded but whose answer was lost finds its own body there.
                mine = self.get(key)
                if mine is not None and mine.body == body:
                    return mine.etag
                raise Conflict(key) from None
            raise self._error(e, f"writing {self.url(key)}") from None
        except BotoCoreError as e:
            raise self._error(e, f"writing {self.url(key)}") from None
        self._note_date(response)
        etag: str = response["ETag"]
        return etag

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the object (only while it still has the ETag `if_match`, when given); Conflict if not."""
        condition = {"IfMatch": if_match} if if_match is not None else {}
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key, **condition)
        except ClientError as e:
            if _code(e) in _CONFLICT or _status(e) == 412:
                raise Conflict(key) from None
            if _code(e) == "NoSuchKey":
                return
            raise self._error(e, f"removing {self.url(key)}") from None
        except BotoCoreError as e:
            raise self._error(e, f"removing {self.url(key)}") from None

    def delete_many(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            chunk = keys[start : start + 1000]
            try:
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as e:
                raise self._error(e, f"removing journal objects of {self.display}") from None
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StateError(
                    f"cannot remove {self.url(first.get('Key', '?'))}: {first.get('Code', '?')} "
                    f"{first.get('Message', '')}".rstrip()
                )

    def list(self, prefix: str) -> list[str]:
        """The keys under `prefix`, in S3's (lexicographic) order."""
        keys: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, f"listing {self.url(prefix)}") from None
        return keys

    def _note_date(self, response: dict[str, Any]) -> float | None:
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if not date:
            return None
        try:
            server = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return None
        # `Date` has whole seconds: the server's clock is up to 1 s past it. Leases are written with this
        # upper bound, so a lease never ends sooner than its holder believes.
        self.skew = server + 1 - time.time()
        return server

    def _error(self, e: Exception, action: str) -> StateError:
        where = f"the S3 endpoint {self.endpoint}" if self.endpoint else "S3"
        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return StateError(
                f"no AWS credentials for {self.display}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE (the standard AWS chain)"
            )
        if isinstance(e, ClientError):
            code, message = _code(e), str(e.response.get("Error", {}).get("Message", "")).strip()
            if code == "NoSuchBucket":
                return StateError(
                    f"S3 bucket {self.bucket!r} does not exist at {where}: create it, or fix the bucket in the "
                    f"state URL {self.display}"
                )
            if code in _DENIED or _status(e) == 403:
                return StateError(
                    f"{where} refused {action} ({code}): check the AWS credentials (AWS_ACCESS_KEY_ID, "
                    f"AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and their permissions on bucket {self.bucket!r}"
                )
            return StateError(f"{where} failed {action}: {code} {message[:200]}".rstrip())
        name = type(e).__name__
        if "Timeout" in name:
            return StateError(f"{where} did not answer in time while {action}: retry, or check the network")
        if "Connect" in name or "Endpoint" in name:
            return StateError(
                f"cannot reach {where} while {action}: check the endpoint of the state URL {self.display} "
                "and the network"
            )
        return StateError(f"{where} failed {action}: {e}")


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: ClientError) -> int | None:
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None
