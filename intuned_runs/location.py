"""Where a state lives (docs/shared-state.md, URLs): a path, or the URL of a shared backend, parsed in
this one place. The backends (`state.backend.open_backend`) dispatch on the type.

    .intuned-runs/state.json                                  FileLocation (relative to the repository)
    postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DBNAME[?name=NAME&schema=SCHEMA]   PostgresLocation
    s3://BUCKET/KEY[?endpoint=URL&region=REGION&path_style=true]                  S3Location

Anything else that looks like a URL (`file://`, `gs://`, a typo) is an error naming the supported schemes,
never a relative file path. `display` is what messages, plans and saved plans show: the password masked.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from msgspec import Struct

SCHEMES = ("postgresql://", "postgres://", "s3://")
SUPPORTED = "a path, postgresql://… (or postgres://…) or s3://…"
DEFAULT_NAME = "default"
DEFAULT_SCHEMA = "intuned_runs"
# A scheme of two or more characters and a colon: `s3:/b/k` is a mistyped URL, never a relative path
# (`C:/…` is a path).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MASK = "***"


class LocationError(ValueError):
    """The message says what is wrong; the caller adds where the value came from."""


class FileLocation(Struct, frozen=True):
    path: Path
    display: str

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()


class PostgresLocation(Struct, frozen=True):
    conninfo: str  # the URL libpq connects with (name and schema removed; may hold a password)
    name: str
    schema: str
    display: str  # the URL with its password masked
    password: str | None = None

    def __repr__(self) -> str:  # conninfo and password may hold the password
        return f"PostgresLocation(display={self.display!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        return () if self.password is None else (self.password,)


class S3Location(Struct, frozen=True):
    url: str
    bucket: str
    key: str  # the state object's key, without a leading "/"
    endpoint: str | None
    region: str | None
    path_style: bool
    display: str

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()  # credentials come from the AWS chain, redacted by the repository (docs/secrets.md)


Location = FileLocation | PostgresLocation | S3Location


def is_url(text: str) -> bool:
    return bool(_URL.match(text))


def parse_location(text: str, repository: Path) -> Location:
    """The location `text` names; a relative path resolves against the repository. LocationError if bad."""
    if not is_url(text):
        if not text:
            raise LocationError("must be a non-empty string")
        path = (repository / text).resolve()
        if not Path(text).is_absolute() and not path.is_relative_to(repository):
            # A relative state stays inside the repository; an absolute one is taken as given
            # (docs/configuration.md, Paths).
            raise LocationError(
                f"state {text} resolves outside the repository {repository}: use a path inside it, or an absolute path"
            )
        try:
            display = path.relative_to(repository).as_posix()
        except ValueError:
            display = str(path)
        return FileLocation(path, display)
    scheme = text.split(":", 1)[0].lower()
    if not text[len(scheme) :].startswith("://"):
        if scheme in ("postgresql", "postgres", "s3"):
            raise LocationError(f"state URL {mask_password(text)} is malformed: write {scheme}://…")
        raise LocationError(f"unsupported state URL scheme '{scheme}:': the state is {SUPPORTED}")
    if scheme in ("postgresql", "postgres"):
        return _postgres(text)
    if scheme == "s3":
        return _s3(text)
    raise LocationError(f"unsupported state URL scheme '{scheme}://': the state is {SUPPORTED}")


def mask_password(url: str) -> str:
    """The URL with the password of its user info replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))


def _query(parts_query: str, text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(parts_query, keep_blank_values=True, strict_parsing=bool(parts_query))
    except ValueError as e:
        raise LocationError(f"state URL {mask_password(text)} has a malformed query: {e}") from None


def _postgres(text: str) -> PostgresLocation:
    try:
        parts = urlsplit(text)
        password = parts.password
        parts.port  # noqa: B018 - a non-numeric port raises here
    except ValueError as e:
        raise LocationError(f"state URL {mask_password(text)} is malformed: {e}") from None
    display = mask_password(text)
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise LocationError(f"state URL {display} needs a database name: postgresql://HOST/DBNAME")
    name, schema = DEFAULT_NAME, DEFAULT_SCHEMA
    rest: list[tuple[str, str]] = []
    for key, value in _query(parts.query, text):
        if key == "name":
            name = value
        elif key == "schema":
            schema = value
        else:
            rest.append((key, value))  # libpq's own parameters (sslmode, connect_timeout, …)
    if not name:
        raise LocationError(f"state URL {display}: name= must not be empty")
    if not _IDENTIFIER.match(schema):
        raise LocationError(f"state URL {display}: schema={schema!r} must be a plain identifier (letters, digits, _)")
    conninfo = urlunsplit(parts._replace(query=urlencode(rest), fragment=""))
    return PostgresLocation(
        conninfo=conninfo,
        name=name,
        schema=schema,
        display=display,
        password=unquote(password) if password else None,
    )


def _s3(text: str) -> S3Location:
    parts = urlsplit(text)
    display = mask_password(text)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or "@" in bucket or not key or key.endswith("/"):
        raise LocationError(f"state URL {display} needs a bucket and an object key: s3://BUCKET/KEY")
    endpoint = region = None
    path_style = False
    for name, value in _query(parts.query, text):
        if name == "endpoint":
            endpoint = value
        elif name == "region":
            region = value
        elif name == "path_style":
            if value not in ("true", "false"):
                raise LocationError(f"state URL {display}: path_style must be true or false, not {value!r}")
            path_style = value == "true"
        else:
            raise LocationError(
                f"state URL {display}: unknown parameter {name!r} (known: endpoint, region, path_style)"
            )
    return S3Location(
        url=text,
        bucket=bucket,
        key=unquote(key),
        endpoint=endpoint,
        region=region,
        path_style=path_style,
        display=display,
    )
