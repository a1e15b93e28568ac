"""`intuned-runs schema pull [--spec] [--check]` (docs/state.md) and the config's `schema:` override."""

from __future__ import annotations

import json

import pytest

from intuned_runs import schema
from tests.helpers import PROJECT, Repo, run_main

pytestmark = pytest.mark.usefixtures("clean_env")

TARGET = "schemas/run-start.schema.json"
START = "/{workspaceId}/projects/{projectName}/run/start"

CUSTOM_SPEC = """
openapi: 3.1.0
info: {title: custom, version: 9.9.9}
paths:
  /{workspaceId}/projects/{projectName}/run/start:
    post:
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Body'}
components:
  schemas:
    Body:
      type: object
      required: [api, parameters, foo]
      properties:
        api: {type: string}
        parameters: {type: object}
        foo: {$ref: '#/components/schemas/Foo'}
    Foo: {type: integer, minimum: 3}
"""


def test_check_passes_on_this_repository() -> None:
    result = run_main("-C", str(PROJECT), "schema", "pull", "--check")
    assert (result.code, result.out, result.err) == (0, "", f"{TARGET} is up to date.\n")


def test_the_packaged_schema_is_the_pulled_one() -> None:
    # An installed tool validates with no checkout: the package carries the same file.
    assert (PROJECT / TARGET).read_text(encoding="utf-8") == schema.PACKAGED_SCHEMA.read_text(encoding="utf-8")
    assert (PROJECT / "schemas/openapi/run-start.yaml").read_bytes() == schema.PACKAGED_SPEC.read_bytes()


def test_pull_writes_the_self_contained_schema(repo: Repo) -> None:
    result = repo.cli("schema", "pull")
    assert (result.code, result.out, result.err) == (0, "", f"{TARGET} written.\n")
    text = (repo.root / TARGET).read_text(encoding="utf-8")
    document = json.loads(text)
    assert list(document)[:2] == ["$schema", "$comment"]
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$comment"] == (
        f"Request body of POST {START}, pulled from schemas/openapi/run-start.yaml (info.version 0.0.2)"
    )
    assert text == json.dumps(document, indent=2, ensure_ascii=False) + "\n"  # 2-space JSON, trailing newline
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert '\n  "type": "object",\n' in text
    assert "$ref" not in text
    # Keys in document order: the spec lists parameters before api.
    assert list(document["properties"])[:2] == ["parameters", "proxy"]
    assert text == (PROJECT / TARGET).read_text(encoding="utf-8")  # wherever the repository lives


def test_pull_again_is_unchanged_and_check_passes(repo: Repo) -> None:
    assert repo.cli("schema", "pull").code == 0
    result = repo.cli("schema", "pull")
    assert (result.code, result.err) == (0, f"{TARGET} unchanged.\n")
    result = repo.cli("schema", "pull", "--check")
    assert (result.code, result.err) == (0, f"{TARGET} is up to date.\n")


@pytest.mark.parametrize("damage", ["reindent", "edit", "no-newline", "missing"])
def test_check_exits_1_when_the_file_would_change_and_writes_nothing(repo: Repo, damage: str) -> None:
    assert repo.cli("schema", "pull").code == 0
    target = repo.root / TARGET
    good = target.read_text(encoding="utf-8")
    damaged = {
        "reindent": json.dumps(json.loads(good), indent=4) + "\n",
        "edit": good.replace("0.0.2", "0.0.1"),
        "no-newline": good.rstrip("\n"),
        "missing": None,
    }[damage]
    if damaged is None:
        target.unlink()
    else:
        target.write_text(damaged, encoding="utf-8")
    result = repo.cli("schema", "pull", "--check")
    assert (result.code, result.out) == (1, "")
    # a new repository's schema is missing, not "out of date" (docs/schema.md)
    was = "missing" if damage == "missing" else "out of date"
    assert result.err == f"{TARGET} is {was}: run 'intuned-runs schema pull'\n"
    assert (target.read_text(encoding="utf-8") if target.exists() else None) == damaged
    assert repo.cli("schema", "pull").code == 0
    assert target.read_text(encoding="utf-8") == good


def test_quiet_silences_the_note(repo: Repo) -> None:
    result = repo.cli("schema", "pull", "-q")
    assert (result.code, result.out, result.err) == (0, "", "")
    assert (repo.root / TARGET).is_file()


def test_pull_prefers_the_repository_copy_of_the_spec(repo: Repo) -> None:
    repo.write("schemas/openapi/run-start.yaml", CUSTOM_SPEC)
    assert repo.cli("schema", "pull").code == 0
    document = json.loads((repo.root / TARGET).read_text(encoding="utf-8"))
    assert document["$comment"] == (
        f"Request body of POST {START}, pulled from schemas/openapi/run-start.yaml (info.version 9.9.9)"
    )


