"""moto's standalone S3 server on 127.0.0.1, for the S3 backend's tests (docs/shared-state-s3.md, Testing).

`moto_server` (session) starts `python -m moto.server` on a free loopback port and yields its endpoint.
When it cannot start, the test skips saying what to install, or fails under
INTUNED_RUNS_REQUIRE_SERVICES=1 (CI must never pass by skipping). `s3_env` gives each test a fresh
bucket and an isolated AWS environment whose secret key is a canary value.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

REQUIRE = "INTUNED_RUNS_REQUIRE_SERVICES"
INSTALL = "pip install 'moto[server]' boto3 (or pip install -e '.[test]')"
ACCESS_KEY_ID = "AKIAINTUNEDRUNSTEST1"
# A canary: it must appear in no output, log or file (docs/shared-state.md, Credentials).
SECRET_ACCESS_KEY = "s3-secret-CANARY-7f3d9b2e1a4c"
REGION = "us-east-1"


def unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason} ({REQUIRE}=1: services must start): {INSTALL}")
    pytest.skip(f"{reason}: {INSTALL}")


@dataclass(frozen=True)
class MotoServer:
    endpoint: str  # http://127.0.0.1:PORT
    log: Path  # what the server printed (a canary test reads it)
    access_key: str = ACCESS_KEY_ID
    secret_key: str = SECRET_ACCESS_KEY  # a canary


def _wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as e:
        unavailable(f"moto's S3 server cannot start ({e.name} is not installed)")
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        if not _wait_for(port, process):
            unavailable(f"moto's S3 server did not start on 127.0.0.1:{port}: {log.read_text()[-500:]}")
        yield MotoServer(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def aws_environment(home: Path) -> dict[str, str]:
    """Test credentials from the standard chain, nothing from the machine's own AWS configuration."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# Variables of the machine that would point the tests elsewhere.
FOREIGN = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION")


@dataclass(frozen=True)
class S3Place:
    """A fresh bucket on the server, and what points the tool at it."""

    server: MotoServer
    bucket: str
    client: Any  # a boto3 S3 client, to look at (and tamper with) the objects directly

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def url(self, key: str = "state.json") -> str:
        return f"s3://{self.bucket}/{key}?endpoint={self.endpoint}&region={REGION}&path_style=true"

    def object_keys(self, prefix: str = "") -> list[str]:
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for item in response.get("Contents", ())]

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)


@pytest.fixture
def s3(moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Place:
    import boto3
    from botocore.config import Config

    for name in FOREIGN:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    client = boto3.client(
        "s3", endpoint_url=moto_server.endpoint, region_name=REGION, config=Config(s3={"addressing_style": "path"})
    )
    bucket = f"state-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3Place(moto_server, bucket, client)


@dataclass(frozen=True)
class Address:
    """What `open_backend` hands the S3 backend (the parsed `s3://` URL)."""

    bucket: str
    key: str
    endpoint: str | None
    region: str | None
    path_style: bool


def address(place: S3Place, key: str = "state.json") -> Address:
    return Address(place.bucket, key, place.endpoint, REGION, True)
