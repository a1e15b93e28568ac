"""Fingerprints (docs/plan.md): what is and is not a change, the exact hashing rule, and the state's
recompute when the fingerprint rules or the schema version change."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from intuned_runs import schema as schema_module
from intuned_runs.emulator.server import Emulator
from intuned_runs.fingerprint import FINGERPRINT_VERSION, changes, fingerprint
from tests.helpers import WS, Repo, remote, state_document, state_entry

SCHEMA = schema_module.load()
BASE: dict[str, Any] = {"api": "products/list", "parameters": {"region": "us", "limit": 10}}


def fp(request: Any, project: str = "shop", name: str = "daily") -> str:
    return fingerprint(project, name, request, SCHEMA)


def with_(**fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(BASE), **fields}


def test_format_is_sha256_and_64_hex_digits() -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", fp(BASE))


def test_the_hash_is_sha256_of_canonical_json_with_defaults_filled_in() -> None:
    """Pin the rule itself, computed independently of the implementation."""
    request = {"api": "a/b", "parameters": {"é": 1.0, "n": [2.0, 2.5]}, "sink": {"type": "webhook", "url": "u"}}
    filled = {
        "project": "shop",
        "name": "daily",
        "request": {
            "api": "a/b",
            "parameters": {"é": 1, "n": [2, 2.5]},
            "sink": {"type": "webhook", "url": "u", "skipOnFail": False},
            "retry": {"maximumAttempts": 3},
            "saveTrace": True,
            "requestTimeout": 600,
        },
    }
    text = json.dumps(filled, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert fp(request) == "sha256:" + hashlib.sha256(text).hexdigest()


def test_key_order_does_not_matter_at_any_depth() -> None:
    a = {"api": "x", "parameters": {"a": 1, "b": {"c": 1, "d": 2}}, "sink": {"type": "webhook", "url": "u"}}
    b = {"sink": {"url": "u", "type": "webhook"}, "parameters": {"b": {"d": 2, "c": 1}, "a": 1}, "api": "x"}
    assert fp(a) == fp(b)


CRED = {"id": "session-1"}
RUNTIME = {"runtimeInput": {"user": "(secret:PORTAL_USER)"}}
AUTH_DEFAULTS = {"autoRecreate": True, "checkAttempts": 3, "createAttempts": 3, "requestTimeout": 600}
WEBHOOK = {"type": "webhook", "url": "https://hooks.example.com/x"}
S3 = {"type": "s3", "bucket": "b", "region": "us-east-1", "accessKeyId": "k", "secretAccessKey": "s"}

DEFAULTS_WRITTEN_OUT = [
    ("retry", with_(retry={"maximumAttempts": 3})),
    ("retry-empty", with_(retry={})),
    ("saveTrace", with_(saveTrace=True)),
    ("requestTimeout", with_(requestTimeout=600)),
    ("requestTimeout-float", with_(requestTimeout=600.0)),
    ("all-top-level", with_(retry={"maximumAttempts": 3}, saveTrace=True, requestTimeout=600)),
]


@pytest.mark.parametrize("request_", [c[1] for c in DEFAULTS_WRITTEN_OUT], ids=[c[0] for c in DEFAULTS_WRITTEN_OUT])
def test_writing_a_top_level_default_out_is_not_a_change(request_: dict[str, Any]) -> None:
    assert fp(request_) == fp(BASE)
    assert changes(BASE, request_, SCHEMA) == []


@pytest.mark.parametrize(
    ("field", "sparse", "explicit"),
    [
        ("authSession", CRED, {**CRED, **AUTH_DEFAULTS}),
        ("authSession", RUNTIME, {**RUNTIME, **AUTH_DEFAULTS}),
        ("sink", WEBHOOK, {**WEBHOOK, "skipOnFail": False}),
        ("sink", S3, {**S3, "skipOnFail": False}),
    ],
    ids=["authSession-credentials", "authSession-runtime", "sink-webhook", "sink-s3"],
)
def test_variant_defaults_written_out_are_not_a_change(
    field: str, sparse: dict[str, Any], explicit: dict[str, Any]
) -> None:
    assert fp(with_(**{field: sparse})) == fp(with_(**{field: explicit}))


def test_defaults_are_filled_only_inside_a_present_object() -> None:
    # An absent authSession/sink is not "an authSession with its defaults".
    assert fp(BASE) != fp(with_(authSession=CRED))
    assert fp(BASE) != fp(with_(sink=WEBHOOK))


NOT_DEFAULTS = [
    ("retry", with_(retry={"maximumAttempts": 5})),
    ("saveTrace", with_(saveTrace=False)),
    ("requestTimeout", with_(requestTimeout=601)),
    ("checkAttempts", with_(authSession={**CRED, "checkAttempts": 2})),
    ("createAttempts", with_(authSession={**RUNTIME, "createAttempts": 4})),
    ("auth-requestTimeout", with_(authSession={**CRED, "requestTimeout": 30})),
    ("autoRecreate", with_(authSession={**CRED, "autoRecreate": False})),
    ("skipOnFail", with_(sink={**WEBHOOK, "skipOnFail": True})),
]


@pytest.mark.parametrize("request_", [c[1] for c in NOT_DEFAULTS], ids=[c[0] for c in NOT_DEFAULTS])
def test_a_value_other_than_the_default_is_a_change(request_: dict[str, Any]) -> None:
    field = next(k for k in request_ if k not in BASE)
    sparse = {k: v for k, v in request_.items() if k != field}
    if field in ("authSession", "sink"):
        sparse[field] = {k: v for k, v in request_[field].items() if k in ("id", "runtimeInput", "type", "url")}
    assert fp(request_) != fp(sparse)


def test_null_is_a_value_not_an_absence() -> None:
    assert fp(with_(proxy=None)) != fp(BASE)
    assert fp(with_(saveTrace=None)) != fp(BASE)
    assert fp(with_(retry=None)) != fp(BASE)
    assert fp({"api": "products/list", "parameters": {"region": "us", "limit": 10, "page": None}}) != fp(BASE)
    assert changes(BASE, with_(proxy=None), SCHEMA) == [{"path": "request.proxy", "after": None}]


def test_integral_floats_equal_integers_but_other_floats_do_not() -> None:
    assert fp({"api": "products/list", "parameters": {"region": "us", "limit": 10.0}}) == fp(BASE)
    assert fp({"api": "products/list", "parameters": {"region": "us", "limit": 10.5}}) != fp(BASE)
    assert changes(BASE, {"api": "products/list", "parameters": {"region": "us", "limit": 10.0}}, SCHEMA) == []


def test_a_boolean_is_not_the_number_one() -> None:
    assert fp({"api": "x", "parameters": {"flag": True}}) != fp({"api": "x", "parameters": {"flag": 1}})
    assert changes({"api": "x", "parameters": {"flag": 1}}, {"api": "x", "parameters": {"flag": True}}, SCHEMA) == [
        {"path": "request.parameters.flag", "before": 1, "after": True}
    ]


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(request: dict[str, Any]) -> None:
        target: Any = request
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


FULL: dict[str, Any] = {
    "api": "products/list",
    "parameters": {"region": "us", "limit": 10, "tags": ["a", "b"]},
    "proxy": "(secret:PROXY_URL)",
    "saveTrace": False,
    "requestTimeout": 300,
    "retry": {"maximumAttempts": 5},
    "authSession": {"id": "s-1", "checkAttempts": 2},
    "sink": {
        "type": "webhook",
        "url": "https://hooks.example.com/x",
        "headers": {"Authorization": "Bearer (secret:HOOK_TOKEN)"},
        "apisToSend": ["products/list", "products/get"],
    },
}
MUTATIONS = [
    ("api", _set(("api",), "products/get")),
    ("parameter-value", _set(("parameters", "region"), "eu")),
    ("parameter-type", _set(("parameters", "limit"), "10")),
    ("parameter-added", _set(("parameters", "page"), 1)),
    ("list-order", _set(("parameters", "tags"), ["b", "a"])),
    ("secret-renamed", _set(("proxy",), "(secret:PROXY_URL_2)")),
    ("text-around-secret", _set(("sink", "headers", "Authorization"), "Token (secret:HOOK_TOKEN)")),
    ("saveTrace", _set(("saveTrace",), True)),
    ("requestTimeout", _set(("requestTimeout",), 301)),
    ("retry", _set(("retry", "maximumAttempts"), 4)),
    ("authSession-id", _set(("authSession", "id"), "s-2")),
    ("sink-url", _set(("sink", "url"), "https://hooks.example.com/y")),
    ("sink-header-added", _set(("sink", "headers", "X-Team"), "pricing")),
    ("apisToSend", _set(("sink", "apisToSend"), ["products/list"])),
]


@pytest.mark.parametrize("mutate", [m[1] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_any_request_field_change_changes_the_fingerprint(mutate: Callable[[dict[str, Any]], None]) -> None:
    edited = copy.deepcopy(FULL)
    mutate(edited)
    assert fp(edited) != fp(FULL)
    assert changes(FULL, edited, SCHEMA) != []


def test_project_and_name_are_part_of_it() -> None:
    assert fp(BASE, project="shop", name="a") != fp(BASE, project="shop", name="b")
    assert fp(BASE, project="shop", name="a") != fp(BASE, project="shop2", name="a")


def test_the_placeholder_view_hides_the_secret_value() -> None:
    """Requests are hashed as rendered with placeholders: the same text whatever the secret's value."""
    assert fp(with_(proxy="(secret:PROXY_URL)")) == fp(copy.deepcopy(with_(proxy="(secret:PROXY_URL)")))
    assert fp(with_(proxy="(secret:PROXY_URL)")) != fp(with_(proxy="(secret:OTHER_PROXY)"))


