"""Shared strings and small maps (docs/performance.md, Memory): values stay equal, JSON types stay apart,
equal small maps become one object."""

from __future__ import annotations

import json

from intuned_runs.compact import MAX_MAPS, Interner, from_json, to_json

REQUEST = {
    "api": "products/list",
    "parameters": {"index": 7, "ratio": 1.0, "flag": True, "none": None},
    "sink": {"type": "webhook", "url": "https://x", "headers": {"Content-Type": "application/json"}},
    "retry": {"maximumAttempts": 3},
    "apisToSend": ["a", "b", {"n": 1}],
}


def test_values_stay_equal_and_keep_their_json_types() -> None:
    compact = Interner()
    value = compact.value(json.loads(json.dumps(REQUEST)))
    assert value == REQUEST
    assert json.dumps(value, sort_keys=True) == json.dumps(REQUEST, sort_keys=True)


def test_equal_small_maps_and_strings_are_one_object() -> None:
    compact = Interner()
    first = compact.value(json.loads(json.dumps(REQUEST)))
    second = compact.value(json.loads(json.dumps({**REQUEST, "parameters": {"index": 8}})))
    assert second["sink"] is first["sink"]  # a map of a string and a shared map is shared too
    assert second["sink"]["headers"] is first["sink"]["headers"]
    assert second["retry"] is first["retry"]
    assert second["api"] is first["api"]
    assert second["parameters"] is not first["parameters"]
    assert second is not first  # holds the distinct parameters


def test_one_true_and_one_point_zero_are_never_merged() -> None:
    compact = Interner()
    maps = [compact.value({"n": 1}), compact.value({"n": True}), compact.value({"n": 1.0})]
    assert [json.dumps(m) for m in maps] == ['{"n": 1}', '{"n": true}', '{"n": 1.0}']
    assert compact.value({"n": 1.0}) is maps[2]


def test_the_table_of_maps_is_bounded() -> None:
    compact = Interner()
    for index in range(MAX_MAPS + 10):
        compact.value({"index": index})
    assert compact.value({"index": MAX_MAPS + 5}) == {"index": MAX_MAPS + 5}
    assert compact.value({"index": 3}) is compact.value({"index": 3})


def test_json_text_reads_back_as_it_was() -> None:
    value = {"s": "é\ud800", "big": 10**30, "f": 0.1, "nested": [1, {"a": None}]}
    assert from_json(to_json(value)) == value
