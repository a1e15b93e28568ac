"""The test servers' rule (tests/services.py): under INTUNED_RUNS_REQUIRE_SERVICES=1 a server that cannot
start fails the test, elsewhere it skips, saying what to install."""

from __future__ import annotations

import pytest

from tests.services import REQUIRE, unavailable


def test_a_missing_server_skips_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"initdb not found: apt-get install postgresql"):
        unavailable("initdb not found", "apt-get install postgresql")


def test_a_missing_server_fails_when_services_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception, match=r"initdb not found: apt-get install postgresql \(INTUNED_RUNS"):
        unavailable("initdb not found", "apt-get install postgresql")
