"""Run files (docs/configuration.md, docs/run-files.md): discovery, defaults, keys, matrix, names, projects,
labels, triggers, render order, and `render` output with selectors (docs/validation.md). End to end
through `intuned-runs`."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import Repo, remote

pytestmark = pytest.mark.usefixtures("clean_env")


def one_run(name: str, api: str = "a", project: str = "p") -> str:
    return f"runs:\n  - {{name: {name}, project: {project}, request: {{api: {api}, parameters: {{}}}}}}\n"


def rendered(repo: Repo, *args: str) -> list[dict[str, Any]]:
    result = repo.cli("render", "--json", *args)
    assert (result.code, result.err) == (0, ""), result.err
    document = json.loads(result.out)
    assert document["format_version"] == 1
    return document["runs"]  # type: ignore[no-any-return]


def keys(repo: Repo, *args: str) -> list[str]:
    return [run["key"] for run in rendered(repo, *args)]


def validate_lines(repo: Repo) -> tuple[int, list[str]]:
    result = repo.cli("validate")
    assert "Traceback" not in result.out + result.err
    return result.code, result.out_lines


# -- discovery -------------------------------------------------------------------------------------


def test_run_files_are_found_recursively_in_path_part_order(repo: Repo) -> None:
    repo.write("runs.d/b.yaml", one_run("b"))
    repo.write("runs.d/a.yml", one_run("a-yml"))
    repo.write("runs.d/sub/c.yaml", one_run("sub-c"))
    repo.write("runs.d/sub-a.yaml", one_run("sub-a"))  # '-' < '/' as text, but 'sub' < 'sub-a.yaml' as parts
    repo.write("runs.d/Z.yaml", one_run("upper-z"))  # code points: 'Z' < 'a'
    repo.write("runs.d/sub/deeper/d.yaml", one_run("deep-d"))
    repo.write("runs.d/empty.yaml", "")
    repo.write("runs.d/comment-only.yaml", "# nothing yet\n")
    # Never read: dotfiles, dot-directories, other extensions.
    repo.write("runs.d/.hidden.yaml", "broken: [\n")
    repo.write("runs.d/.drafts/x.yaml", "broken: [\n")
    repo.write("runs.d/sub/.cache/y.yml", "broken: [\n")
    repo.write("runs.d/notes.txt", "broken: [\n")
    repo.write("runs.d/x.yaml.bak", "broken: [\n")
    repo.write("runs.d/x.json", "broken: [\n")
    assert keys(repo) == ["p/upper-z", "p/a-yml", "p/b", "p/sub-c", "p/deep-d", "p/sub-a"]
    assert repo.cli("validate").err == "6 runs valid.\n"


def test_runs_dir_from_the_config(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "runs_dir: definitions/runs\n")
    repo.write("definitions/runs/a.yaml", one_run("a"))
    repo.write("runs.d/ignored.yaml", "broken: [\n")
    assert [r["source"]["file"] for r in rendered(repo)] == ["definitions/runs/a.yaml"]


def test_missing_runs_dir_is_an_error(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "runs_dir: nope\n")
    assert validate_lines(repo) == (
        1,
        [
            "intuned-runs.yaml:1:11: error: runs_dir: runs_dir nope does not exist: "
            "create it or set runs_dir in the config"
        ],
    )


def test_a_repository_without_runs_is_valid(repo: Repo) -> None:
    repo.write("runs.d/empty.yaml", "")
    repo.write("runs.d/no-runs.yaml", "defaults: {project: p}\n")
    result = repo.cli("validate")
    assert (result.code, result.out, result.err) == (0, "", "0 runs valid.\n")
    assert rendered(repo) == []


def test_symlinked_directory_inside_the_repository_is_followed(repo: Repo) -> None:
    repo.write("shared/common.yaml", one_run("shared"))
    (repo.root / "runs.d").mkdir()
    os.symlink(repo.root / "shared", repo.root / "runs.d" / "linked")
    assert keys(repo) == ["p/shared"]


# -- defaults and keys -----------------------------------------------------------------------------


def test_defaults_deep_merge_under_every_run(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        """
        defaults:
          project: shop
          labels: {team: web, tier: gold}
          trigger: always
          request:
            retry: {maximumAttempts: 5}
            parameters: {tags: [a, b], depth: 1}
        runs:
          - name: daily
            labels: {tier: silver}
            request:
              api: products/list
              parameters: {tags: [c], extra: x}
          - name: other
            project: own
            trigger: manual
            request: {api: other, parameters: {}}
        """,
    )
    runs = rendered(repo)
    assert [(r["key"], r["labels"], r["trigger"], r["request"]) for r in runs] == [
        (
            "shop/daily",
            {"team": "web", "tier": "silver"},  # maps merge, the run wins
            "always",
            {
                "retry": {"maximumAttempts": 5},
                "parameters": {"tags": ["c"], "depth": 1, "extra": "x"},  # lists replace
                "api": "products/list",
            },
        ),
        (
            "own/other",
            {"team": "web", "tier": "gold"},
            "manual",
            {"retry": {"maximumAttempts": 5}, "parameters": {"tags": ["a", "b"], "depth": 1}, "api": "other"},
        ),
    ]


def test_defaults_may_not_hold_name_or_matrix_and_unknown_keys_get_suggestions(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        """
        defaults:
          name: n
          matrix: {a: [1]}
          projct: x
        run:
          - name: a
        runs:
          - name: ok
            project: p
            requets: {api: a}
            colour: blue
        """,
    )
    assert validate_lines(repo) == (
        1,
        [
            "runs.d/a.yaml:6:3: error: run: unknown top-level key 'run'; did you mean 'runs'?",
            "runs.d/a.yaml:2:9: error: defaults.name: 'name' may not be set in defaults",
            "runs.d/a.yaml:3:11: error: defaults.matrix: 'matrix' may not be set in defaults",
            "runs.d/a.yaml:4:11: error: defaults.projct: unknown key 'projct'; did you mean 'project'?",
            "runs.d/a.yaml:10:14: error: requets: unknown key 'requets'; did you mean 'request'?",
            "runs.d/a.yaml:11:13: error: colour: unknown key 'colour'",
            "runs.d/a.yaml:8:5: error: request: run is missing required 'request'",
        ],
    )


def test_required_keys_are_checked_after_the_merge(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        """
        defaults:
          project: p
          request: {api: from-defaults, parameters: {}}
        runs:
          - name: gets-request-from-defaults
          - project: q
        """,
    )
    assert validate_lines(repo) == (1, ["runs.d/a.yaml:6:5: error: name: run is missing required 'name'"])
    repo.write("runs.d/a.yaml", "runs:\n  - {name: x, project: p}\n")
    assert validate_lines(repo) == (1, ["runs.d/a.yaml:2:5: error: request: run is missing required 'request'"])


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("- a\n", "runs.d/a.yaml:1:1: error: a run file is a mapping with 'runs' (and optional 'defaults', 'moved')"),
        ("runs: {name: a}\n", "runs.d/a.yaml:1:7: error: runs: must be a list of runs"),
        ("runs:\n  - just-a-string\n", "runs.d/a.yaml:2:5: error: runs[0]: a run must be a mapping"),
        ("defaults: [1]\nruns: []\n", "runs.d/a.yaml:1:11: error: defaults: must be a mapping"),
        ("moved: {a: b}\n", "runs.d/a.yaml:1:8: error: moved: must be a list of {from, to}"),
        (
            "moved:\n  - {from: a, to: p/b}\n",
            "runs.d/a.yaml:2:5: error: moved[0]: must be {from: PROJECT/NAME, to: PROJECT/NAME}",
        ),
    ],
)
def test_malformed_structure(repo: Repo, text: str, line: str) -> None:
    repo.write("runs.d/a.yaml", text)
    assert validate_lines(repo) == (1, [line])


# -- names, projects, labels, triggers -------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a", "A0", "daily-us", "v1.2_beta-3", "9lives", "x" * 128, "'007'", '\'{{ "tem" ~ "plated" }}\'']
)
def test_valid_names(repo: Repo, name: str) -> None:
    repo.write("runs.d/a.yaml", one_run(name))
    assert len(keys(repo)) == 1


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("'-lead'", "'-lead'"),
        ("'.hidden'", "'.hidden'"),
        ("'has space'", "'has space'"),
        ("'a/b'", "'a/b'"),
        ("café", "'café'"),
        ("x" * 129, "'" + "x" * 129 + "'"),
        ("''", "''"),
    ],
)
def test_invalid_names(repo: Repo, name: str, shown: str) -> None:
    repo.write("runs.d/a.yaml", one_run(name))
    code, lines = validate_lines(repo)
    assert code == 1
    assert lines == [
        f"runs.d/a.yaml:2:12: error: name: invalid run name {shown}: use letters, digits, '.', '_' and '-' "
        "(starting with a letter or digit, at most 128)"
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "10", "name must be a string, got integer 10"),
        ("name", "true", "name must be a string, got boolean true"),
        ("name", "'{{ 10 }}'", "name must be a string, got integer 10"),  # after rendering
        ("name", "[a]", "name must be a string, got list"),
        ("project", "10", "project must be a string, got integer 10"),
        ("project", "'{{ 1.5 }}'", "project must be a string, got number 1.5"),
    ],
)
def test_names_and_projects_that_render_to_a_non_string(repo: Repo, field: str, value: str, message: str) -> None:
    other = "project: p" if field == "name" else "name: n"
    repo.write(
        "runs.d/a.yaml", f"runs:\n  - {other}\n    {field}: {value}\n    request: {{api: a, parameters: {{}}}}\n"
    )
    assert validate_lines(repo) == (1, [f"runs.d/a.yaml:3:{7 + len(field)}: error: {field}: {message}"])


@pytest.mark.parametrize("project", ["'..'", "'.'", "'{{ \".\" * 2 }}'", "'-x'", "'has space'", "café", "'x%2Fy'"])
def test_project_names_follow_the_name_pattern(repo: Repo, project: str, emulator: Emulator) -> None:
    # `..` would make apply POST to /{ws}/run/start: a project is one URL path segment (docs/run-files.md).
    repo.write(
        "runs.d/a.yaml", f"runs:\n  - name: n\n    project: {project}\n    request: {{api: a, parameters: {{}}}}\n"
    )
    code, lines = validate_lines(repo)
    assert code == 1
    [line] = lines
    assert line.startswith("runs.d/a.yaml:3:14: error: project: invalid project name '")
    assert line.endswith("': use letters, digits, '.', '_' and '-' (starting with a letter or digit, at most 128)")
    applied = repo.cli("apply", "--yes", *remote(emulator))
    assert applied.code == 1
    assert applied.err_lines[-1:] == [line]
    assert emulator.received == []  # nothing sent
    assert not (repo.root / ".intuned-runs" / "state.json").exists()


def test_project_from_the_run_then_defaults_then_default_project(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "default_project: fallback\n")
    repo.write(
        "runs.d/a.yaml",
        "defaults: {project: from-defaults}\n"
        "runs:\n"
        "  - {name: a, request: {api: a, parameters: {}}}\n"
        "  - {name: b, project: own, request: {api: a, parameters: {}}}\n",
    )
    repo.write("runs.d/b.yaml", "runs:\n  - {name: c, request: {api: a, parameters: {}}}\n")
    assert keys(repo) == ["from-defaults/a", "own/b", "fallback/c"]


def test_project_is_required_and_has_no_slash(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        "runs:\n"
        "  - {name: a, request: {api: a, parameters: {}}}\n"
        "  - {name: b, project: x/y, request: {api: a, parameters: {}}}\n",
    )
    assert validate_lines(repo) == (
        1,
        [
            "runs.d/a.yaml:2:5: error: project: run has no project: set 'project' (or default_project in the config)",
            "runs.d/a.yaml:3:24: error: project: project name 'x/y' may not contain '/' or control characters",
        ],
    )


def test_labels_map_strings_to_strings(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        """
        runs:
          - {name: a, project: p, labels: {team: "7", tier: "{{ 'gold' }}"}, request: {api: a, parameters: {}}}
          - {name: b, project: p, labels: {n: 1}, request: {api: a, parameters: {}}}
          - {name: c, project: p, labels: [x], request: {api: a, parameters: {}}}
        """,
    )
    assert validate_lines(repo) == (
        1,
        [
            "runs.d/a.yaml:3:35: error: labels: must map strings to strings (quote numbers)",
            "runs.d/a.yaml:4:35: error: labels: must map strings to strings (quote numbers)",
        ],
    )
    repo.write(
        "runs.d/a.yaml", "runs:\n  - {name: a, project: p, labels: {team: '7'}, request: {api: a, parameters: {}}}\n"
    )
    assert rendered(repo)[0]["labels"] == {"team": "7"}


@pytest.mark.parametrize(("trigger", "expected"), [(None, "on-change"), ("always", "always"), ("manual", "manual")])
def test_trigger_values(repo: Repo, trigger: str | None, expected: str) -> None:
    field = f", trigger: {trigger}" if trigger else ""
    repo.write("runs.d/a.yaml", f"runs:\n  - {{name: a, project: p{field}, request: {{api: a, parameters: {{}}}}}}\n")
    assert rendered(repo)[0]["trigger"] == expected


def test_unknown_trigger_is_an_error(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml", "runs:\n  - {name: a, project: p, trigger: sometimes, request: {api: a, parameters: {}}}\n"
    )
    assert validate_lines(repo) == (
        1,
        ["runs.d/a.yaml:2:36: error: trigger: must be one of on-change, always, manual"],
    )


# -- keys ------------------------------------------------------------------------------------------


def test_duplicate_key_across_files_names_both_places(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", "# first\n" + one_run("dup"))
    repo.write("runs.d/b/c.yaml", "# second\n# third\n" + one_run("dup", api="other"))
    assert validate_lines(repo) == (
        1,
        ["runs.d/b/c.yaml:4:1: error: name: duplicate run key p/dup: also defined at runs.d/a.yaml:3"],
    )


def test_duplicate_key_from_a_matrix(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        "runs:\n  - name: same\n    project: p\n    matrix: {r: [eu, us]}\n    request: {api: a, parameters: {}}\n",
    )
    assert validate_lines(repo) == (
        1,
        ["runs.d/a.yaml:2:1: error: name: duplicate run key p/same: also defined at runs.d/a.yaml:2"],
    )


def test_same_name_in_different_projects_is_fine(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        one_run("same", project="p1") + "  - {name: same, project: p2, request: {api: a, parameters: {}}}\n",
    )
    assert keys(repo) == ["p1/same", "p2/same"]


# -- matrix ----------------------------------------------------------------------------------------


def test_matrix_is_a_cartesian_product_in_order(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        """
        runs:
          - name: "m-{{ matrix.region }}-{{ matrix.size.id }}"
            project: p
            matrix:
              region: [eu, us]
              size: [{id: s, n: 1}, {id: l, n: 9}]
            request:
              api: a
              parameters: {region: "{{ matrix.region }}", n: "{{ matrix.size.n }}", size: "{{ matrix.size }}"}
        """,
    )
    runs = rendered(repo)
    assert [(r["key"], r["request"]["parameters"]) for r in runs] == [
        ("p/m-eu-s", {"region": "eu", "n": 1, "size": {"id": "s", "n": 1}}),
        ("p/m-eu-l", {"region": "eu", "n": 9, "size": {"id": "l", "n": 9}}),
        ("p/m-us-s", {"region": "us", "n": 1, "size": {"id": "s", "n": 1}}),
        ("p/m-us-l", {"region": "us", "n": 9, "size": {"id": "l", "n": 9}}),
    ]
    assert {r["source"]["line"] for r in runs} == {2}


def test_matrix_values_may_be_templates(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "vars: {regions: [eu, apac]}\n")
    repo.write(
        "runs.d/a.yaml",
        'runs:\n  - name: "r-{{ matrix.r }}"\n    project: p\n    matrix: {r: "{{ vars.regions }}"}\n'
        "    request: {api: a, parameters: {}}\n",
    )
    assert keys(repo) == ["p/r-eu", "p/r-apac"]


def test_matrix_of_exactly_10000_combinations_is_allowed(repo: Repo) -> None:
    hundred = ", ".join(str(i) for i in range(100))
    repo.write(
        "runs.d/a.yaml",
        f'runs:\n  - name: "m-{{{{ matrix.a }}}}-{{{{ matrix.b }}}}"\n    project: p\n'
        f"    matrix: {{a: [{hundred}], b: [{hundred}]}}\n    request: {{api: a, parameters: {{}}}}\n",
    )
    result = repo.cli("validate")
    assert (result.code, result.out, result.err) == (0, "", "10000 runs valid.\n")


def test_matrix_over_10000_combinations_is_an_error(repo: Repo) -> None:
    hundred = ", ".join(str(i) for i in range(100))
    repo.write(
        "runs.d/a.yaml",
        f'runs:\n  - name: "m-{{{{ matrix.a }}}}"\n    project: p\n'
        f"    matrix: {{a: [{hundred}], b: [{hundred}], c: [x, y]}}\n    request: {{api: a, parameters: {{}}}}\n",
    )
    assert validate_lines(repo) == (
        1,
        ["runs.d/a.yaml:4:13: error: matrix: 20000 combinations is more than 10000: split the run entry"],
    )


@pytest.mark.parametrize(
    ("matrix", "line"),
    [
        ("{a: []}", "runs.d/a.yaml:4:17: error: matrix.a: must be a non-empty list of scalars or maps"),
        ("{a: x}", "runs.d/a.yaml:4:17: error: matrix.a: must be a non-empty list of scalars or maps"),
        ("{a: [[1]]}", "runs.d/a.yaml:4:17: error: matrix.a: must be a non-empty list of scalars or maps"),
        ("{}", "runs.d/a.yaml:4:13: error: matrix: must be a mapping of names to lists of values"),
        ("[1, 2]", "runs.d/a.yaml:4:13: error: matrix: must be a mapping of names to lists of values"),
    ],
)
def test_bad_matrix(repo: Repo, matrix: str, line: str) -> None:
    repo.write(
        "runs.d/a.yaml",
        f"runs:\n  - name: a\n    project: p\n    matrix: {matrix}\n    request: {{api: a, parameters: {{}}}}\n",
    )
    assert validate_lines(repo) == (1, [line])


# -- render order ----------------------------------------------------------------------------------


def test_fields_rendered_earlier_are_available_as_run(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        """
        defaults:
          project: "proj-{{ run.name }}"
        runs:
          - name: "n-{{ matrix.x }}"
            matrix: {x: [1]}
            labels: {of: "{{ run.project }}/{{ run.name }}"}
            trigger: "{{ 'manual' if run.labels.of.startswith('proj') else 'always' }}"
            request:
              api: a
              parameters: {all: "{{ run }}"}
        """,
    )
    (run,) = rendered(repo)
    assert (run["key"], run["labels"], run["trigger"]) == ("proj-n-1/n-1", {"of": "proj-n-1/n-1"}, "manual")
    assert run["request"]["parameters"]["all"] == {
        "name": "n-1",
        "project": "proj-n-1",
        "labels": {"of": "proj-n-1/n-1"},
        "trigger": "manual",
    }


@pytest.mark.parametrize(
    ("field", "line"),
    [
        (
            'name: "{{ run.project }}"',
            "runs.d/a.yaml:2:11: error: name: undefined: 'dict object' has no attribute 'project'",
        ),
        (
            'labels: {t: "{{ run.trigger }}"}',
            "runs.d/a.yaml:2:17: error: labels.t: undefined: 'dict object' has no attribute 'trigger'",
        ),
        (
            'trigger: "{{ run.request }}"',
            "runs.d/a.yaml:2:14: error: trigger: undefined: 'dict object' has no attribute 'request'",
        ),
    ],
)
def test_fields_rendered_later_are_not_available(repo: Repo, field: str, line: str) -> None:
    name = "" if field.startswith("name") else "    name: a\n"
    repo.write(
        "runs.d/a.yaml", f"runs:\n  - {field}\n{name}    project: p\n    request: {{api: a, parameters: {{}}}}\n"
    )
    assert validate_lines(repo) == (1, [line])


def test_request_is_sent_as_written(repo: Repo) -> None:
    # No defaults filled in, no keys added or dropped (the schema's defaults stay out of the request).
    repo.write("runs.d/a.yaml", "runs:\n  - {name: a, project: p, request: {api: x, parameters: {z: 1, a: null}}}\n")
    assert rendered(repo)[0]["request"] == {"api": "x", "parameters": {"z": 1, "a": None}}


# -- render output and selectors -------------------------------------------------------------------

RENDER_REPO = """
defaults:
  project: shop
  labels: {team: web}
  request:
    retry: {maximumAttempts: 5}
