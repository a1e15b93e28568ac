"""Shared fixtures: a throw-away repository in tmp_path and the CLI called in-process.

`repo.cli(...)` runs `intuned_runs.cli.main` with `-C <repo>` and captured streams; `clean_env`
removes the variables that change the tool's behaviour (a CI runner sets GITHUB_ACTIONS, a
developer may export INTUNED_*), so tests see exactly the environment they set.
"""

from __future__ import annotations

import io
import json
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intuned_runs.cli import main
from intuned_runs.output import Output

# Variables read by the tool itself; tests set the ones they need with monkeypatch.
TOOL_VARIABLES = (
    "INTUNED_API_KEY",
    "INTUNED_WORKSPACE_ID",
    "INTUNED_BASE_URL",
    "INTUNED_RUNS_ENV",
    "GITHUB_ACTIONS",
    "NO_COLOR",
)


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def json(self) -> Any:
        return json.loads(self.out)


def run_main(*argv: str) -> CliResult:
    """`intuned-runs ARGV…` in-process, with both streams captured."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(list(argv), output=Output(stdout=stdout, stderr=stderr))
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


class Repo:
    """A user repository under tmp_path: `.git` marks its top; files are written dedented."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / ".git").mkdir(parents=True, exist_ok=True)

    def write(self, relative: str, text: str = "") -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def write_bytes(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def cli(self, *argv: str) -> CliResult:
        return run_main("-C", str(self.root), *argv)


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


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of an `intuned-runs` subprocess: ours minus the tool's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in TOOL_VARIABLES}
    env.update(extra)
    return env
