"""What a pull request (a stranger's, or a careless one) can no longer do through the config and run files
(docs/configuration.md, docs/validation.md): read CI's variables through env, submit a typo, aim apply at
another endpoint with `project: ..`, write the state outside the repository, or pass an unusable config
through validate. Each case: one addressed line, exit 1, nothing sent, state untouched."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import API_KEY, WS, Repo, remote

CANARY = "CANARY-aws-s3cr3t-Zq81"
ONE_RUN = """\
runs:
  - name: n
    project: p
    request:
      api: a
      parameters: {PARAMS}
"""


def one_run(params: str = "{}", extra: str = "") -> str:
    return ONE_RUN.replace("{PARAMS}", params) + extra


@pytest.fixture
def keyed(repo: Repo, clean_env: pytest.MonkeyPatch) -> Repo:
    clean_env.setenv("INTUNED_API_KEY", API_KEY)
    return repo


def assert_nothing_happened(repo: Repo, emulator: Emulator) -> None:
    assert emulator.received == []
    assert not (repo.root / ".intuned-runs" / "state.json").exists()


# -- env_allow ---------------------------------------------------------------------------------------

AWS = 'parameters: {s: "{{ env.AWS_SECRET_ACCESS_KEY }}"}'
CREDENTIAL = (
    "runs.d/a.yaml:6:23: error: request.parameters.s: environment variable AWS_SECRET_ACCESS_KEY is not allowed "
    "by env_allow: it looks like a credential, which a glob never admits; use {{ secret('AWS_SECRET_ACCESS_KEY') }} "
    "inside request (or list AWS_SECRET_ACCESS_KEY by its exact name)"
)


@pytest.mark.parametrize("config", [None, "env_allow: []\n", 'env_allow: ["*"]\n', "env_allow: [AWS_*, '*KEY']\n"])
@pytest.mark.parametrize(
    "command", [("render", "--json"), ("plan", "--format", "markdown"), ("plan", "--json"), ("validate",)]
)
def test_ci_credentials_never_reach_a_plan(
    repo: Repo, clean_env: pytest.MonkeyPatch, config: str | None, command: tuple[str, ...]
) -> None:
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    if config is not None:
        repo.write("intuned-runs.yaml", config)
    repo.write("runs.d/a.yaml", one_run('{s: "{{ env.AWS_SECRET_ACCESS_KEY }}"}'))
    result = repo.cli(*command)
    assert result.code == 1
    assert CANARY not in result.out + result.err
    if command == ("validate",):
        assert result.out_lines == [CREDENTIAL]
    elif command[-1] == "markdown":
        assert "is not allowed by env_allow: it looks like a credential" in result.out  # the Problems table
    elif command == ("plan", "--json"):
        assert [p["message"] for p in result.json()["problems"]] == [CREDENTIAL.split("request.parameters.s: ")[1]]


def test_a_credential_listed_by_its_exact_name_is_readable(repo: Repo, clean_env: pytest.MonkeyPatch) -> None:
    # (Not AWS_SECRET_ACCESS_KEY: the AWS secret key is masked in every output, being a state credential.)
    clean_env.setenv("DEPLOY_TOKEN", "value-listed-on-purpose")
    repo.write("intuned-runs.yaml", "env_allow: [DEPLOY_TOKEN]\n")
    repo.write("runs.d/a.yaml", one_run('{s: "{{ env.DEPLOY_TOKEN }}"}'))
    result = repo.cli("render", "--json")
    assert result.code == 0
    assert result.json()["runs"][0]["request"]["parameters"] == {"s": "value-listed-on-purpose"}


def test_not_admitted_and_not_set_are_different_errors(repo: Repo, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ORDERS_SINCE", "2026-03-01")
    repo.write("runs.d/a.yaml", one_run("{since: \"{{ env.ORDERS_SINCE | default('2026-01-01') }}\"}"))
    result = repo.cli("validate")
    assert (result.code, result.out_lines) == (
        1,
        [
            "runs.d/a.yaml:6:27: error: request.parameters.since: environment variable ORDERS_SINCE is not "
            "allowed by env_allow (add it to env_allow)"
        ],
    )
    repo.write("intuned-runs.yaml", "env_allow: [ORDERS_*]\n")
    assert repo.cli("render", "--json").json()["runs"][0]["request"]["parameters"] == {"since": "2026-03-01"}
    repo.write("runs.d/a.yaml", one_run('{since: "{{ env.ORDERS_UNTIL }}"}'))
    result = repo.cli("validate")
    assert (result.code, result.out_lines) == (
        1,
        [
            "runs.d/a.yaml:6:27: error: request.parameters.since: environment variable ORDERS_UNTIL is not set: "
            "set it or use {{ env.ORDERS_UNTIL | default('…') }}"
        ],
    )


def test_env_allow_applies_to_the_config_too(keyed: Repo, clean_env: pytest.MonkeyPatch) -> None:
    repo = keyed
    clean_env.setenv("PROD_WORKSPACE_ID", WS)
    clean_env.setenv("INTUNED_RUNS_ENV", "prod")
    repo.write("intuned-runs.yaml", 'environments: {prod: {workspace_id: "{{ env.PROD_WORKSPACE_ID }}"}}\n')
    repo.write("runs.d/a.yaml", one_run())
    result = repo.cli("status")
    assert result.code == 1
    assert result.err_lines[-1] == (
        "intuned-runs.yaml:1:37: error: environments.prod.workspace_id: environment variable PROD_WORKSPACE_ID "
        "is not allowed by env_allow (add it to env_allow)"
    )
    # INTUNED_WORKSPACE_ID needs no env_allow (docs/configuration.md).
    repo.write("intuned-runs.yaml", 'workspace_id: "{{ env.INTUNED_WORKSPACE_ID }}"\n')
    clean_env.setenv("INTUNED_WORKSPACE_ID", WS)
    clean_env.delenv("INTUNED_RUNS_ENV")
    assert repo.cli("validate").code == 0


# -- unknown keys --------------------------------------------------------------------------------------

TYPO = "runs.d/a.yaml:7:18: error: request.saveTrase: unknown key 'saveTrase'; did you mean 'saveTrace'?"


def test_apply_never_submits_a_typo(keyed: Repo, emulator: Emulator) -> None:
    keyed.write("runs.d/a.yaml", one_run(extra="      saveTrase: true\n"))
    result = keyed.cli("apply", "--yes", *remote(emulator))
    assert result.code == 1
    assert result.err_lines[-1] == TYPO
    assert_nothing_happened(keyed, emulator)
    assert keyed.cli("validate").out_lines == [TYPO]


def test_unknown_keys_warn_submits_the_field_newer_than_the_schema(keyed: Repo, emulator: Emulator) -> None:
    keyed.write("intuned-runs.yaml", "unknown_keys: warn\n")
    keyed.write("runs.d/a.yaml", one_run(extra="      saveTrase: true\n"))
    result = keyed.cli("apply", "--yes", *remote(emulator))
    assert result.code == 0
    assert TYPO.replace(": error: ", ": warning: ") in result.err_lines
    assert [r.body for r in emulator.received] == [{"api": "a", "parameters": {}, "saveTrase": True}]
    strict = keyed.cli("plan", "--strict", *remote(emulator))
    assert (strict.code, strict.err_lines[-1]) == (1, TYPO)


# -- formats -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxy", "shown"), [('""', "''"), ('"http://proxy example:8080"', "'http://proxy example:8080'")]
)
def test_a_failed_format_is_a_warning_in_validate_and_the_emulator(
    keyed: Repo, emulator: Emulator, proxy: str, shown: str
) -> None:
    keyed.write("runs.d/a.yaml", one_run(extra=f"      proxy: {proxy}\n"))
    warning = (
        f"runs.d/a.yaml:7:14: warning: request.proxy: {shown} is not a URI; servers that check formats will reject it"
    )
    result = keyed.cli("validate")
    assert (result.code, result.out_lines) == (0, [warning])
    strict = keyed.cli("validate", "--strict")
    assert (strict.code, strict.out_lines) == (1, [warning.replace(": warning: ", ": error: ")])
    # The emulator judges formats the same way: an annotation, so the body is accepted.
    applied = keyed.cli("apply", "--yes", *remote(emulator))
    assert applied.code == 0
    assert [r.status for r in emulator.received] == [201]


def test_the_emulator_accepts_a_body_whose_format_fails(emulator: Emulator) -> None:
    url = f"{emulator.url}/{WS}/projects/p/run/start"
    for proxy in ("", "http://proxy example:8080", "no-scheme"):
        body = {"api": "a", "parameters": {}, "proxy": proxy}
        response = httpx.post(url, json=body, headers={"x-api-key": API_KEY})
        assert response.status_code == 201, response.text


# -- the config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "flags", "line"),
    [
        (
            "workspace_id: not-a-uuid\n",
            (),
            "intuned-runs.yaml:1:15: error: workspace_id: workspace_id 'not-a-uuid' is not a UUID "
            "(find the workspace ID in Intuned's settings)",
        ),
        (
            "base_url: not-a-url\n",
            (),
            "intuned-runs.yaml:1:11: error: base_url: base_url 'not-a-url' is not an absolute URL",
        ),
        (
            "base_url: ftp://h/x\n",
            (),
            "intuned-runs.yaml:1:11: error: base_url: base_url 'ftp://h/x' is not an absolute URL",
        ),
        ("", ("--base-url", "not-a-url"), "<flag --base-url>: error: base_url 'not-a-url' is not an absolute URL"),
    ],
)
def test_validate_checks_the_config(
    keyed: Repo, emulator: Emulator, config: str, flags: tuple[str, ...], line: str
) -> None:
    keyed.write("intuned-runs.yaml", config)
    keyed.write("runs.d/a.yaml", one_run())
    result = keyed.cli("validate", *flags)
    assert (result.code, result.out_lines) == (1, [line])
    planned = keyed.cli("plan", *flags)
    assert (planned.code, planned.err_lines[-1:]) == (1, [line])
    applied = keyed.cli("apply", "--yes", *(flags or ("--base-url", emulator.url)))
    assert applied.code == 1
    assert_nothing_happened(keyed, emulator)


def test_the_variable_intuned_base_url_is_checked_at_its_source(keyed: Repo, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("INTUNED_BASE_URL", "app.intuned.io/api")
    keyed.write("runs.d/a.yaml", one_run())
    result = keyed.cli("validate")
    assert (result.code, result.out_lines) == (
        1,
        ["<env INTUNED_BASE_URL>: error: base_url 'app.intuned.io/api' is not an absolute URL"],
    )


def test_a_workspace_that_needs_an_unset_variable_waits_for_apply(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", 'workspace_id: "{{ env.INTUNED_WORKSPACE_ID }}"\n')
    repo.write("runs.d/a.yaml", one_run())
    assert repo.cli("validate").code == 0


# -- the state's path ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "line"),
    [
        (
            "state: ../../st.json\n",
            "intuned-runs.yaml:1:8: error: state: state ../../st.json resolves outside the repository {root}: "
            "use a path inside it, or an absolute path",
        ),
        (
            "environments: {ci: {state: ../ci.json}}\n",
            "intuned-runs.yaml:1:28: error: environments.ci.state: state ../ci.json resolves outside the "
            "repository {root}: use a path inside it, or an absolute path",
        ),
    ],
)
def test_a_relative_state_outside_the_repository_is_an_error(
    keyed: Repo, emulator: Emulator, tmp_path: Path, config: str, line: str
) -> None:
    keyed.write("intuned-runs.yaml", config)
    keyed.write("runs.d/a.yaml", one_run())
    env = ("--env", "ci") if "ci:" in config else ()
    expected = line.format(root=keyed.root)
    result = keyed.cli("validate", *env)
    assert (result.code, result.out_lines) == (1, [expected])
    applied = keyed.cli("apply", "--yes", *env, *remote(emulator))
    assert (applied.code, applied.err_lines[-1:]) == (1, [expected])
    assert emulator.received == []
    assert sorted(p.name for p in tmp_path.rglob("*.json")) == []


def test_an_absolute_state_is_taken_as_given(keyed: Repo, emulator: Emulator, tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared" / "state.json"
    elsewhere.parent.mkdir()
    keyed.write("intuned-runs.yaml", f"state: {elsewhere}\n")
    keyed.write("runs.d/a.yaml", one_run())
    assert keyed.cli("apply", "--yes", *remote(emulator)).code == 0
    assert list(json.loads(elsewhere.read_text())["entries"]) == ["p/n"]


# -- found by a review against the docs: values that are not UTF-8, config reads, a null project -------------


def test_a_secret_that_is_not_utf8_is_refused_before_sending(
    keyed: Repo, emulator: Emulator, clean_env: pytest.MonkeyPatch
) -> None:
    # os.environ holds undecodable bytes as surrogate escapes: masking and sending must not crash on them.
    clean_env.setenv("SEC", "http://a\udcff\udcfeabcdef")
    keyed.write("runs.d/a.yaml", one_run("{}\n      proxy: \"{{ secret('SEC') }}\""))
    assert keyed.cli("validate").code == 0
    result = keyed.cli("apply", "--yes", *remote(emulator))
    assert result.code == 1
    assert result.err_lines[-1] == (
        "error: secrets not valid UTF-8: SEC (needed by runs to submit): set them to UTF-8 text"
    )
    assert "unexpected error" not in result.err
    assert_nothing_happened(keyed, emulator)


def test_an_api_key_that_is_not_ascii_is_refused_before_sending(
    repo: Repo, emulator: Emulator, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("INTUNED_API_KEY", "abcdefg\udcff")
    repo.write("runs.d/a.yaml", one_run())
    assert repo.cli("plan").code == 0
    result = repo.cli("apply", "--yes", *remote(emulator))
    assert result.code == 1
    assert result.err_lines[-1] == (
        "error: INTUNED_API_KEY is not a valid API key (printable ASCII only): export the workspace's key"
    )
    assert_nothing_happened(repo, emulator)


def test_a_var_that_is_not_utf8_is_an_addressed_error(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", one_run())
    result = repo.cli("--var", "a=\udcff", "validate")
    assert (result.code, result.out_lines) == (
        1,
        ["<flag --var>: error: a: not valid UTF-8: pass the value as UTF-8 text"],
    )


def test_validate_reports_a_config_value_that_reads_a_variable_env_allow_refuses(
    repo: Repo, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("PROD_WS", WS)
    repo.write("intuned-runs.yaml", "workspace_id: '{{ env.PROD_WS }}'\n")
    repo.write("runs.d/a.yaml", one_run())
    result = repo.cli("validate")
    assert (result.code, result.out_lines) == (
        1,
        [
            "intuned-runs.yaml:1:15: error: workspace_id: environment variable PROD_WS is not allowed by env_allow "
            "(add it to env_allow)"
        ],
    )
    clean_env.delenv("PROD_WS")
    repo.write("intuned-runs.yaml", "env_allow: [PROD_WS]\nworkspace_id: '{{ env.PROD_WS }}'\n")
    assert repo.cli("validate").code == 0  # unset: left to apply, which needs it


def test_a_project_that_renders_to_null_says_so(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "default_project: dp\n")
    repo.write("runs.d/a.yaml", one_run().replace("project: p", 'project: "{{ none }}"'))
    result = repo.cli("validate")
    assert (result.code, result.out_lines) == (
        1,
        ["runs.d/a.yaml:3:14: error: project: project must be a string, got null"],
    )
