"""Hostile input end to end (docs/security.md, Hostile input): templates that nest deeply, grow without bound or
are not valid Unicode, in every position and every command, and files that are not regular files. Each is one
problem line `FILE:LINE:COL: error: PATH: MESSAGE`, exit 1, nothing sent, the state untouched; peak memory is
read from the kernel's accounting of a child process, not timed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import Repo, cli_command, remote, state_document, subprocess_env

LARGE = "template result too large: {} would make more than 1 MiB"
DEEP = "template nests too deeply (more than 50 levels, or 16 nested loops): flatten it"
HOSTILE = {
    "brackets": ("{{ " + "[" * 80 + "]" * 80 + " }}", DEEP),
    "parens": ("{{ " + "(" * 500 + "1" + ")" * 500 + " }}", DEEP),
    "center": ("{{ 'a'|center(10**9) }}", LARGE.format("filter 'center'")),
    "format": ("{{ '%*s'|format(10**9, 'a') }}", LARGE.format("'%' formatting")),
    "indent": ("{{ 'a'|indent(10**9) }}", LARGE.format("filter 'indent'")),
    "lipsum": ("{{ lipsum(10**6) }}", LARGE.format("lipsum()")),
    "surrogate": ("{{ '\\ud800' }}", "not valid Unicode: '\\ud800' at character 1 is a lone surrogate"),
}
# One run; POSITION marks where the hostile template goes (the others stay plain).
RUN = """\
runs:
  - name: {name}
    project: {project}
    labels: {{team: {labels}}}
    request:
      api: products/list
      parameters: {{p: {request}}}
"""
POSITIONS = {
    "name": (2, "name"),
    "project": (3, "project"),
    "labels": (4, "labels.team"),
    "request": (7, "request.parameters.p"),
}
COMMANDS = ("validate", "render", "plan", "apply")


def hostile_run(position: str, template: str) -> tuple[str, int]:
    """The run file, and the column of the hostile value (the YAML node: its opening quote)."""
    plain = {"name": "daily", "project": "shop", "labels": "pricing", "request": "us"}
    plain[position] = json.dumps(template)  # a JSON string is a YAML double-quoted scalar
    text = RUN.format(**plain)
    line = text.splitlines()[POSITIONS[position][0] - 1]
    return text, line.index('"') + 1


def command(repo: Repo, name: str, emulator: Emulator) -> tuple[int, list[str]]:
    """Run a command; its exit code and the lines that carry problems (stdout for validate, else stderr)."""
    argv = {"validate": ["validate"], "render": ["render"], "plan": ["plan", *remote(emulator)]}.get(
        name, ["apply", "--yes", *remote(emulator)]
    )
    result = repo.cli(*argv)
    lines = result.out_lines if name == "validate" else result.err_lines
    return result.code, [line for line in lines if ": error: " in line]


@pytest.fixture
def with_state(user_repo: Repo) -> Repo:
    user_repo.write_state(state_document({}))
    return user_repo


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_templates_are_one_addressed_error(
    with_state: Repo, emulator: Emulator, case: str, position: str, name: str
) -> None:
    template, message = HOSTILE[case]
    text, col = hostile_run(position, template)
    with_state.write("runs.d/h.yaml", text)
    before = with_state.state_path.read_bytes()
    line, path = POSITIONS[position]
    code, errors = command(with_state, name, emulator)
    assert (code, errors) == (1, [f"runs.d/h.yaml:{line}:{col}: error: {path}: {message}"])
    assert emulator.received == []
    assert with_state.state_path.read_bytes() == before


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_templates_in_the_config_are_one_addressed_error(
    with_state: Repo, emulator: Emulator, case: str, name: str
) -> None:
    template, message = HOSTILE[case]
    with_state.write("intuned-runs.yaml", f"vars:\n  region: {json.dumps(template)}\n")
    with_state.write("runs.d/h.yaml", RUN.format(name="daily", project="shop", labels="x", request="us"))
    before = with_state.state_path.read_bytes()
    code, errors = command(with_state, name, emulator)
    assert (code, errors) == (1, [f"intuned-runs.yaml:2:11: error: vars.region: {message}"])
    assert emulator.received == []
    assert with_state.state_path.read_bytes() == before


def run_cli(repo: Repo, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own: a test of a FIFO must not hang the suite."""
    return subprocess.run(
        [*cli_command(), "-C", str(repo.root), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        check=False,
    )


NOT_REGULAR = "is {}, not a regular file: only regular files are read"
LOOP = "symlink loop: the link leads back to itself; point it at a file or remove it"
OUTSIDE = "resolves outside the repository: move the file inside it or remove the link"


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (make_fifo, NOT_REGULAR.format("a FIFO")),
        (make_socket, NOT_REGULAR.format("a socket")),
        (lambda path: path.symlink_to(path.name), LOOP),
        (lambda path: path.symlink_to("/dev/zero"), OUTSIDE),
    ],
    ids=["fifo", "socket", "symlink-loop", "dev-zero"],
)
@pytest.mark.parametrize("where", ["runs.d/x.yaml", "intuned-runs.yaml"])
def test_only_regular_files_are_read(repo: Repo, make: object, message: str, where: str) -> None:
    repo.write("runs.d/ok.yaml", RUN.format(name="daily", project="shop", labels="x", request="us"))
    make(repo.root / where)  # type: ignore[operator]
    for argv in (["validate"], ["plan"], ["apply", "--yes", "--base-url", "http://127.0.0.1:9"]):
        done = run_cli(repo, *argv)
        problems = done.stdout if argv == ["validate"] else done.stderr
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert f"{where}: error: {message}" in problems.splitlines(), (argv, problems)
        assert "unexpected error" not in done.stdout + done.stderr