def test_pull_from_a_spec_path_inlines_refs(repo: Repo) -> None:
    spec = repo.write("custom.yaml", CUSTOM_SPEC)
    result = repo.cli("schema", "pull", "--spec", str(spec))
    assert (result.code, result.err) == (0, f"{TARGET} written.\n")
    assert json.loads((repo.root / TARGET).read_text(encoding="utf-8")) == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Request body of POST {START}, pulled from {spec} (info.version 9.9.9)",
        "type": "object",
        "required": ["api", "parameters", "foo"],
        "properties": {
            "api": {"type": "string"},
            "parameters": {"type": "object"},
            "foo": {"type": "integer", "minimum": 3},
        },
    }


def test_relative_spec_path_is_read_as_if_started_in_the_C_directory(repo: Repo) -> None:
    repo.write("custom.yaml", CUSTOM_SPEC)
    result = repo.cli("schema", "pull", "--spec", "custom.yaml")
    assert (result.code, result.err) == (0, f"{TARGET} written.\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openapi: 3.1.0\npaths: {}\n", "{spec} has no JSON request body for POST " + START),
        ("a: [\n", "{spec}:2:1: not valid YAML/JSON: invalid YAML: did not find expected node content"),
        (
            CUSTOM_SPEC.replace("'#/components/schemas/Body'", "'other.yaml#/Body'"),
            "external $ref 'other.yaml#/Body' is not supported",
        ),
        (CUSTOM_SPEC.replace("'#/components/schemas/Body'", "'#/components/schemas/Nope'"), None),
    ],
)
def test_unusable_specs_are_one_line_errors(repo: Repo, text: str, message: str | None) -> None:
    spec = repo.write("spec.yaml", text)
    result = repo.cli("schema", "pull", "--spec", str(spec))
    expected = message.replace("{spec}", str(spec)) if message else "$ref '#/components/schemas/Nope' points nowhere"
    assert (result.code, result.out, result.err) == (1, "", f"error: {expected}\n")
    assert not (repo.root / TARGET).exists()


def test_missing_spec_file(repo: Repo) -> None:
    missing = repo.root / "nope.yaml"
    result = repo.cli("schema", "pull", "--spec", str(missing))
    assert (result.code, result.out) == (1, "")
    assert result.err == f"error: cannot read {missing}: [Errno 2] No such file or directory: '{missing}'\n"


def test_config_schema_overrides_the_packaged_one(repo: Repo) -> None:
    spec = repo.write("custom.yaml", CUSTOM_SPEC)
    assert repo.cli("schema", "pull", "--spec", str(spec), "-q").code == 0
    repo.write("intuned-runs.yaml", f"schema: {TARGET}\n")
    repo.write("runs.d/a.yaml", "runs:\n  - {name: a, project: p, request: {api: a, parameters: {}, foo: 1}}\n")
    result = repo.cli("validate")
    assert (result.code, result.out_lines) == (1, ["runs.d/a.yaml:2:66: error: request.foo: must be at least 3"])
    repo.write("intuned-runs.yaml", "")  # the packaged schema knows no `foo`
    result = repo.cli("validate")
    assert (result.code, result.out_lines) == (1, ["runs.d/a.yaml:2:66: error: request.foo: unknown key 'foo'"])


def test_missing_config_schema_is_an_error(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "schema: schemas/nope.json\n")
    repo.write("runs.d/a.yaml", "runs:\n  - {name: a, project: p, request: {api: a, parameters: {}}}\n")
    result = repo.cli("validate")
    assert (result.code, result.out) == (1, "")
    path = (repo.root / "schemas/nope.json").resolve()
    assert result.err == (f"error: cannot read schema {path}: [Errno 2] No such file or directory: '{path}'\n")


def test_the_spec_is_read_as_yaml_1_2(repo: Repo) -> None:
    """OpenAPI 3.1 is YAML 1.2: `1.10` is not 1.1, a date stays text, `yes` stays a string."""
    spec = (PROJECT / "schemas" / "openapi" / "run-start.yaml").read_text()
    spec = spec.replace("version: 0.0.2", "version: 1.10").replace(
        "example: my-s3-bucket", "example: 2024-01-01\n                          x-flag: yes"
    )
    repo.write("spec.yaml", spec)
    result = repo.cli("schema", "pull", "--spec", str(repo.root / "spec.yaml"))
    assert (result.code, result.err) == (0, "schemas/run-start.schema.json written.\n")
    pulled = json.loads((repo.root / "schemas" / "run-start.schema.json").read_text())
    assert pulled["$comment"].endswith("(info.version 1.10)")
    bucket = pulled["properties"]["sink"]["oneOf"][1]["properties"]["bucket"]
    assert (bucket["example"], bucket["x-flag"]) == ("2024-01-01", "yes")
