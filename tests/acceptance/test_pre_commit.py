"""The pre-commit hook (docs/integrations.md, pre-commit), run by pre-commit itself: `pre-commit try-repo`
installs the tool from this repository into an environment of its own (with pip, from the package index) and
runs the hook on a sample repository in tmp_path. One test of two calls, as each installs the tool."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import PROJECT, Repo, subprocess_env

pytestmark = pytest.mark.usefixtures("clean_env")

HOOK = "intuned-runs-validate"
BAD = "runs:\n  - name: a\n    project: p\n    request: {api: products/list}\n"
GOOD = "runs:\n  - name: a\n    project: p\n    request: {api: products/list, parameters: {}}\n"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def test_the_hook_fails_on_a_bad_run_file_and_passes_on_a_good_one(repo: Repo, tmp_path: Path) -> None:
    environment = subprocess_env(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), **IDENTITY)
    shutil.rmtree(repo.root / ".git")
    subprocess.run(["git", "init", "-q", str(repo.root)], check=True, env=environment)
    repo.write("README.md", "A repository of runs.\n")
    repo.write("runs.d/shop.yaml", BAD)

    def hook(*args: str) -> tuple[int, str]:
        subprocess.run(["git", "-C", str(repo.root), "add", "-A"], check=True, env=environment)
        done = subprocess.run(
            [sys.executable, "-m", "pre_commit", "try-repo", str(PROJECT), HOOK, *args],
            cwd=repo.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,  # try-repo builds the hook's environment with pip, in a temporary store, each time
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    code, output = hook("--all-files")
    assert code == 1, output
    assert re.search(r"^intuned-runs validate\.+Failed$", output, re.M), output
    assert "runs.d/shop.yaml:4:14: error: request.parameters: request is missing required 'parameters'" in output

    repo.write("runs.d/shop.yaml", GOOD)
    code, output = hook("--files", "runs.d/shop.yaml")
    assert code == 0, output
    assert re.search(r"^intuned-runs validate\.+Passed$", output, re.M), output


@pytest.mark.parametrize(
    ("path", "runs"),
    [
        ("intuned-runs.yaml", True),
        ("runs.d/shop.yaml", True),
        ("runs.d/catalog/exports.yml", True),
        ("deploy/intuned-runs.yaml", True),
        ("deploy/runs.d/a.yaml", True),
        ("README.md", False),
        ("runs.d/notes.txt", False),
        (".github/workflows/ci.yaml", False),
    ],
)
def test_the_hook_runs_when_the_config_or_a_run_file_changes(path: str, runs: bool) -> None:
    [hook] = yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert (hook["id"], hook["language"], hook["entry"], hook["pass_filenames"]) == (
        HOOK,
        "python",
        "intuned-runs validate",
        False,
    )
    assert bool(re.search(hook["files"], path)) is runs
