"""Fixtures of every test: a clean environment, a user repository in tmp_path, an emulator on 127.0.0.1.

`clean_env` removes the variables that change the tool's behaviour (a CI runner sets GITHUB_ACTIONS, a
developer may export INTUNED_*), so tests see exactly the environment they set; `env` also sets the API key
and the standard secrets. The shared pieces themselves are in `tests/helpers.py`.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import API_KEY, SECRETS, TOOL_VARIABLES, Repo
from tests.s3_server import moto_server, s3  # noqa: F401  (fixtures: moto's S3 server, a fresh bucket)
from tests.services import PostgresServer, postgres_cluster
from tests.state_backends import PostgresStateStore, S3StateStore


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in TOOL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


@pytest.fixture
def repo(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Repo:
    root = tmp_path / "repo"
    root.mkdir()
    return Repo(root)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean environment with the API key and the standard secrets set.

    `apply` installs SIGINT/SIGTERM handlers in the process it runs in; they are restored afterwards so
    one in-process apply does not change how the test session handles Ctrl-C.
    """
    for name in TOOL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTUNED_API_KEY", API_KEY)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield monkeypatch
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


@pytest.fixture
def user_repo(tmp_path: Path, env: pytest.MonkeyPatch) -> Repo:
    root = tmp_path / "repo"
    root.mkdir()
    return Repo(root)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(complete_after=0) as emu:
        yield emu


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the session (tests/services.py)."""
    with postgres_cluster() as server:
        yield server


STATE_BACKENDS = ["file", "postgresql", "s3"]  # tests/state_backends.py


@pytest.fixture(params=STATE_BACKENDS)
def state_backend(request: pytest.FixtureRequest) -> Callable[[Repo], Repo]:
    """Attach a state of this backend to a repository (tests/state_backends.py): `Repo.cli` passes its
    `--state`, `Repo.state()` and `Repo.store` read and write it behind the tool's back. The file backend
    is the repository's default state."""
    if request.param == "file":
        return lambda repo: repo
    if request.param == "s3":
        place = request.getfixturevalue("s3")  # a fresh bucket, AWS credentials in the environment
        # A killed holder's lease expires in seconds, not a minute (docs/shared-state-s3.md, Testing).
        request.getfixturevalue("monkeypatch").setenv("INTUNED_RUNS_S3_LEASE_SECONDS", "5")

        def attach_s3(repo: Repo) -> Repo:
            repo.store = S3StateStore(place, f"test-{uuid.uuid4().hex[:12]}/state.json")
            return repo

        return attach_s3
    server: PostgresServer = request.getfixturevalue("postgres_server")

    def attach(repo: Repo) -> Repo:
        name = f"test-{uuid.uuid4().hex[:12]}"  # a state of its own in the session's database
        repo.store = PostgresStateStore(server.url(name), server.conninfo(), name)
        return repo

    return attach
