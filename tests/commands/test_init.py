"""`intuned-runs init [DIR]` and `intuned-runs completion SHELL` end to end (docs/cli.md): a new repository
validates and applies to the emulator at once; nothing is ever overwritten; completion scripts come from the
one parser and bash accepts them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from intuned_runs.commands.init import CONFIG, EXAMPLE
from tests.helpers import cli_command, run_main, subprocess_env

CREATED = [
    "Created intuned-runs.yaml",
    "Created runs.d/example.yaml",
    "Created .intuned-runs/.gitignore",
]


def test_init_then_validate_then_apply_to_the_emulator(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    root = tmp_path / "my-runs"
    root.mkdir()
    (root / ".git").mkdir()
    init = run_main("-C", str(root), "init")
    assert (init.code, init.err) == (0, "")
    assert init.out_lines == [
        *CREATED,
        "Next: intuned-runs validate && intuned-runs apply --emulator --yes (no account needed)",
    ]
    assert (root / "intuned-runs.yaml").read_text(encoding="utf-8") == CONFIG
    assert (root / "runs.d" / "example.yaml").read_text(encoding="utf-8") == EXAMPLE
    assert (root / ".intuned-runs" / ".gitignore").read_text(encoding="utf-8") == "*.lock\n*.journal\nemulator/\n"

    validate = run_main("-C", str(root), "validate")
    assert (validate.code, validate.out, validate.err) == (0, "", "3 runs valid.\n")

    keys = [r["key"] for r in run_main("-C", str(root), "render", "--json").json()["runs"]]
    assert keys == ["my-project/products-daily", "my-project/prices-hourly", "my-project/catalog-backfill"]
    triggers = [r["trigger"] for r in run_main("-C", str(root), "render", "--json").json()["runs"]]
    assert triggers == ["on-change", "always", "manual"]
    assert "Bearer (secret:WEBHOOK_TOKEN)" in run_main("-C", str(root), "render").out

    apply = run_main("-C", str(root), "apply", "--emulator", "--yes")
    assert apply.code == 0, apply.err
    submitted = sorted(line.split("  ")[0] for line in apply.out_lines if line.startswith("✓ "))
    assert submitted == ["✓ my-project/prices-hourly", "✓ my-project/products-daily"]
    assert apply.out_lines[-1] == "Apply: 2 submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked."
    manual = run_main("-C", str(root), "apply", "--emulator", "--yes", "--run", "my-project/catalog-backfill")
    assert manual.code == 0, manual.err
    assert [line.split("  ")[0] for line in manual.out_lines if line.startswith("✓ ")] == [
        "✓ my-project/catalog-backfill"
    ]


def test_init_creates_the_directory_it_is_given(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    result = run_main("-C", str(tmp_path), "init", "new-repo")
    assert (result.code, result.out_lines[:3]) == (0, CREATED)
    assert result.out_lines[3] == (
        "Next: cd new-repo && intuned-runs validate && intuned-runs apply --emulator --yes (no account needed)"
    )
    assert sorted(p.relative_to(tmp_path / "new-repo").as_posix() for p in (tmp_path / "new-repo").rglob("*")) == [
        ".intuned-runs",
        ".intuned-runs/.gitignore",
        "intuned-runs.yaml",
        "runs.d",
        "runs.d/example.yaml",
    ]


def test_init_never_overwrites_a_file_and_names_those_that_exist(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    (tmp_path / "runs.d").mkdir()
    (tmp_path / "runs.d" / "example.yaml").write_text("mine\n", encoding="utf-8")
    result = run_main("-C", str(tmp_path), "init")
    assert (result.code, result.out) == (1, "")
    assert result.err == "error: runs.d/example.yaml already exists: nothing written\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["example.yaml", "runs.d"]  # nothing else written
    assert (tmp_path / "runs.d" / "example.yaml").read_text(encoding="utf-8") == "mine\n"

    missing = run_main("-C", str(tmp_path / "b"), "init")  # -C names a directory that must exist
    assert (missing.code, missing.err) == (1, f"error: -C {tmp_path / 'b'}: no such directory\n")
    assert run_main("-C", str(tmp_path), "init", "b").code == 0
    again = run_main("-C", str(tmp_path), "init", "b")
    assert again.err == (
        "error: intuned-runs.yaml, runs.d/example.yaml, .intuned-runs/.gitignore already exist: nothing written\n"
    )


def test_completion_bash_passes_bash_n_and_completes_from_the_parser(tmp_path: Path) -> None:
    script = tmp_path / "intuned-runs.bash"
    result = run_main("completion", "bash")
    assert result.code == 0
    script.write_text(result.out, encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False).returncode == 0
    # Ask it what `intuned-runs apply --ye<TAB>` and `intuned-runs state <TAB>` complete to, as bash would.
    bin_dir = os.path.dirname(shutil.which(cli_command()[0]) or cli_command()[0])
    probe = tmp_path / "probe.bash"
    probe.write_text(
        f"""source {script}
complete_words() {{
  COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
  _python_argcomplete intuned-runs "${{@: -1}}" "${{@: -2:1}}"
  printf '%s\\n' "${{COMPREPLY[@]}}"
}}
complete_words intuned-runs apply --ye
echo ---
complete_words intuned-runs state ''
""",
        encoding="utf-8",
    )
    env = subprocess_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(["bash", str(probe)], capture_output=True, text=True, env=env, check=False)
    first, second = done.stdout.split("---\n")
    assert first.split() == ["--yes"]
    assert {"list", "show", "mv", "forget", "resolve", "unlock"} <= set(second.split())


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_completion_for_zsh_and_fish_registers_the_command(shell: str) -> None:
    result = run_main("completion", shell)
    assert result.code == 0
    assert "intuned-runs" in result.out
    assert ("compdef" if shell == "zsh" else "complete --command intuned-runs") in result.out
    if shutil.which(shell):  # a syntax check where the shell is installed
        check = ["zsh", "-n"] if shell == "zsh" else ["fish", "--no-execute"]
        assert subprocess.run([*check, "/dev/stdin"], input=result.out, text=True, check=False).returncode == 0