# -- end to end: what the user edits --------------------------------------------------------------

RUN_FILE = """\
runs:
  - name: daily
    project: shop
    labels: {team: pricing}
    request:
      api: products/list
      parameters: {region: us}
      proxy: "{{ secret('PROXY_URL') }}"
"""


def _applied(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", RUN_FILE)
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    assert len(emulator.received) == 1


def test_rotating_a_secret_is_not_a_change(user_repo: Repo, emulator: Emulator, env: pytest.MonkeyPatch) -> None:
    _applied(user_repo, emulator)
    env.setenv("PROXY_URL", "http://scraper:Rotated-Pass-99@proxy.example:8080")
    result = user_repo.cli("plan", *remote(emulator))
    assert (result.code, result.out_lines) == (0, ["No changes. 1 run up to date."])


def test_renaming_a_secret_is_a_change(user_repo: Repo, emulator: Emulator, env: pytest.MonkeyPatch) -> None:
    _applied(user_repo, emulator)
    user_repo.edit("runs.d/shop.yaml", "secret('PROXY_URL')", "secret('EU_PROXY_URL')")
    result = user_repo.cli("plan")
    assert result.out_lines == [
        "~ shop/daily  changed  runs.d/shop.yaml:2",
        '    request.proxy: "(secret:PROXY_URL)" → "(secret:EU_PROXY_URL)"',
        "",
        "Plan: 1 to submit (0 new, 1 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]


def test_labels_and_trigger_are_not_part_of_it(user_repo: Repo, emulator: Emulator) -> None:
    _applied(user_repo, emulator)
    user_repo.edit("runs.d/shop.yaml", "labels: {team: pricing}", "labels: {team: growth}\n    trigger: on-change")
    result = user_repo.cli("plan")
    assert result.out_lines == ["No changes. 1 run up to date."]


def test_writing_defaults_out_and_reordering_in_the_file_is_not_a_change(user_repo: Repo, emulator: Emulator) -> None:
    _applied(user_repo, emulator)
    user_repo.write(
        "runs.d/shop.yaml",
        """\
        runs:
          - project: shop
            name: daily
            request:
              proxy: "{{ secret('PROXY_URL') }}"
              retry: {maximumAttempts: 3}
              saveTrace: true
              requestTimeout: 600
              parameters: {region: us}
              api: products/list
        """,
    )
    assert user_repo.cli("plan").out_lines == ["No changes. 1 run up to date."]


# -- recompute on a new fingerprint version or schema version ---------------------------------------

REQUEST = {"api": "products/list", "parameters": {"region": "us"}}
OLD_HASH = "sha256:" + "0" * 64


@pytest.mark.parametrize(
    "versions",
    [{"fingerprint_version": FINGERPRINT_VERSION - 1}, {"schema_version": "0.0.1"}],
    ids=["fingerprint_version", "schema_version"],
)
def test_stored_fingerprints_are_recomputed_never_turned_into_changes(
    user_repo: Repo, emulator: Emulator, versions: dict[str, Any]
) -> None:
    user_repo.write(
        "runs.d/shop.yaml",
        """\
        runs:
          - {name: same, project: shop, request: {api: products/list, parameters: {region: us}}}
          - {name: edited, project: shop, request: {api: products/list, parameters: {region: eu}}}
        """,
    )
    entries = {"shop/same": state_entry(REQUEST, OLD_HASH), "shop/edited": state_entry(REQUEST, OLD_HASH)}
    user_repo.write_state(state_document(entries, **versions))

    result = user_repo.cli("plan")
    assert result.out_lines == [
        "~ shop/edited  changed  runs.d/shop.yaml:3",
        '    request.parameters.region: "us" → "eu"',
        "",
        "Plan: 1 to submit (0 new, 1 changed, 0 requested, 0 always), 1 unchanged, 0 to forget, 0 blocked.",
    ]
    assert user_repo.state()["entries"]["shop/same"]["fingerprint"] == OLD_HASH  # plan never writes

    applied = user_repo.cli("apply", "--yes", *remote(emulator))
    assert applied.code == 0
    assert [r.body for r in emulator.received] == [{"api": "products/list", "parameters": {"region": "eu"}}]
    stored = user_repo.state()
    assert (stored["fingerprint_version"], stored["schema_version"]) == (FINGERPRINT_VERSION, "0.0.2")
    assert stored["entries"]["shop/same"]["fingerprint"] == fingerprint("shop", "same", REQUEST, SCHEMA)
    assert stored["workspace_id"] == WS
