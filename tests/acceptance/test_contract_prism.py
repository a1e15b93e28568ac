"""Contract test: what apply sends satisfies the published OpenAPI spec, as judged by Stoplight Prism.

Prism (pinned in package.json / package-lock.json, installed by `npm ci`) mocks the vendored spec
`schemas/openapi/run-start.yaml` on 127.0.0.1 and validates each request — path, `x-api-key` security,
body — answering the spec's 201 or a 422/401 of its own. The example repository of this project
(intuned-runs.yaml and runs.d) is applied to it: every run must come back submitted.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import API_KEY, PROJECT, WS, Repo, free_port, remote, wait_until

ROOT = PROJECT
PRISM = ROOT / "node_modules" / ".bin" / "prism"
SPEC = ROOT / "schemas" / "openapi" / "run-start.yaml"
# Every secret the example runs read, with values of the shape the spec expects (the proxy is a URI).
EXAMPLE_SECRETS = {
    "PROXY_URL": "http://scraper:Pr0xyPass-81d3@proxy.example:8080",
    "HOOK_TOKEN": "hook-T0ken-4f9c2a",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE7Q2W3E4R5",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "PORTAL_USER": "ops-robot@example.com",
    "PORTAL_PASSWORD": "portal-Passw0rd-93",
}


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def prism(tmp_path: Path) -> Iterator[str]:
    assert PRISM.exists(), "Prism is missing: run `npm ci` at the repository root (package-lock.json pins it)"
    port = free_port()
    log = (tmp_path / "prism.log").open("w")
    process = subprocess.Popen(
        [str(PRISM), "mock", str(SPEC), "-h", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _listening(port) or process.poll() is not None, timeout=60, what="Prism to listen")
        assert process.poll() is None, (tmp_path / "prism.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_prism_validates_requests_against_the_spec(prism: str) -> None:
    """Without this, a 201 from the mock would prove nothing."""
    url = f"{prism}/{WS}/projects/pricing-scraper/run/start"
    with httpx.Client(timeout=10) as client:
        valid = client.post(url, json={"api": "products/list", "parameters": {}}, headers={"x-api-key": API_KEY})
        no_api = client.post(url, json={"parameters": {}}, headers={"x-api-key": API_KEY})
        wrong_type = client.post(
            url, json={"api": "products/list", "parameters": {}, "saveTrace": 1}, headers={"x-api-key": API_KEY}
        )
        no_key = client.post(url, json={"api": "products/list", "parameters": {}})
    assert (valid.status_code, valid.json()["status"]) == (201, "pending")
    assert isinstance(valid.json()["runId"], str)
    assert (no_api.status_code, wrong_type.status_code, no_key.status_code) == (422, 422, 401)


def test_every_example_run_is_accepted_by_the_spec(prism: str, user_repo: Repo, env: pytest.MonkeyPatch) -> None:
    shutil.copy(ROOT / "intuned-runs.yaml", user_repo.root / "intuned-runs.yaml")
    shutil.copytree(ROOT / "runs.d", user_repo.root / "runs.d")
    for name, value in EXAMPLE_SECRETS.items():
        env.setenv(name, value)
    every_run = [run["key"] for run in user_repo.cli("render", "--json").json()["runs"]]
    assert len(every_run) >= 8

    first = user_repo.cli("apply", "--yes", *remote(prism))
    assert first.code == 0, first.out + first.err
    manual = [key for key in every_run if key not in user_repo.state()["entries"]]
    assert manual, "the examples have manual runs: they are applied with --run below"
    second = user_repo.cli("apply", "--yes", *[a for key in manual for a in ("--run", key)], *remote(prism))
    assert second.code == 0, second.out + second.err

    entries = user_repo.state()["entries"]
    assert sorted(entries) == sorted(every_run)
    for key, entry in entries.items():
        assert isinstance(entry["run_id"], str) and entry["run_id"], key
        assert entry["unknown"] is None, key
    outcomes = [line for result in (first, second) for line in result.out_lines if line[:2] in ("✓ ", "✗ ", "? ")]
    assert sorted(line.split("  ")[0] for line in outcomes) == sorted(f"✓ {key}" for key in every_run)
    assert second.out_lines[-1] == (
        f"Apply: {len(manual)} submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked."
    )
