"""Contract test: what apply sends satisfies the published OpenAPI description, as judged by a third party.

openapi-core (a pip-installable OpenAPI 3.1 validator, replacing Stoplight Prism, which needed Node and
`npm ci`) checks every request a loopback server receives against the vendored
`schemas/openapi/run-start.yaml` — the path and its parameters (a UUID workspace), the `x-api-key`
security scheme and the body — and the server answers the spec's 201, or a 422/401 naming what failed.
The example repository of this project (intuned-runs.yaml and runs.d) is applied to it: every run must
come back submitted.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from openapi_core.exceptions import OpenAPIError
from openapi_core.validation.request.exceptions import SecurityValidationError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.helpers import API_KEY, PROJECT, WS, Repo

SPEC = PROJECT / "schemas" / "openapi" / "run-start.yaml"
BASE_PATH = "/api/v1/workspace"  # the spec's server path: requests are matched under it
# Every secret the example runs read, with values of the shape the spec expects (the proxy is a URI).
EXAMPLE_SECRETS = {
    "PROXY_URL": "http://scraper:Pr0xyPass-81d3@proxy.example:8080",
    "HOOK_TOKEN": "hook-T0ken-4f9c2a",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE7Q2W3E4R5",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "PORTAL_USER": "ops-robot@example.com",
    "PORTAL_PASSWORD": "portal-Passw0rd-93",
}


class SpecServer:
    """A loopback server that accepts exactly the start requests the OpenAPI description allows."""

    def __init__(self) -> None:
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}{BASE_PATH}"
        spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
        spec["servers"] = [{"url": self.url}]
        self.openapi = OpenAPI.from_dict(spec)
        self.accepted: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @Request.application  # type: ignore[misc]
    def app(self, request: Request) -> Response:
        try:
            self.openapi.validate_request(WerkzeugOpenAPIRequest(request))
        except SecurityValidationError as e:
            return Response(json.dumps({"message": str(e)}), 401, content_type="application/json")
        except OpenAPIError as e:  # any other finding of the validator: the request breaks the contract
            return Response(json.dumps({"message": str(e)}), 422, content_type="application/json")
        with self.lock:
            self.accepted.append(json.loads(request.get_data()))
            run_id = f"ru_contract{len(self.accepted):010d}"
        return Response(json.dumps({"runId": run_id, "status": "pending"}), 201, content_type="application/json")

    def __enter__(self) -> SpecServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def spec_server() -> Iterator[SpecServer]:
    with SpecServer() as server:
        yield server


def test_the_validator_rejects_what_the_spec_forbids(spec_server: SpecServer) -> None:
    """Without this, a 201 from the server would prove nothing."""
    url = f"{spec_server.url}/{WS}/projects/pricing-scraper/run/start"
    key = {"x-api-key": API_KEY}
    with httpx.Client(timeout=10) as client:
        valid = client.post(url, json={"api": "products/list", "parameters": {}}, headers=key)
        no_api = client.post(url, json={"parameters": {}}, headers=key)
        wrong_type = client.post(url, json={"api": "products/list", "parameters": {}, "saveTrace": 1}, headers=key)
        no_key = client.post(url, json={"api": "products/list", "parameters": {}})
        not_a_uuid = client.post(
            f"{spec_server.url}/not-a-uuid/projects/p/run/start", json={"api": "a", "parameters": {}}, headers=key
        )
    assert (valid.status_code, valid.json()["status"]) == (201, "pending")
    assert (no_api.status_code, wrong_type.status_code, no_key.status_code) == (422, 422, 401)
    assert "'api' is a required property" in no_api.json()["message"]
    assert "1 is not of type 'boolean'" in wrong_type.json()["message"]
    assert not_a_uuid.status_code == 422
    assert spec_server.accepted == [{"api": "products/list", "parameters": {}}]


def test_every_example_run_is_accepted_by_the_spec(
    spec_server: SpecServer, user_repo: Repo, env: pytest.MonkeyPatch
) -> None:
    shutil.copy(PROJECT / "intuned-runs.yaml", user_repo.root / "intuned-runs.yaml")
    shutil.copytree(PROJECT / "runs.d", user_repo.root / "runs.d")
    for name, value in EXAMPLE_SECRETS.items():
        env.setenv(name, value)
    every_run = [run["key"] for run in user_repo.cli("render", "--json").json()["runs"]]
    assert len(every_run) >= 8
    target = ["--base-url", spec_server.url, "--workspace-id", WS]

    first = user_repo.cli("apply", "--yes", *target)
    assert first.code == 0, first.out + first.err
    manual = [key for key in every_run if key not in user_repo.state()["entries"]]
    assert manual, "the examples have manual runs: they are applied with --run below"
    second = user_repo.cli("apply", "--yes", *[a for key in manual for a in ("--run", key)], *target)
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
    assert len(spec_server.accepted) == len(every_run)
