"""The config file and its layers (docs/configuration.md): discovery, --config, unknown keys, environments, precedence,
--var, and values rendered only when a command uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intuned_runs.config import Config, Settings, deep_merge, parse_var
from intuned_runs.errors import ConfigError, ProblemsFound
from intuned_runs.problems import Problem
from tests.helpers import Repo, context, run_main

pytestmark = pytest.mark.usefixtures("clean_env")

WS_TOP = "11111111-1111-4111-8111-111111111111"
WS_PROD = "22222222-2222-4222-8222-222222222222"
WS_CI = "33333333-3333-4333-8333-333333333333"
WS_FLAG = "44444444-4444-4444-8444-444444444444"

# One run whose parameters show the vars it was rendered with.
VARS_RUN = """
runs:
  - name: show
    project: p
    request:
      api: a
      parameters: {region: "{{ vars.region }}", limit: "{{ vars.limit }}"}
"""


def parameters(result_out: str) -> dict[str, object]:
    runs = json.loads(result_out)["runs"]
    assert len(runs) == 1
    return runs[0]["request"]["parameters"]  # type: ignore[no-any-return]


# -- discovery -------------------------------------------------------------------------------------


def test_discovery_walks_up_from_the_C_directory(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "vars: {region: us, limit: 7}\n")
    repo.write("runs.d/a.yaml", VARS_RUN)
    (repo.root / "deep" / "er").mkdir(parents=True)
    result = run_main("-C", str(repo.root / "deep" / "er"), "render", "--json")
    assert (result.code, result.err) == (0, "")
    assert parameters(result.out) == {"region": "us", "limit": 7}
    assert json.loads(result.out)["runs"][0]["source"] == {"file": "runs.d/a.yaml", "line": 2}


def test_discovery_starts_in_the_current_directory_without_C(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write("intuned-runs.yaml", "vars: {region: cwd, limit: 1}\n")
    repo.write("runs.d/a.yaml", VARS_RUN)
    monkeypatch.chdir(repo.root / "runs.d")
    result = run_main("render", "--json")
    assert (result.code, result.err) == (0, "")
    assert parameters(result.out) == {"region": "cwd", "limit": 1}


def test_discovery_stops_at_the_directory_holding_git(tmp_path: Path) -> None:
    outer = Repo(tmp_path / "outer")
    outer.write("intuned-runs.yaml", "runs_dir: nowhere\n")  # must never be read from inside `inner`
    inner = Repo(tmp_path / "outer" / "inner")  # has its own .git
    inner.write("runs.d/a.yaml", VARS_RUN.replace("{{ vars.region }}", "none").replace("{{ vars.limit }}", "0"))
    (inner.root / "sub").mkdir()
    result = run_main("-C", str(inner.root / "sub"), "validate")
    # No config below .git: the repository is the current directory, whose runs.d does not exist
    # (addressed to the folder: there is no config file to point at).
    assert result.out_lines == [
        "runs.d: error: runs_dir runs.d does not exist: create it or set runs_dir in the config"
    ]
    assert result.code == 1
    result = inner.cli("validate")
    assert (result.code, result.out, result.err) == (0, "", "1 run valid.\n")


def test_config_in_the_directory_holding_git_is_found(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "runs_dir: defs\n")
    repo.write("defs/a.yaml", "runs: [{name: x, project: p, request: {api: a, parameters: {}}}]\n")
    (repo.root / "defs" / "x").mkdir()
    result = run_main("-C", str(repo.root / "defs" / "x"), "validate")
    assert (result.code, result.out, result.err) == (0, "", "1 run valid.\n")


def test_config_flag_names_the_file_and_its_directory_is_the_repository(repo: Repo) -> None:
    repo.write("ops/custom.yaml", "runs_dir: defs\nvars: {region: ops, limit: 3}\n")
    repo.write("ops/defs/a.yaml", VARS_RUN)
    repo.write("intuned-runs.yaml", "vars: {region: ignored}\n")
    result = repo.cli("render", "--json", "--config", "ops/custom.yaml")
    assert (result.code, result.err) == (0, "")
    assert parameters(result.out) == {"region": "ops", "limit": 3}
    assert json.loads(result.out)["runs"][0]["source"]["file"] == "defs/a.yaml"


def test_missing_config_file_and_directory_are_usage_errors(repo: Repo) -> None:
    result = repo.cli("validate", "--config", "nope.yaml")
    assert (result.code, result.out, result.err) == (1, "", "error: --config nope.yaml: no such file\n")
    missing = repo.root / "nope"
    result = run_main("validate", "-C", str(missing))
    assert (result.code, result.out, result.err) == (1, "", f"error: -C {missing}: no such directory\n")


def test_no_config_at_all_uses_the_defaults(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", "runs: [{name: x, project: p, request: {api: a, parameters: {}}}]\n")
    result = repo.cli("validate")
    assert (result.code, result.out, result.err) == (0, "", "1 run valid.\n")


# -- keys ------------------------------------------------------------------------------------------


def test_unknown_keys_are_errors_with_a_suggestion(repo: Repo) -> None:
    repo.write(
        "intuned-runs.yaml",
        """
        base_ur: https://example.com
        colour: blue
        environments:
          prod:
            runs_dri: x
            environments: {}
        """,
    )
    repo.write("runs.d/a.yaml", VARS_RUN)
    result = repo.cli("validate")
    assert result.code == 1
    assert result.out_lines == [  # validate reports on stdout (docs/validation.md)
        "intuned-runs.yaml:1:10: error: base_ur: unknown key 'base_ur'; did you mean 'base_url'?",
        "intuned-runs.yaml:2:9: error: colour: unknown key 'colour'",
        "intuned-runs.yaml:5:15: error: environments.prod.runs_dri: unknown key 'runs_dri'; did you mean 'runs_dir'?",
        "intuned-runs.yaml:6:19: error: environments.prod.environments: unknown key 'environments'",
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("default_project: a/b\n", "intuned-runs.yaml:1:18: error: default_project: a project name has no '/'"),
        ("vars: [1]\n", "intuned-runs.yaml:1:7: error: vars: must be a mapping"),
        ("env_allow: LIMIT\n", "intuned-runs.yaml:1:12: error: env_allow: must be a list of name globs"),
        (
            "environments: {prod: 1}\n",
            "intuned-runs.yaml:1:22: error: environments.prod: must be a mapping of config keys",
        ),
        ("[]\n", "intuned-runs.yaml:1:1: error: the config must be a mapping of keys"),
        ("a: [\n", "intuned-runs.yaml:2:1: error: invalid YAML: did not find expected node content"),
    ],
)
def test_invalid_config_values_are_addressed(repo: Repo, text: str, line: str) -> None:
    repo.write("intuned-runs.yaml", text)
    repo.write("runs.d/a.yaml", "runs: [{name: x, project: p, request: {api: a, parameters: {}}}]\n")
    result = repo.cli("validate")

    assert (result.code, result.out_lines + result.err_lines) == (1, [line])


def test_empty_config_file_is_allowed(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "# all keys are optional\n")
    repo.write("runs.d/a.yaml", "runs: [{name: x, project: p, request: {api: a, parameters: {}}}]\n")
    assert repo.cli("validate").code == 0


# -- environments ----------------------------------------------------------------------------------

ENVIRONMENTS = """
vars: {region: us, limit: 50, nested: {a: 1, b: 2}}
env_allow: ["A*", "B*"]
max_submit: 10
environments:
  prod:
    vars: {region: eu, nested: {b: 3}}
    env_allow: ["P*"]
    max_submit: 5
  staging:
    vars: {limit: 5}
