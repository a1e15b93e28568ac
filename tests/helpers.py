"""What the tests share: the user repository they build in tmp_path, the CLI called in-process, the
standard repository and its secrets, hand-written state files, and processes (the installed command, an
emulator of its own, a pseudo-terminal).

`repo.cli(...)` runs `intuned_runs.cli.main` with `-C <repo>` and captured streams, as `intuned-runs` would
(no TTY: it never prompts). The API is the emulator on 127.0.0.1: in-process (`with Emulator(...) as emu:`)
or in a process of its own (`EmulatorProcess`) when a test kills the apply. Fixtures are in conftest.py.
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intuned_runs.cli import main
from intuned_runs.emulator.server import Emulator
from intuned_runs.report.output import Output
from tests.state_backends import FileStateStore, StateStore

# The commands that read the state, so take --state (docs/shared-state.md).
STATE_COMMANDS = {"validate", "render", "plan", "apply", "watch", "status", "state"}
GLOBAL_VALUE_OPTIONS = {"-C", "--config", "--env", "--var", "--workspace-id", "--base-url"}
PROJECT = Path(__file__).resolve().parents[1]  # this repository's checkout
CORPUS = Path(__file__).resolve().parent / "corpus"

WS = "3f2c5b9e-8a4d-4c1e-9b7a-1d2e3f4a5b6c"
OTHER_WS = "9b1d7e2a-4c3f-4a5b-8d6e-0f1a2b3c4d5e"
API_KEY = "test-api-key-7Hq2Zr9"
# Secret values used by the standard repository: distinctive, so a leak is easy to find.
SECRETS = {"HOOK_TOKEN": "hook-T0ken-4f9c2a", "PROXY_URL": "http://scraper:Pr0xyPass-81d3@proxy.example:8080"}

# Variables that change the tool's behaviour: every test starts without them.
TOOL_VARIABLES = (
    "INTUNED_API_KEY",
    "INTUNED_WORKSPACE_ID",
    "INTUNED_BASE_URL",
    "INTUNED_RUNS_ENV",
    "GITHUB_ACTIONS",
    "NO_COLOR",
    "FORCE_COLOR",  # a CI runner may set it: tests that want colour set it themselves
    *SECRETS,
)

# The standard repository: an on-change run, an `always` run with a secret header, a manual run,
# and a run of another project with a secret proxy. Line numbers below are asserted by tests.
SHOP_YAML = """\
defaults:
  project: shop
  labels: {team: pricing}
runs:
  - name: daily-us
    request:
      api: products/list
      parameters: {region: us, limit: 100}
  - name: hourly
    trigger: always
    request:
      api: products/list
      parameters: {region: eu}
      sink:
        type: webhook
        url: https://hooks.example.com/intuned
        headers: {Authorization: "Bearer {{ secret('HOOK_TOKEN') }}"}
  - name: backfill
    trigger: manual
    request:
      api: products/backfill
      parameters: {}
"""
OPS_YAML = """\
runs:
  - name: orders
    project: portal
    labels: {team: ops}
    request:
      api: orders/sync
      parameters: {since: "2026-01-01"}
      proxy: "{{ secret('PROXY_URL') }}"
