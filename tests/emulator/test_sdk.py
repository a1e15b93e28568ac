"""Every emulator answer parses in Intuned's official Python SDK, `intuned-client` 1.1.1 (docs/emulator.md):
the start, each result status, and each error, through the SDK's own client and models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from intuned_client import IntunedClient, models
from intuned_client.exceptions import ApiError, AuthenticationError, NotFoundError, ServerError, ValidationError

from intuned_runs.emulator.server import Emulator
from tests.emulator.test_emulator import FakeClock
from tests.helpers import API_KEY, WS

BODY = {"api": "products/list", "parameters": {"page": 1}}
# The SDK's model lets it through (it checks no minimum); the schema, and so the emulator, does not.
NOT_IN_SCHEMA = {"api": "products/list", "parameters": {}, "retry": {"maximumAttempts": 0}}
ERROR_KEYS = ["code", "category", "message", "retirable", "details", "correlationId"]
CATEGORIES = {"infrastructure", "execution", "auth", "user", "billing"}  # the SDK's error categories


def sdk(emu: Emulator, key: str | None = API_KEY) -> IntunedClient:
    return IntunedClient(api_key=key, workspace_id=WS, base_url=emu.url, timeout=10)


def test_start_and_every_result_status_parse_in_the_sdk_models() -> None:
    clock = FakeClock()
    with Emulator(complete_after=10, clock=clock) as emu, sdk(emu) as client:
        started = client.projects.runs.start(project_name="shop", body=BODY)
        assert isinstance(started, models.RunStartResponse)
        assert (started.status, started.run_id.startswith("ru_")) == ("pending", True)
        seen: list[models.RunResultResponse] = []
        for elapsed in (0, 5, 10):
            clock.now = 1000.0 + elapsed
            seen.append(client.projects.runs.result(project_name="shop", run_id=started.run_id))
    assert [r.status for r in seen] == ["pending", "started", "completed"]
    assert all(isinstance(r, models.RunResultResponse) and r.run_id == started.run_id for r in seen)
    assert seen[2].result == {"api": "products/list", "parameters": {"page": 1}}
    assert seen[2].extended_payloads == []


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (
            "failed",
            {
                "message": "The run failed (emulated)",
                "error": models.RunResultResponseError(
                    code="api-attempts-failed",
                    category="execution",
                    message="The API failed on every attempt (emulated failure)",
                    retirable=False,
                ),
                "reason": None,
            },
        ),
        (
            "canceled",
            {
                "message": "The run was canceled (emulated)",
                "error": None,
                "reason": models.RunResultResponseReason(
                    type="cancelled-user-action", message="The run was canceled (emulated)"
                ),
            },
        ),
    ],
)
def test_failed_and_canceled_results_parse_with_the_sdk_values(outcome: str, expected: dict[str, Any]) -> None:
    with Emulator(complete_after=0, result_rates={outcome: 1.0}) as emu, sdk(emu) as client:
        run_id = client.projects.runs.start(project_name="shop", body=BODY).run_id
        result = client.projects.runs.result(project_name="shop", run_id=run_id)
    assert isinstance(result, models.RunResultResponse)
    assert result.status == outcome
    assert {"message": result.message, "error": result.error, "reason": result.reason} == expected


@pytest.fixture
def emulator_with_faults() -> Iterator[Emulator]:
    # starts 1-2 answer normally (400, 401); 3-5 are the injected faults
    with Emulator(complete_after=0, script=[0, 0, 429, 503, 500]) as emu:
        yield emu


def test_every_error_is_raised_by_the_sdk_as_its_kind_with_intuneds_error_body(
    emulator_with_faults: Emulator,
) -> None:
    """The SDK has no error model: it raises one exception per kind of status, holding the JSON body."""
    emu = emulator_with_faults
    with sdk(emu) as client, sdk(emu, key=None) as keyless:
        calls = [
            (ValidationError, 400, lambda: client.projects.runs.start(project_name="shop", body=NOT_IN_SCHEMA)),
            (AuthenticationError, 401, lambda: keyless.projects.runs.start(project_name="shop", body=BODY)),
            (NotFoundError, 404, lambda: client.projects.runs.result(project_name="shop", run_id="ru_nope")),
            (NotFoundError, 404, lambda: client.projects.runs.start(project_name="", body=BODY)),
            (ValidationError, 429, lambda: client.projects.runs.start(project_name="shop", body=BODY)),
            (ServerError, 503, lambda: client.projects.runs.start(project_name="shop", body=BODY)),
            (ServerError, 500, lambda: client.projects.runs.start(project_name="shop", body=BODY)),
        ]
        caught: list[ApiError] = []
        for kind, status, call in calls:
            with pytest.raises(kind) as raised:
                call()
            assert raised.value.status_code == status
            caught.append(raised.value)
    for error in caught:
        assert isinstance(error.body, dict) and list(error.body) == ERROR_KEYS, error.body
        assert error.body["category"] in CATEGORIES
        assert isinstance(error.body["message"], str) and isinstance(error.body["retirable"], bool)