"""


def test_environment_merges_vars_key_by_key_and_replaces_scalars_and_lists(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", ENVIRONMENTS)
    config = Config(Settings(chdir=str(repo.root), env="prod"), {})
    assert config.vars == {"region": "eu", "limit": 50, "nested": {"a": 1, "b": 3}}
    assert config.env_allow == ("P*",)
    assert config.max_submit == 5
    base = Config(Settings(chdir=str(repo.root)), {})
    assert base.vars == {"region": "us", "limit": 50, "nested": {"a": 1, "b": 2}}
    assert (base.env_allow, base.max_submit) == (("A*", "B*"), 10)


def test_env_flag_and_variable_select_the_environment(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write("intuned-runs.yaml", ENVIRONMENTS)
    repo.write("runs.d/a.yaml", VARS_RUN)
    assert parameters(repo.cli("render", "--json", "--env", "prod").out) == {"region": "eu", "limit": 50}
    monkeypatch.setenv("INTUNED_RUNS_ENV", "staging")
    assert parameters(repo.cli("render", "--json").out) == {"region": "us", "limit": 5}
    # The flag wins over the variable.
    assert parameters(repo.cli("render", "--json", "--env", "prod").out) == {"region": "eu", "limit": 50}


def test_unknown_environment_is_an_error_with_a_suggestion(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", ENVIRONMENTS)
    repo.write("runs.d/a.yaml", VARS_RUN)
    result = repo.cli("validate", "--env", "prd")
    # A problem of a flag, addressed to it and reported by validate on stdout (docs/validation.md)
    assert (result.code, result.err) == (1, "")
    assert result.out == "<flag --env>: error: unknown environment 'prd' (known: prod, staging); did you mean 'prod'?\n"


def test_deep_merge_rules() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": 1}}
    over = {"a": {"y": [3]}, "b": {"now": "a map"}, "c": None}
    assert deep_merge(base, over) == {"a": {"x": 1, "y": [3]}, "b": {"now": "a map"}, "c": None}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": 1}}  # inputs are not modified


# -- state path ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        ("", None, ".intuned-runs/state.json"),
        ("state: custom/s.json\n", None, "custom/s.json"),
        ("state: custom/s.json\nenvironments: {prod: {}}\n", "prod", ".intuned-runs/prod.json"),
        ("environments: {prod: {state: states/p.json}}\n", "prod", "states/p.json"),
        ("vars: {d: v}\nenvironments: {prod: {state: 'states/{{ vars.d }}.json'}}\n", "prod", "states/v.json"),
    ],
)
def test_state_path_per_environment(repo: Repo, config: str, env: str | None, expected: str) -> None:
    repo.write("intuned-runs.yaml", config)
    resolved = Config(Settings(chdir=str(repo.root), env=env), {}).state_path
    assert resolved == (repo.root / expected).resolve()


def test_environment_state_template_errors_are_addressed(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "state: top.json\nenvironments: {prod: {state: '{{ nope }}'}}\n")
    repo.write("runs.d/a.yaml", "runs: []\n")
    result = repo.cli("plan", "--env", "prod")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == [
        "intuned-runs.yaml:2:30: error: environments.prod.state: undefined: 'nope' is undefined"
    ]


def test_config_template_errors_mask_the_values_they_read(repo: Repo, clean_env: pytest.MonkeyPatch) -> None:
    # The config renders before the run files say which variables are secrets.
    clean_env.setenv("HOOK_TOKEN", "CANARY-hook-token-123")
    repo.write("intuned-runs.yaml", 'default_project: "{{ {}[env.HOOK_TOKEN] }}"\nenv_allow: [HOOK_TOKEN]\n')
    repo.write("runs.d/a.yaml", "runs: []\n")
    result = repo.cli("validate")
    assert result.code == 1
    assert result.out_lines + result.err_lines == [
        "intuned-runs.yaml:1:18: error: default_project: undefined: 'dict object' has no attribute '***'"
    ]


# -- precedence ------------------------------------------------------------------------------------


def _config(repo: Repo, environ: dict[str, str], **settings: str) -> Config:
    repo.write(
        "intuned-runs.yaml",
        f"""
        workspace_id: {WS_TOP}
        base_url: https://top.example/api
        environments:
          prod:
            workspace_id: "{{{{ env.PROD_WS }}}}"
            base_url: https://prod.example/api
          dev: {{}}
        env_allow: [PROD_WS]
        """,
    )
    return Config(Settings(chdir=str(repo.root), **settings), environ)


def test_precedence_top_level(repo: Repo) -> None:
    config = _config(repo, {})
    assert (config.workspace_id, config.base_url) == (WS_TOP, "https://top.example/api")


def test_precedence_environment_over_top_level(repo: Repo) -> None:
    config = _config(repo, {"PROD_WS": WS_PROD}, env="prod")
    assert (config.workspace_id, config.base_url) == (WS_PROD, "https://prod.example/api")


def test_precedence_environment_variables_over_config(repo: Repo) -> None:
    environ = {"INTUNED_WORKSPACE_ID": WS_CI, "INTUNED_BASE_URL": "https://ci.example/api"}
    config = _config(repo, environ, env="dev")
    assert (config.workspace_id, config.base_url) == (WS_CI, "https://ci.example/api")
    config = _config(repo, environ)  # the top level also loses to them
    assert (config.workspace_id, config.base_url) == (WS_CI, "https://ci.example/api")


def test_precedence_flags_over_everything(repo: Repo) -> None:
    environ = {"INTUNED_WORKSPACE_ID": WS_CI, "INTUNED_BASE_URL": "https://ci.example/api", "PROD_WS": WS_PROD}
    config = _config(repo, environ, env="prod", workspace_id=WS_FLAG, base_url="https://flag.example/api")
    assert (config.workspace_id, config.base_url) == (WS_FLAG, "https://flag.example/api")


def test_environment_workspace_conflicting_with_the_variable_is_an_error_naming_both(repo: Repo) -> None:
    config = _config(repo, {"PROD_WS": WS_PROD, "INTUNED_WORKSPACE_ID": WS_CI}, env="prod")
    with pytest.raises(ConfigError) as info:
        _ = config.workspace_id
    assert str(info.value) == (
        f"environment 'prod' sets workspace_id {WS_PROD} but INTUNED_WORKSPACE_ID is {WS_CI}: "
        "unset INTUNED_WORKSPACE_ID or pass --workspace-id"
    )


def test_environment_workspace_equal_to_the_variable_is_fine(repo: Repo) -> None:
    config = _config(repo, {"PROD_WS": WS_PROD, "INTUNED_WORKSPACE_ID": WS_PROD}, env="prod")
    assert config.workspace_id == WS_PROD


@pytest.mark.parametrize(
    ("env", "environ", "flag", "address"),
    [
        # The flag wins: the environment's workspace_id (from an unset PROD_WS) is not even rendered.
        ("prod", {}, "not-a-uuid", ("<flag --workspace-id>", None, None, "")),
        ("dev", {"INTUNED_WORKSPACE_ID": "not-a-uuid"}, None, ("<env INTUNED_WORKSPACE_ID>", None, None, "")),
        ("prod", {"PROD_WS": "not-a-uuid"}, None, ("intuned-runs.yaml", 5, 19, "environments.prod.workspace_id")),
    ],
)
def test_workspace_must_be_a_uuid(
    repo: Repo,
    env: str,
    environ: dict[str, str],
    flag: str | None,
    address: tuple[str, int | None, int | None, str],
) -> None:
    config = _config(repo, environ, env=env, **({"workspace_id": flag} if flag else {}))
    with pytest.raises(ProblemsFound) as info:
        _ = config.workspace_id
    file, line, col, path = address
    message = "workspace_id 'not-a-uuid' is not a UUID (find the workspace ID in Intuned's settings)"
    assert info.value.problems == [Problem(file, line, col, "error", path, message)]


def test_unset_variable_in_workspace_id_is_an_error_only_when_used(repo: Repo) -> None:
    config = _config(repo, {}, env="prod")
    assert config.vars == {}  # loading and other values are unaffected
    with pytest.raises(ProblemsFound) as info:
        _ = config.workspace_id
    assert info.value.problems == [
        Problem(
            "intuned-runs.yaml",
            5,
            19,
            "error",
            "environments.prod.workspace_id",
            "environment variable PROD_WS is not set: set it or use {{ env.PROD_WS | default('…') }}",
        )
    ]


def test_unset_variable_in_workspace_id_does_not_stop_validate_or_plan(repo: Repo) -> None:
    # Admitted by env_allow (a variable it refuses is an error at once: tests/commands/test_hardening.py).
    repo.write("intuned-runs.yaml", 'env_allow: [NOT_SET_ANYWHERE]\nworkspace_id: "{{ env.NOT_SET_ANYWHERE }}"\n')
    repo.write("runs.d/a.yaml", "runs: [{name: x, project: p, request: {api: a, parameters: {}}}]\n")
    result = repo.cli("validate")
    assert (result.code, result.out, result.err) == (0, "", "1 run valid.\n")
    result = repo.cli("plan")
    assert (result.code, result.err_lines) == (0, [context()])
    assert "p/x" in result.out


# -- --var -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keys", "value"),
    [
        ("limit=70", ["limit"], 70),
        ('limit="70"', ["limit"], "70"),
        ("limit='70'", ["limit"], "70"),
        ("flag=true", ["flag"], True),
        ("flag=yes", ["flag"], "yes"),
        ("country=NO", ["country"], "NO"),
        ("ratio=0.5", ["ratio"], 0.5),
        ("nothing=null", ["nothing"], None),
        ("empty=", ["empty"], ""),
        ("a.b=1", ["a", "b"], 1),
        ("url=https://x.example/a=b", ["url"], "https://x.example/a=b"),
    ],
)
def test_parse_var_reads_a_yaml_1_2_scalar(text: str, keys: list[str], value: object) -> None:
    parsed_keys, parsed = parse_var(text)
    assert parsed_keys == keys
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("limit", "<flag --var>: error: expected KEY=VALUE, got 'limit'"),
        ("=1", "<flag --var>: error: expected KEY=VALUE, got '=1'"),
        ("a..b=1", "<flag --var>: error: expected KEY=VALUE, got 'a..b=1'"),
        ("limit=[1", "<flag --var>: error: limit: invalid YAML: did not find expected ',' or ']'"),
        ("limit=[1]", "<flag --var>: error: limit: the value must be a scalar; quote it"),
    ],
)
def test_bad_var_flags_are_addressed_to_the_flag(repo: Repo, text: str, line: str) -> None:
    repo.write("runs.d/a.yaml", VARS_RUN)
    result = repo.cli("validate", "--var", text)
    # validate reports every problem on stdout, flag problems included (docs/validation.md)
    assert (result.code, result.out_lines, result.err) == (1, [line], "")


def test_var_flags_override_config_and_environment_and_nest(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", ENVIRONMENTS)
    repo.write(
        "runs.d/a.yaml",
        """
        runs:
          - name: show
            project: p
            request:
              api: a
              parameters:
                region: "{{ vars.region }}"
                limit: "{{ vars.limit }}"
                nested: "{{ vars.nested }}"
                new: "{{ vars.x.y.z }}"
        """,
    )
    result = repo.cli(
        "render", "--json", "--env", "prod", "--var", 'limit="70"', "--var", "nested.a=9", "--var", "x.y.z=1"
    )
    assert (result.code, result.err) == (0, "")
    assert parameters(result.out) == {"region": "eu", "limit": "70", "nested": {"a": 9, "b": 3}, "new": 1}
    result = repo.cli("render", "--json", "--var", "limit=70", "--var", "x.y.z=1")
    assert parameters(result.out)["limit"] == 70


def test_var_flag_replaces_a_scalar_with_a_map_when_nesting(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "vars: {a: 1}\n")
    config = Config(Settings(chdir=str(repo.root), vars=("a.b=2",)), {})
    assert config.vars == {"a": {"b": 2}}


def test_config_values_are_templates_reading_env(repo: Repo) -> None:
    repo.write(
        "intuned-runs.yaml",
        'vars: {region: "{{ env.REGION }}", limit: "{{ env.LIMIT | default(5) }}"}\nenv_allow: [REGION, LIMIT]\n',
    )
    config = Config(Settings(chdir=str(repo.root)), {"REGION": "apac"})
    assert config.vars == {"region": "apac", "limit": 5}
    config = Config(Settings(chdir=str(repo.root)), {"REGION": "apac", "LIMIT": "9"})
    assert config.vars == {"region": "apac", "limit": "9"}  # env values stay strings