"""

# What the emulator must receive for them (real secret values, nothing added).
BODY_DAILY_US = {"api": "products/list", "parameters": {"region": "us", "limit": 100}}
BODY_HOURLY = {
    "api": "products/list",
    "parameters": {"region": "eu"},
    "sink": {
        "type": "webhook",
        "url": "https://hooks.example.com/intuned",
        "headers": {"Authorization": "Bearer " + SECRETS["HOOK_TOKEN"]},
    },
}
BODY_BACKFILL = {"api": "products/backfill", "parameters": {}}
BODY_ORDERS = {"api": "orders/sync", "parameters": {"since": "2026-01-01"}, "proxy": SECRETS["PROXY_URL"]}


def context(workspace: str | None = None, env: str | None = None, state: str = ".intuned-runs/state.json") -> str:
    """The line plan and apply print on stderr before planning (docs/plan.md, Text output)."""
    where = f" (env {env})" if env else ""
    return f"Planning against workspace {workspace or '(not set)'}{where} with state {state}"


def remote(emu: Emulator | str, workspace: str = WS) -> list[str]:
    """The flags pointing a command at an emulator (or any loopback URL)."""
    url = emu if isinstance(emu, str) else emu.url
    return ["--base-url", url, "--workspace-id", workspace]


def state_entry(request: dict[str, Any], fingerprint: str, **fields: Any) -> dict[str, Any]:
    """One entry of a hand-written state file (docs/state.md shape)."""
    entry: dict[str, Any] = {
        "fingerprint": fingerprint,
        "request": request,
        "run_id": "ru_previous",
        "submitted_at": "2026-11-01T10:00:00Z",
        "status": "completed",
        "status_at": "2026-11-01T10:05:00Z",
        "unknown": None,
        "removed_at": None,
    }
    entry.update(fields)
    return entry


def state_document(entries: dict[str, dict[str, Any]], **fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": 1,
        "lineage": "5d0c7a4e-1f2b-4c3d-9e8f-7a6b5c4d3e2f",
        "serial": 3,
        "workspace_id": WS,
        "fingerprint_version": 1,
        "schema_version": "0.0.2",
        "entries": entries,
    }
    document.update(fields)
    return document


def bodies(emu: Emulator, status: int | None = None) -> list[tuple[str, dict[str, Any] | None]]:
    """(project, body) of every start request the emulator received (optionally only with `status`)."""
    return [(r.project, r.body) for r in emu.received if status is None or r.status == status]


def sort_bodies(items: list[tuple[str, dict[str, Any] | None]]) -> list[tuple[str, dict[str, Any] | None]]:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


# -- processes ---------------------------------------------------------------------------------------


def cli_command() -> list[str]:
    """The installed `intuned-runs` command (or `python -m intuned_runs` where its folder is not on PATH)."""
    found = shutil.which("intuned-runs")
    return [found] if found else [sys.executable, "-m", "intuned_runs"]


def standard_env() -> dict[str, str]:
    return subprocess_env(INTUNED_API_KEY=API_KEY, **SECRETS)


def run_in_terminal(
    argv: list[str], answer: str, environment: dict[str, str], timeout: float = 30.0
) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as stdin, stdout and stderr, as a person would; type
    `answer` (and Enter) at the first `[y/N]` prompt. Returns (exit code, everything shown)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        os.execvpe(argv[0], argv, environment)
    shown, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal (EIO on Linux)
                break
            if not chunk:
                break
            shown += chunk
            if not answered and b"[y/N]" in shown:
                os.write(fd, answer.encode() + b"\n")
                answered = True
    finally:
        os.close(fd)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode("utf-8", "replace").replace("\r\n", "\n")


_EMULATOR_SCRIPT = """
import sys, time
from pathlib import Path
from intuned_runs.emulator.server import Emulator
emulator = Emulator(record_file=Path(sys.argv[1]), latency_ms=int(sys.argv[2]), complete_after=0).start()
print(emulator.url, flush=True)
time.sleep(float(sys.argv[3]))  # stops by itself even if the test never kills it
"""


class EmulatorProcess:
    """An emulator in a process of its own, recording every start request to `record_file` (JSON lines)."""

    def __init__(self, record_file: Path, latency_ms: int, lifetime: float = 120.0) -> None:
        self.record_file = record_file
        self.process = subprocess.Popen(
            [sys.executable, "-c", _EMULATOR_SCRIPT, str(record_file), str(latency_ms), str(lifetime)],
            stdout=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def records(self) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        lines = self.record_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
        # Where the state is kept (tests/state_backends.py): the default file, unless the `state_backend`
        # fixture attached another backend; `cli` then passes its --state to every command reading state.
        self.store: StateStore = FileStateStore(root)

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
        return run_main("-C", str(self.root), *self.with_state(argv))

    def context(self, workspace: str | None = None, env: str | None = None) -> str:
        """The context line of a plan or apply against this repository's state."""
        return context(workspace, env, self.store.display)

    def with_state(self, argv: tuple[str, ...] | list[str]) -> list[str]:
        """`argv` with the store's `--state URL` after it when its command reads the state."""
        command, rest = None, list(argv)
        while rest and command is None:
            arg = rest.pop(0)
            if arg in GLOBAL_VALUE_OPTIONS:
                rest = rest[1:]
            elif not arg.startswith("-"):
                command = arg
        if not self.store.args or command not in STATE_COMMANDS or "--state" in argv or "--emulator" in argv:
            return list(argv)
        return [*argv, *self.store.args]

    def standard(self) -> Repo:
        """The standard repository: SHOP_YAML and OPS_YAML."""
        self.write("runs.d/shop.yaml", SHOP_YAML)
        self.write("runs.d/ops.yaml", OPS_YAML)
        return self

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    @property
    def state_path(self) -> Path:
        return self.root / ".intuned-runs" / "state.json"

    @property
    def journal_path(self) -> Path:
        return self.root / ".intuned-runs" / "state.json.journal"

    def state(self) -> dict[str, Any]:
        raw = self.store.read()
        assert raw is not None, f"no state in {self.store.display}"
        data: dict[str, Any] = json.loads(raw)
        return data

    def write_state(self, document: dict[str, Any]) -> None:
        self.store.write_bytes((json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of an `intuned-runs` subprocess: ours minus the tool's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in TOOL_VARIABLES}
    env.update(extra)
    return env


def check_jsonschema(files: list[Path], *schema: str) -> dict[str, list[str]]:
    """check-jsonschema (a third party) on `files` with `schema` (`--schemafile PATH` or `--builtin-schema
    NAME`): file name → the messages of its errors (empty when it is valid). One process for all files."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, "--output-format", "json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stdout)
    assert not report.get("parse_errors"), report["parse_errors"]
    found: dict[str, list[str]] = {str(f): [] for f in files}
    for error in report["errors"]:
        deepest = error.get("best_deep_match") or error  # errors without sub-errors carry their own message
        found[error["filename"]].append(f"{deepest['path']}: {deepest['message']}")
    assert done.returncode == (1 if any(found.values()) else 0), done.stderr
    return found
