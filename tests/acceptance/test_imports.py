"""What a fresh process imports (docs/performance.md, What a plan loads): the plan of a valid repository
loads neither httpx nor jsonschema (nor fastjsonschema: the packaged schema's validator is shipped), and an
invalid one still gets its problems worded by jsonschema. Real processes, no timing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import PROJECT, subprocess_env

HEAVY = ("httpx", "jsonschema", "fastjsonschema", "watchfiles")
# Runs `main(argv)` in this fresh interpreter, then prints its exit code and which HEAVY modules it loaded.
PROBE = f"""
import json, sys
from intuned_runs.cli import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


def examples(tmp_path: Path) -> Path:
    """This repository's own examples, beside no state."""
    repo = tmp_path / "examples"
    shutil.copytree(PROJECT / "runs.d", repo / "runs.d")
    shutil.copy(PROJECT / "intuned-runs.yaml", repo / "intuned-runs.yaml")
    (repo / ".git").mkdir()
    return repo


def probe(repo: Path, *argv: str) -> tuple[dict[str, object], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=repo,
        capture_output=True,
        text=True,
        env=subprocess_env(INTUNED_API_KEY="k"),
        timeout=60,
        check=False,
    )
    *output, last = done.stdout.splitlines()
    return json.loads(last), "\n".join(output) + done.stderr


def test_plan_of_a_valid_repository_imports_neither_httpx_nor_jsonschema(tmp_path: Path) -> None:
    result, output = probe(examples(tmp_path), "plan")
    assert result == {"code": 0, "loaded": []}
    assert "6 to submit (6 new, 0 changed, 0 requested, 0 always)" in output


def test_validate_of_a_valid_repository_imports_neither(tmp_path: Path) -> None:
    result, _ = probe(examples(tmp_path), "validate")
    assert result == {"code": 0, "loaded": []}


def test_an_invalid_request_is_still_worded_by_jsonschema(tmp_path: Path) -> None:
    repo = examples(tmp_path)
    (repo / "runs.d" / "broken.yaml").write_text(
        "runs:\n  - name: broken\n    project: p\n    request:\n      api: x\n      parameters: {}\n"
        "      requestTimeout: soon\n",
        encoding="utf-8",
    )
    result, output = probe(repo, "plan")
    assert result == {"code": 1, "loaded": ["jsonschema"]}
    assert "runs.d/broken.yaml:7:23: error: request.requestTimeout: must be an integer (got string)\n" in output
