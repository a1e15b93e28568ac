"""What plan shows (docs/plan.md): the context line and JSON context, counts and nouns that agree, `-q`,
`moved:` errors, the markdown plan's limits, and the documents printed when validation fails."""

from __future__ import annotations

import json

import pytest

from intuned_runs.emulator.server import Emulator
from tests.commands.test_plan import diff_blocks
from tests.helpers import WS, Repo, context, remote

ONE = "runs:\n  - {name: a, project: shop, request: {api: x, parameters: {}}}\n"
PROD = "2b7c1d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"


def test_the_context_line_and_json_context_name_env_workspace_and_state(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", f'environments:\n  prod:\n    workspace_id: "{PROD}"\n')
    repo.write("runs.d/shop.yaml", ONE)
    result = repo.cli("plan", "--env", "prod", "--json")
    assert result.code == 0
    assert result.err_lines == [f"Planning against workspace {PROD} (env prod) with state .intuned-runs/prod.json"]
    assert result.json()["context"] == {"env": "prod", "workspace_id": PROD, "state": ".intuned-runs/prod.json"}
    assert repo.cli("plan").err_lines == ["Planning against workspace (not set) with state .intuned-runs/state.json"]


def test_apply_names_what_it_applies_to_before_anything_else(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", ONE)
    result = user_repo.cli("apply", "--yes", *remote(emulator))
    assert (result.code, result.err_lines) == (0, [context(WS)])


def test_counts_and_nouns_agree_and_manual_runs_are_counted_apart(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    user_repo.edit("runs.d/shop.yaml", "    trigger: always\n", "")  # hourly becomes on-change
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    result = user_repo.cli("plan")
    assert (result.code, result.out_lines) == (0, ["No changes. 3 runs up to date, 1 manual."])
    summary = user_repo.cli("plan", "--json").json()["summary"]
    assert (summary["unchanged"], summary["manual"]) == (3, 1)
    requested = user_repo.cli("plan", "--run", "backfill")
    assert requested.out_lines[-1] == (
        "Plan: 1 to submit (0 new, 0 changed, 1 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked."
    )
    user_repo.write("runs.d/shop.yaml", ONE)
    user_repo.write("runs.d/ops.yaml", "")
    one = user_repo.cli("apply", "--yes", *remote(emulator))
    assert one.out_lines[-1] == "Apply: 1 submitted, 0 failed, 0 unknown, 0 skipped, 3 forgotten, 0 blocked."
    assert user_repo.cli("plan").out_lines == ["No changes. 1 run up to date."]
    assert user_repo.cli("validate").err == "1 run valid.\n"


def test_quiet_plan_prints_only_the_summary_line_and_problems(user_repo: Repo) -> None:
    user_repo.standard()
    user_repo.write("runs.d/warn.yaml", "runs:\n  - {name: w, project: p, request: {api: x, parameters: {c: no}}}\n")
    result = user_repo.cli("plan", "-q")
    assert result.code == 0
    assert result.out_lines == [
        "Plan: 4 to submit (4 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 manual, 0 to forget, 0 blocked."
    ]
    [warning] = result.err_lines
    assert warning.startswith("runs.d/warn.yaml:2:") and ": warning: " in warning


# -- moved: ------------------------------------------------------------------------------------------

MOVED = """\
moved:
  - {from: shop/us-daily, to: shop/daily-us}
runs:
  - {name: daily-us, project: shop, request: {api: x, parameters: {}}}
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            MOVED.replace("to: shop/daily-us", "to: shop/daily-su"),
            "runs.d/shop.yaml:2:5: error: moved[0].to: 'shop/daily-su' is not a defined run: "
            "'to' names the run's new key (PROJECT/NAME)",
        ),
        (
            MOVED + "  - {name: us-daily, project: shop, request: {api: x, parameters: {}}}\n",
            "runs.d/shop.yaml:2:5: error: moved[0].from: 'shop/us-daily' is still defined: "
            "remove or rename that run, or drop this moved entry",
        ),
    ],
    ids=["to-not-defined", "from-still-defined"],
)
def test_a_moved_entry_that_cannot_be_a_rename_is_an_error_at_its_line(
    user_repo: Repo, emulator: Emulator, text: str, problem: str
) -> None:
    user_repo.write("runs.d/shop.yaml", text)
    validate = user_repo.cli("validate")
    assert (validate.code, validate.out_lines) == (1, [problem])
    plan = user_repo.cli("plan")
    assert (plan.code, plan.out, plan.err_lines) == (1, "", [context(), problem])
    apply = user_repo.cli("apply", "--yes", *remote(emulator))
    assert (apply.code, apply.err_lines) == (1, [context(WS), problem])
    assert emulator.received == []


def test_a_moved_entry_whose_from_is_not_in_the_state_is_a_no_op(user_repo: Repo) -> None:
    user_repo.write("runs.d/shop.yaml", MOVED)
    result = user_repo.cli("plan", "--json")
    assert result.code == 0
    document = result.json()
    assert document["moves"] == []
    assert [(r["key"], r["reason"], r["moved_from"]) for r in document["runs"]] == [("shop/daily-us", "new", None)]


# -- markdown limits, documents of a failed validation ------------------------------------------------


def many_runs(repo: Repo, count: int, padding: int) -> None:
    """`count` runs from one matrix; each request carries `padding` characters, so details weigh."""
    repo.write(
        "runs.d/many.yaml",
        f"""\
        runs:
          - name: "r-{{{{ matrix.n }}}}"
            project: bulk
            matrix: {{n: {json.dumps(list(range(count)))}}}
            request: {{api: x, parameters: {{n: "{{{{ matrix.n }}}}", pad: "{"p" * padding}"}}}}
        """,
    )


def test_a_markdown_plan_of_10000_runs_lists_200_cuts_details_and_stays_under_the_limit(repo: Repo) -> None:
    many_runs(repo, 10_000, 200)
    result = repo.cli("plan", "--format", "markdown")
    assert result.code == 0
    text = result.out.rstrip("\n")
    assert len(text) < 65_000
    lines = text.splitlines()
    listed = [line for line in lines if line.startswith("- <code>+ bulk/r-")]
    assert listed[:2] == [
        "- <code>+ bulk/r-0</code> submit / new — <code>runs.d/many.yaml:2</code>",
        "- <code>+ bulk/r-1</code> submit / new — <code>runs.d/many.yaml:2</code>",
    ]
    assert len(listed) == 200
    assert "<details>" not in text
    assert lines[-3:] == [
        "… and 9800 more runs to act on: `intuned-runs plan` lists them all.",
        "",
        "Per-run details were cut to keep this comment under 65,000 characters.",
    ]


def test_a_markdown_plan_of_more_than_200_small_runs_keeps_the_details_of_the_first_200(repo: Repo) -> None:
    many_runs(repo, 250, 0)
    result = repo.cli("plan", "--format", "markdown")
    lines = result.out_lines
    assert len(result.out) < 65_000
    assert sum(1 for line in lines if line.startswith("<details>")) == 200
    assert len(diff_blocks(lines)) == 200
    assert lines[-1] == "… and 50 more runs to act on: `intuned-runs plan` lists them all."


BROKEN = "runs:\n  - {name: a, project: shop, request: {parameters: {}}}\n"
PROBLEM = {
    "file": "runs.d/shop.yaml",
    "line": 2,
    "col": 39,
    "severity": "error",
    "path": "request.api",
    "message": "request is missing required 'api'",
}


def test_when_validation_fails_json_still_prints_a_document_with_the_problems_and_no_runs(repo: Repo) -> None:
    repo.write("runs.d/shop.yaml", BROKEN)
    result = repo.cli("plan", "--json")
    assert result.code == 1
    assert result.json() == {
        "format_version": 1,
        "context": {"env": None, "workspace_id": None, "state": ".intuned-runs/state.json"},
        "summary": None,
        "moves": [],
        "problems": [PROBLEM],
        "runs": [],
    }
    assert result.err_lines == [
        context(),
        "runs.d/shop.yaml:2:39: error: request.api: request is missing required 'api'",
    ]


def test_when_validation_fails_markdown_shows_a_problems_table(repo: Repo) -> None:
    repo.write("runs.d/shop.yaml", BROKEN)
    result = repo.cli("plan", "--format", "markdown")
    assert result.code == 1
    assert result.out_lines == [
        "### intuned-runs plan: env (none), workspace (not set), state `.intuned-runs/state.json`",
        "",
        "Validation failed with 1 error: nothing was planned.",
        "",
        "#### Problems",
        "",
        "| where | severity | path | message |",
        "|---|---|---|---|",
        "| `runs.d/shop.yaml:2:39` | error | request.api | request is missing required 'api' |",
    ]


def test_a_broken_config_still_gives_a_document(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "runs_dri: runs.d\n")
    result = repo.cli("plan", "--json")
    assert result.code == 1
    document = result.json()
    assert (document["runs"], document["summary"]) == ([], None)
    assert [(p["file"], p["line"], p["path"]) for p in document["problems"]] == [("intuned-runs.yaml", 1, "runs_dri")]
