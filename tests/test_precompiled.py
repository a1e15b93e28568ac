"""The shipped validator of the packaged schema (docs/performance.md, What a plan loads): it stands for the
schema the package ships, answers as fastjsonschema compiled at run time does, and a pulled schema that
differs gets none."""

from __future__ import annotations

import copy
import json
from typing import Any

import fastjsonschema
import pytest

from intuned_runs import precompiled, run_start_validator
from intuned_runs.schema import PACKAGED_SCHEMA
from intuned_runs.validation import RequestChecker

SCHEMA = json.loads(PACKAGED_SCHEMA.read_text(encoding="utf-8"))

VALID = {
    "api": "products/list",
    "parameters": {"q": 1},
    "proxy": None,
    "retry": {"maximumAttempts": 3},
    "requestTimeout": 600.0,
    "authSession": {"id": "a", "autoRecreate": False},
    "sink": {"type": "webhook", "url": "https://x", "headers": {"A": "b"}, "apisToSend": ["a"]},
}
INVALID_EDITS: list[tuple[str, Any]] = [
    ("api", 3),
    ("parameters", []),
    ("requestTimeout", "soon"),
    ("requestTimeout", True),
    ("retry", {"maximumAttempts": 0}),
    ("saveTrace", "yes"),
    ("sink", {"type": "webhook"}),
    ("sink", {"type": "ftp", "url": "x"}),
    ("sink", {"type": "webhook", "url": "x", "apisToSend": []}),
    ("sink", {"type": "webhook", "url": "x", "headers": {"A": 1}}),
    ("sink", {"type": "s3", "bucket": "b", "accessKeyId": "k", "secretAccessKey": "s"}),
    ("authSession", {"runtimeInput": {}, "autoRecreate": False}),
    ("authSession", {}),
]
REQUESTS = [VALID, {"api": "x"}, {"parameters": {}}, "not an object"] + [{**VALID, k: v} for k, v in INVALID_EDITS]


def test_the_shipped_code_stands_for_the_packaged_schema() -> None:
    # Fails after the packaged schema changed: run `python -m intuned_runs.precompiled` and commit the result.
    assert precompiled.digest(SCHEMA) == run_start_validator.SCHEMA_DIGEST
    assert precompiled.packaged_check(SCHEMA) is not None


@pytest.mark.parametrize("request_body", REQUESTS, ids=range(len(REQUESTS)))
def test_it_answers_as_fastjsonschema_compiled_at_run_time(request_body: Any) -> None:
    compiled = fastjsonschema.compile(SCHEMA, use_default=False, use_formats=False)
    try:
        compiled(copy.deepcopy(request_body))
        expected = True
    except fastjsonschema.JsonSchemaException:
        expected = False
    check = precompiled.packaged_check(SCHEMA)
    assert check is not None
    assert check(request_body) is expected
    assert expected is (request_body is VALID)


def test_regenerating_gives_the_shipped_file() -> None:
    assert precompiled.generate(SCHEMA) == precompiled.GENERATED.read_text(encoding="utf-8")


def test_a_pulled_schema_that_differs_gets_none_and_is_compiled_at_run_time() -> None:
    pulled = copy.deepcopy(SCHEMA)
    pulled["properties"]["api"]["maxLength"] = 3
    assert precompiled.packaged_check(pulled) is None
    checker = RequestChecker(pulled)
    assert [(f.path, f.message) for f in checker.check({"api": "toolong", "parameters": {}})] == [
        (("request", "api"), "'toolong' is too long")
    ]
    assert checker.check({"api": "abc", "parameters": {}}) == []


def test_annotations_are_dropped_but_never_a_property_of_that_name() -> None:
    schema = {
        "type": "object",
        "description": "gone",
        "properties": {"title": {"type": "string", "title": "gone"}, "default": {"enum": [{"description": 1}]}},
    }
    assert precompiled.without_annotations(schema) == {
        "type": "object",
        "properties": {"title": {"type": "string"}, "default": {"enum": [{"description": 1}]}},
    }