runs:
  - name: daily
    trigger: always
    request:
      api: products/list
      parameters: {tags: [c]}
      sink:
        type: webhook
        url: https://hooks.example.com/x
        headers: {Authorization: "Bearer {{ secret('HOOK_TOKEN') }}"}
"""


def test_render_yaml_shows_placeholders_without_the_secret_set(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", RENDER_REPO)
    result = repo.cli("render")
    assert (result.code, result.err) == (0, "")
    assert result.out_lines == [
        "---",
        "# Source: runs.d/a.yaml:7",
        "key: shop/daily",
        "project: shop",
        "name: daily",
        "labels:",
        "  team: web",
        "trigger: always",
        "source:",
        "  file: runs.d/a.yaml",
        "  line: 7",
        "request:",
        "  retry:",
        "    maximumAttempts: 5",
        "  api: products/list",
        "  parameters:",
        "    tags:",
        "    - c",
        "  sink:",
        "    type: webhook",
        "    url: https://hooks.example.com/x",
        "    headers:",
        "      Authorization: Bearer (secret:HOOK_TOKEN)",
    ]


def test_render_json_shape(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", RENDER_REPO)
    result = repo.cli("render", "--json")
    assert (result.code, result.err) == (0, "")
    assert json.loads(result.out) == {
        "format_version": 1,
        "runs": [
            {
                "key": "shop/daily",
                "project": "shop",
                "name": "daily",
                "labels": {"team": "web"},
                "trigger": "always",
                "source": {"file": "runs.d/a.yaml", "line": 7},
                "request": {
                    "retry": {"maximumAttempts": 5},
                    "api": "products/list",
                    "parameters": {"tags": ["c"]},
                    "sink": {
                        "type": "webhook",
                        "url": "https://hooks.example.com/x",
                        "headers": {"Authorization": "Bearer (secret:HOOK_TOKEN)"},
                    },
                },
            }
        ],
    }
    assert list(json.loads(result.out)["runs"][0]) == [
        "key",
        "project",
        "name",
        "labels",
        "trigger",
        "source",
        "request",
    ]


SELECT_REPO = """
runs:
  - {name: daily-us, project: pricing, labels: {team: pricing}, request: {api: a, parameters: {}}}
  - {name: daily-eu, project: pricing, labels: {team: pricing, region: eu}, request: {api: a, parameters: {}}}
  - {name: full, project: catalog, labels: {team: catalog}, request: {api: a, parameters: {}}}
  - {name: daily-us, project: catalog, labels: {team: catalog}, request: {api: a, parameters: {}}}
