"""Colour (docs/plan.md, Colour), through a real pseudo-terminal and without one: symbols and keys coloured,
old values red and new green, errors red, warnings yellow; NO_COLOR (any value) and --no-color turn it off;
FORCE_COLOR turns it on without a TTY; NO_COLOR wins. Colour only adds SGR sequences."""

from __future__ import annotations

import re
import subprocess

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import Repo, cli_command, remote, run_in_terminal, standard_env, subprocess_env

SGR = re.compile(r"\x1b\[[0-9;]*m")
RED, GREEN, YELLOW, CYAN, MAGENTA, RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[35m", "\x1b[0m"


@pytest.fixture
def changed(user_repo: Repo, emulator: Emulator) -> Repo:
    """A plan with a new run, a changed one (old and new values), an always run and a forget."""
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", "--exclude", "orders", *remote(emulator)).code == 0
    user_repo.edit("runs.d/shop.yaml", "limit: 100", "limit: 250")
    user_repo.write("runs.d/gone.yaml", "")
    return user_repo


def plan_in_terminal(repo: Repo, *argv: str, **env: str) -> str:
    code, shown = run_in_terminal([*cli_command(), "-C", str(repo.root), "plan", *argv], "", {**standard_env(), **env})
    assert code == 0, shown
    return shown


def test_on_a_terminal_symbols_keys_and_values_are_coloured(changed: Repo) -> None:
    shown = plan_in_terminal(changed)
    assert f"{GREEN}+ portal/orders{RESET}  new  runs.d/ops.yaml:2\n" in shown
    assert f"{YELLOW}~ shop/daily-us{RESET}  changed  runs.d/shop.yaml:5\n" in shown
    assert f"    request.parameters.limit: {RED}100{RESET} → {GREEN}250{RESET}\n" in shown
    assert f"{CYAN}* shop/hourly{RESET}  always  runs.d/shop.yaml:9\n" in shown
    # colour never changes the text: without the SGR sequences it is the plain plan
    plain = changed.cli("plan")
    assert SGR.sub("", shown).splitlines()[1:] == plain.out_lines


def test_errors_are_red_and_warnings_yellow_on_a_terminal(user_repo: Repo) -> None:
    user_repo.write("runs.d/a.yaml", "runs:\n  - {name: a, project: p, request: {parameters: {c: no}}}\n")
    code, shown = run_in_terminal([*cli_command(), "-C", str(user_repo.root), "validate"], "", standard_env())
    assert code == 1
    assert f"runs.d/a.yaml:2:36: {RED}error{RESET}: request.api: request is missing required 'api'\n" in shown
    assert re.search(rf"runs\.d/a\.yaml:2:\d+: {re.escape(YELLOW)}warning{re.escape(RESET)}: ", shown)
    code, shown = run_in_terminal([*cli_command(), "aply"], "", standard_env())
    assert (code, shown) == (1, f"{RED}error{RESET}: unknown command 'aply': did you mean 'apply'?\n")


@pytest.mark.parametrize(
    ("argv", "variables"),
    [
        ([], {"NO_COLOR": "1"}),
        ([], {"NO_COLOR": ""}),
        (["--no-color"], {}),
        ([], {"NO_COLOR": "1", "FORCE_COLOR": "1"}),
    ],
    ids=["NO_COLOR", "NO_COLOR-empty", "--no-color", "NO_COLOR-wins-over-FORCE_COLOR"],
)
def test_no_colour_on_a_terminal_with_no_color(changed: Repo, argv: list[str], variables: dict[str, str]) -> None:
    shown = plan_in_terminal(changed, *argv, **variables)
    assert "\x1b" not in shown
    assert "~ shop/daily-us  changed  runs.d/shop.yaml:5\n" in shown


def run_piped(repo: Repo, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), "-C", str(repo.root), "plan"],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        check=False,
    )


@pytest.mark.parametrize(
    ("variables", "coloured"),
    [({}, False), ({"FORCE_COLOR": "1"}, True), ({"FORCE_COLOR": "0"}, False), ({"FORCE_COLOR": ""}, False)],
    ids=["no-tty", "FORCE_COLOR=1", "FORCE_COLOR=0", "FORCE_COLOR-empty"],
)
def test_without_a_terminal_only_force_color_colours(changed: Repo, variables: dict[str, str], coloured: bool) -> None:
    done = run_piped(changed, **variables)
    assert done.returncode == 0, done.stderr
    assert (f"{YELLOW}~ shop/daily-us{RESET}" in done.stdout) is coloured
    assert ("\x1b" in done.stdout) is coloured
    assert SGR.sub("", done.stdout) == changed.cli("plan").out


def test_a_blocked_run_is_magenta(user_repo: Repo) -> None:
    user_repo.write("runs.d/a.yaml", "runs:\n  - {name: a, project: p, request: {api: x, parameters: {}}}\n")
    with Emulator(complete_after=0, script=[500]) as emu:
        assert user_repo.cli("apply", "--yes", *remote(emu)).code == 1
    done = run_piped(user_repo, FORCE_COLOR="1")
    assert f"{MAGENTA}? p/a{RESET}  unknown  runs.d/a.yaml:2\n" in done.stdout