def test_a_fifo_given_as_config_is_an_error(repo: Repo) -> None:
    os.mkfifo(repo.root / "c.yaml")
    done = run_cli(repo, "--config", "c.yaml", "validate")
    assert (done.returncode, done.stdout) == (1, f"c.yaml: error: {NOT_REGULAR.format('a FIFO')}\n")


def test_huge_integers_in_yaml_are_errors(repo: Repo) -> None:
    repo.write("runs.d/h.yaml", RUN.format(name="daily", project="shop", labels="x", request="9" * 5000))
    result = repo.cli("validate")
    message = "integer has more than 4,300 digits: quote it to keep it as text"
    assert (result.code, result.out_lines[0]) == (1, f"runs.d/h.yaml:7:23: error: {message}")


def test_invalid_unicode_escapes_in_yaml_are_errors(repo: Repo) -> None:
    repo.write("runs.d/h.yaml", RUN.format(name="daily", project="shop", labels="x", request='"\\ud800"'))
    result = repo.cli("validate")
    assert (result.code, result.out_lines[0]) == (
        1,
        "runs.d/h.yaml:7:26: error: invalid YAML: found invalid Unicode character escape code",
    )


_PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.stdout.write(done.stdout + done.stderr)
"""


def peak(repo: Repo, *argv: str) -> tuple[int, int, str]:
    """Exit code, peak resident memory in MiB and output of `intuned-runs ARGV` in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *cli_command(), "-C", str(repo.root), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
        check=True,
    )
    first, _, output = done.stdout.partition("\n")
    code, kib = map(int, first.split())
    return code, kib // 1024, output


BOMBS = [
    "{{ 'a'|center(10**9) }}",
    "{{ '%*s'|format(10**9, 'a') }}",
    "{{ 'a'|indent(10**9) }}",
    "{{ ('a' * 600000)|wordwrap(1) }}",
    "{{ ['a' * 600000, 'b' * 600000]|join }}",
    "{{ lipsum(10**6) }}",
    "{{ 'a' * 10**9 }}",
    "{{ ['a' * 1000] * 10**6 }}",
    "{{ ('a' * 1000)|replace('a', 'b' * 10**6) }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{% set s = 'a' * 1000000 %}{{ [s] * 1 + [s] }}",
    "{% set s = 'a' * 1000000 %}{{ [s, s, s, s]|tojson }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
]


def test_bombs_stay_within_bounded_memory(repo: Repo) -> None:
    runs = "".join(
        f"  - name: b{i}\n    project: shop\n    request: {{p: {json.dumps(b)}}}\n" for i, b in enumerate(BOMBS)
    )
    repo.write("runs.d/bombs.yaml", "runs:\n" + runs)
    code, mib, output = peak(repo, "validate")
    assert code == 1
    lines = [line for line in output.splitlines() if ": error: " in line]
    assert len(lines) == len(BOMBS), output
    assert all("template result too large" in line for line in lines), output
    assert mib < 200, f"validate of template bombs peaked at {mib} MiB"


def test_a_large_file_is_validated_within_a_gigabyte(repo: Repo) -> None:
    """The 80,000-run, 5 MB file of docs/security.md (measured: about 570 MiB)."""
    lines = [f"  - {{name: r{i}, request: {{api: x, parameters: {{n: {i}}}}}}}" for i in range(80_000)]
    repo.write("runs.d/big.yaml", "defaults: {project: p}\nruns:\n" + "\n".join(lines) + "\n")
    code, mib, output = peak(repo, "validate")
    assert (code, output) == (0, "80000 runs valid.\n")
    assert mib < 1024