"""


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        ((), ["pricing/daily-us", "pricing/daily-eu", "catalog/full", "catalog/daily-us"]),
        (("pricing/*",), ["pricing/daily-us", "pricing/daily-eu"]),
        (("*/daily-us",), ["pricing/daily-us", "catalog/daily-us"]),
        (("daily-*",), ["pricing/daily-us", "pricing/daily-eu", "catalog/daily-us"]),  # NAME alone
        (("label:team=catalog",), ["catalog/full", "catalog/daily-us"]),
        (("label:region=eu", "catalog/full"), ["pricing/daily-eu", "catalog/full"]),
        (("Pricing/*", "pricing/daily-e?"), ["pricing/daily-eu"]),
    ],
)
def test_render_selectors(repo: Repo, selectors: tuple[str, ...], expected: list[str]) -> None:
    repo.write("runs.d/a.yaml", SELECT_REPO)
    if "Pricing/*" in selectors:  # globs are case-sensitive: this one matches nothing
        result = repo.cli("render", *selectors)
        assert (result.code, result.out) == (1, "")
        assert (
            result.err
            == "error: selector 'Pricing/*' matches no run or state entry: did you mean 'pricing/daily-us'?\n"
        )
        selectors = selectors[1:]
    assert keys(repo, *selectors) == expected


def test_render_selector_matching_nothing_exits_1_naming_each(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", SELECT_REPO)
    result = repo.cli("render", "nothing/*", "label:team=pricing", "label:team=nobody")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "error: selector 'nothing/*' matches no run or state entry: check the key (PROJECT/NAME) or label; "
        "selector 'label:team=nobody' matches no run or state entry: did you mean 'label:team=pricing'?\n"
    )


def test_render_bad_label_selector(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", SELECT_REPO)
    result = repo.cli("render", "label:team")
    assert (result.code, result.out, result.err) == (
        1,
        "",
        "error: selector 'label:team': expected label:KEY=VALUE or label:KEY!=VALUE\n",
    )


def test_render_stops_on_validation_errors_reporting_them_on_stderr(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", SELECT_REPO)
    repo.write("runs.d/b.yaml", "runs:\n  - {name: bad, project: p, request: {api: 1, parameters: {}}}\n")
    result = repo.cli("render")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == ["runs.d/b.yaml:2:44: error: request.api: must be a string (got integer)"]


def test_render_reports_warnings_on_stderr_and_still_renders(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", "runs:\n  - {name: a, project: p, request: {api: a, parameters: {c: NO}}}\n")
    result = repo.cli("render", "--json")
    assert result.code == 0
    assert result.err_lines == [
        "runs.d/a.yaml:2:61: warning: request.parameters.c: unquoted 'NO' is the string 'NO' in YAML 1.2, "
        "not a boolean: quote it, or write true/false"
    ]
    assert json.loads(result.out)["runs"][0]["request"]["parameters"] == {"c": "NO"}


def test_every_problem_of_a_run_is_reported_not_only_the_first(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        """
        runs:
          - name: a
            project: p
            labels: {x: "{{ vars.nope1 }}"}
            request:
              api: "{{ vars.nope2 }}"
              parameters: {x: "{{ vars.nope3 }}"}
          - name: "{{ vars.nope4 }}"
            project: "{{ vars.nope5 }}"
            request: {api: a, parameters: {}, saveTrace: "x"}
        """,
    )
    result = repo.cli("validate")
    assert (result.code, result.out_lines) == (
        1,
        [
            "runs.d/a.yaml:4:17: error: labels.x: undefined: 'dict object' has no attribute 'nope1'",
            "runs.d/a.yaml:6:12: error: request.api: undefined: 'dict object' has no attribute 'nope2'",
            "runs.d/a.yaml:7:23: error: request.parameters.x: undefined: 'dict object' has no attribute 'nope3'",
            "runs.d/a.yaml:8:11: error: name: undefined: 'dict object' has no attribute 'nope4'",
            "runs.d/a.yaml:9:14: error: project: undefined: 'dict object' has no attribute 'nope5'",
            "runs.d/a.yaml:10:50: error: request.saveTrace: must be a boolean (true/false) (got string)",
        ],
    )
