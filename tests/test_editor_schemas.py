"""`schema export` and the editor schemas (docs/schema.md, schema export): the shipped files are what the code
exports; check-jsonschema (a third party) accepts what `intuned-runs validate` accepts and rejects what it
rejects, for run files and configs alike; the examples carry the yaml-language-server modeline."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from intuned_runs import editor_schemas, schema
from tests.helpers import OPS_YAML, PROJECT, SHOP_YAML, Repo, check_jsonschema, run_main

pytestmark = pytest.mark.usefixtures("clean_env")

SHIPPED = schema.PACKAGE_SCHEMAS
RUNS_SCHEMA = ["--schemafile", str(SHIPPED / editor_schemas.RUNS_FILE)]
CONFIG_SCHEMA = ["--schemafile", str(SHIPPED / editor_schemas.CONFIG_FILE)]
MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")

# A config giving the accepted files what their templates read.
CONFIG = """\
default_project: fallback
vars: {timeout: 60, trace: false, params: {a: 1}, trigger: always, regions: [eu, us]}
"""

ACCEPTED = {
    "empty": "",
    "comments-only": "# nothing yet\n",
    "no-runs": "runs:\n",
    "shop": SHOP_YAML,
    "ops": OPS_YAML,
    "defaults-complete-the-requests": """\
        defaults:
          project: p
          labels: {team: t}
          trigger: manual
          request: {api: products/list, parameters: {}, retry: {maximumAttempts: 2}}
        runs:
          - name: a
            request: {parameters: {x: 1}}
          - name: b
          - name: c
            request:
              parameters: {}
              sink: {type: s3, bucket: b, region: us-east-1,
                     accessKeyId: "{{ secret('S3_KEY_ID') }}", secretAccessKey: "{{ secret('S3_SECRET') }}"}
        """,
    "templates-where-numbers-booleans-maps-and-lists-go": """\
        runs:
          - name: "daily-{{ matrix.region }}-{{ matrix.size.n }}"
            project: "{{ 'shop' }}"
            matrix: {region: "{{ vars.regions }}", size: [{n: 1}, {n: 2}]}
            labels: {region: "{{ matrix.region }}"}
            trigger: "{{ vars.trigger }}"
            request:
              api: products/list
              parameters: "{{ vars.params }}"
              requestTimeout: "{{ vars.timeout }}"
              saveTrace: "{{ vars.trace }}"
              retry: {maximumAttempts: "{{ 2 + 1 }}"}
              sink:
                type: webhook
                url: "https://hooks.example.com/{{ matrix.region }}"
                apisToSend: ["{{ 'products/list' }}"]
        """,
    "auth-sessions-and-a-format-warning": """\
        runs:
          - name: runtime
            request:
              api: a
              parameters: {}
              proxy: ''
              authSession: {autoRecreate: true, runtimeInput: {user: "{{ secret('PORTAL_USER') }}"}}
          - name: credentials
            request: {api: a, parameters: {}, authSession: {id: s1, checkAttempts: 2, proxy: null}}
        """,
    "moved-and-yaml-1.2-strings": """\
        moved:
          - {from: fallback/old, to: fallback/new}
        runs:
          - name: new
            request: {api: a, parameters: {country: "NO", on: "yes"}}
        """,
}

REJECTED = {
    "unknown-top-level-key": "run: []\n",
    "not-a-mapping": "- name: a\n",
    "runs-not-a-list": "runs: {name: a}\n",
    "unknown-run-key": "runs: [{nmae: a, request: {api: a, parameters: {}}}]\n",
    "integer-name": "runs: [{name: 10, request: {api: a, parameters: {}}}]\n",
    "bad-name": "runs: [{name: 'a b', request: {api: a, parameters: {}}}]\n",
    "bad-trigger": "runs: [{name: a, trigger: sometimes, request: {api: a, parameters: {}}}]\n",
    "integer-label": "runs: [{name: a, labels: {team: 5}, request: {api: a, parameters: {}}}]\n",
    "missing-request": "runs: [{name: a}]\n",
    "missing-name": "runs: [{request: {api: a, parameters: {}}}]\n",
    "missing-api": "runs: [{name: a, request: {parameters: {}}}]\n",
    "name-in-defaults": "defaults: {name: a}\nruns: [{name: b, request: {api: a, parameters: {}}}]\n",
    "matrix-in-defaults": "defaults: {matrix: {r: [1]}}\nruns: [{name: b, request: {api: a, parameters: {}}}]\n",
    "empty-matrix-list": "runs: [{name: a, matrix: {r: []}, request: {api: a, parameters: {}}}]\n",
    "moved-without-a-project": (
        "moved: [{from: a, to: fallback/a}]\nruns: [{name: a, request: {api: a, parameters: {}}}]\n"
    ),
    "a-word-for-a-number": "runs: [{name: a, request: {api: a, parameters: {}, requestTimeout: sixty}}]\n",
    "below-the-minimum": "runs: [{name: a, request: {api: a, parameters: {}, retry: {maximumAttempts: 0}}}]\n",
    "unknown-sink-type": "runs: [{name: a, request: {api: a, parameters: {}, sink: {type: ftp, url: x}}}]\n",
    "s3-sink-without-bucket": (
        "runs: [{name: a, request: {api: a, parameters: {}, sink: {type: s3, region: r, accessKeyId: "
        "\"{{ secret('K1') }}\", secretAccessKey: \"{{ secret('K2') }}\"}}}]\n"
    ),
    "runtime-session-not-recreated": (
        "runs: [{name: a, request: {api: a, parameters: {}, authSession: {autoRecreate: false, runtimeInput: {}}}}]\n"
    ),
    "session-with-neither-id-nor-input": "runs: [{name: a, request: {api: a, parameters: {}, authSession: {}}}]\n",
}

ACCEPTED_CONFIGS = {
    "this-repository": (PROJECT / "intuned-runs.yaml").read_text(encoding="utf-8"),
    "empty": "",
    "every-key": """\
        workspace_id: "{{ env.INTUNED_WORKSPACE_ID | default('3f2c5b9e-8a4d-4c1e-9b7a-1d2e3f4a5b6c') }}"
        base_url: https://app.intuned.io/api/v1/workspace
        runs_dir: runs.d
        state: .intuned-runs/state.json
        schema: null
        default_project: shop
        max_submit: "{{ 50 * 2 }}"
        env_allow: [REGION_*]
        vars: {region: us, limit: 50}
        environments:
          prod:
            state: .intuned-runs/prod.json
            workspace_id: 9b1d7e2a-4c3f-4a5b-8d6e-0f1a2b3c4d5e
            vars: {region: eu}
          dev: {}
        """,
}

REJECTED_CONFIGS = {
    "unknown-key": "base_ur: https://example.com\n",
    "nested-environments": "environments: {prod: {environments: {}}}\n",
    "unknown-key-in-an-environment": "environments: {prod: {runs_dri: x}}\n",
    "project-with-a-slash": "default_project: a/b\n",
    "vars-not-a-map": "vars: [1]\n",
    "env-allow-not-a-list": "env_allow: LIMIT\n",
    "not-a-mapping": "[]\n",
    "an-empty-environment": "environments: {dev: null}\n",
}


def write_cases(directory: Path, cases: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in cases.items():
        path = directory / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        paths.append(path)
    return paths


def validate_run_file(repo: Repo, text: str) -> int:
    repo.write("intuned-runs.yaml", CONFIG)
    for old in (repo.root / "runs.d").glob("*.yaml"):
        old.unlink()
    repo.write("runs.d/case.yaml", textwrap.dedent(text))
    return repo.cli("validate").code


def validate_config(repo: Repo, text: str) -> int:
    repo.write("intuned-runs.yaml", textwrap.dedent(text))
    repo.write("runs.d/case.yaml", "runs: [{name: a, project: p, request: {api: a, parameters: {}}}]\n")
    return repo.cli("validate").code


def test_the_shipped_schemas_are_what_the_code_exports(tmp_path: Path) -> None:
    # Like `schema pull --check`: a change of the loaders' rules or of the pulled schema shows here until
    # `intuned-runs schema export` is run in this repository.
    result = run_main("-C", str(tmp_path), "schema", "export", "--out", "exported")
    assert result.code == 0
    for name in editor_schemas.NAMES:
        exported = (tmp_path / "exported" / name).read_text(encoding="utf-8")
        assert exported == (SHIPPED / name).read_text(encoding="utf-8"), f"run 'intuned-runs schema export': {name}"
        assert exported == (PROJECT / "schemas" / name).read_text(encoding="utf-8")


def test_export_writes_both_files_then_leaves_them(repo: Repo) -> None:
    first = repo.cli("schema", "export")
    assert (first.code, first.out, first.err_lines) == (
        0,
        "",
        ["schemas/runs-file.schema.json written.", "schemas/config.schema.json written."],
    )
    again = repo.cli("schema", "export")
    assert again.err_lines == ["schemas/runs-file.schema.json unchanged.", "schemas/config.schema.json unchanged."]
    runs_file = json.loads((repo.root / "schemas/runs-file.schema.json").read_text(encoding="utf-8"))
    assert runs_file["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert runs_file["$id"] == "urn:intuned-runs:schema:runs-file"
    config = json.loads((repo.root / "schemas/config.schema.json").read_text(encoding="utf-8"))
    assert config["$id"] == "urn:intuned-runs:schema:config"


def test_export_uses_the_configs_schema(repo: Repo) -> None:
    custom = {"type": "object", "properties": {"api": {"type": "string"}, "only": {"type": "integer"}}}
    repo.write("custom.json", json.dumps({"$comment": "custom (info.version 9.9)", **custom}))
    repo.write("intuned-runs.yaml", "schema: custom.json\n")
    assert repo.cli("schema", "export", "--out", "out").code == 0
    exported = json.loads((repo.root / "out/runs-file.schema.json").read_text(encoding="utf-8"))
    request = exported["$defs"]["request"]
    assert sorted(request["anyOf"][0]["properties"]) == ["api", "only"]
    assert request["description"].startswith("The Run API request body (info.version 9.9)")


def test_the_schemas_are_valid_2020_12_schemas() -> None:
    files = [SHIPPED / name for name in editor_schemas.NAMES]
    assert check_jsonschema(files, "--check-metaschema") == {str(f): [] for f in files}


def test_every_example_names_its_schema_on_the_first_line_and_validates() -> None:
    examples = sorted([*(PROJECT / "runs.d").rglob("*.yaml"), *(PROJECT / "runs.d").rglob("*.yml")])
    assert len(examples) >= 3
    for path in examples:
        modeline = MODELINE.match(path.read_text(encoding="utf-8"))
        assert modeline, f"{path} does not start with the yaml-language-server modeline"
        assert (path.parent / modeline[1]).resolve() == (PROJECT / "schemas" / editor_schemas.RUNS_FILE).resolve()
    assert check_jsonschema(examples, *RUNS_SCHEMA) == {str(p): [] for p in examples}
    config = PROJECT / "intuned-runs.yaml"
    modeline = MODELINE.match(config.read_text(encoding="utf-8"))
    assert modeline
    assert (PROJECT / modeline[1]).resolve() == (PROJECT / "schemas" / editor_schemas.CONFIG_FILE).resolve()
    assert check_jsonschema([config], *CONFIG_SCHEMA) == {str(config): []}


def test_accepted_run_files_validate_and_rejected_ones_do_not(repo: Repo, tmp_path: Path) -> None:
    # Each case is first judged by the tool itself, so the two sets cannot drift from what it accepts.
    assert {name: validate_run_file(repo, text) for name, text in ACCEPTED.items()} == dict.fromkeys(ACCEPTED, 0)
    assert {name: validate_run_file(repo, text) for name, text in REJECTED.items()} == dict.fromkeys(REJECTED, 1)
    accepted = check_jsonschema(write_cases(tmp_path / "accepted", ACCEPTED), *RUNS_SCHEMA)
    assert {Path(f).stem: errors for f, errors in accepted.items() if errors} == {}
    rejected = check_jsonschema(write_cases(tmp_path / "rejected", REJECTED), *RUNS_SCHEMA)
    assert sorted(Path(f).stem for f, errors in rejected.items() if not errors) == []


def test_an_unknown_key_is_refused_as_validate_refuses_it(repo: Repo, tmp_path: Path) -> None:
    # A typo would be submitted and ignored on a billable run (docs/validation.md, Unknown keys).
    typo = "runs: [{name: a, request: {api: a, parameters: {}, saveTrase: true}}]\n"
    validate_run_file(repo, typo)
    assert "request.saveTrase: unknown key 'saveTrase'; did you mean 'saveTrace'?" in repo.cli("validate").out
    [path] = write_cases(tmp_path, {"typo": typo})
    assert check_jsonschema([path], *RUNS_SCHEMA) == {
        str(path): ["$.runs[0].request: Additional properties are not allowed ('saveTrase' was unexpected)"]
    }


def test_accepted_configs_validate_and_rejected_ones_do_not(repo: Repo, tmp_path: Path) -> None:
    assert {n: validate_config(repo, t) for n, t in ACCEPTED_CONFIGS.items()} == dict.fromkeys(ACCEPTED_CONFIGS, 0)
    assert {n: validate_config(repo, t) for n, t in REJECTED_CONFIGS.items()} == dict.fromkeys(REJECTED_CONFIGS, 1)
    accepted = check_jsonschema(write_cases(tmp_path / "accepted", ACCEPTED_CONFIGS), *CONFIG_SCHEMA)
    assert {Path(f).stem: errors for f, errors in accepted.items() if errors} == {}
    rejected = check_jsonschema(write_cases(tmp_path / "rejected", REJECTED_CONFIGS), *CONFIG_SCHEMA)
    assert sorted(Path(f).stem for f, errors in rejected.items() if not errors) == []


def test_rules_and_descriptions_are_carried() -> None:
    document = json.loads((SHIPPED / editor_schemas.RUNS_FILE).read_text(encoding="utf-8"))
    run = document["$defs"]["run"]["properties"]
    for key in ("name", "project", "labels", "trigger", "matrix"):
        assert run[key]["description"], key
    assert run["trigger"]["anyOf"][0] == {"enum": ["on-change", "always", "manual"]}
    assert run["trigger"]["default"] == "on-change"
    for key in ("defaults", "moved"):
        assert document["properties"][key]["description"], key
    assert document["$defs"]["template"]["pattern"] == r"\{\{"
