"""`intuned-runs plan` end to end (docs/plan.md): text, JSON, markdown, exit codes, blocked runs; saved plans
(`plan --out FILE`, `apply FILE`) against the emulator on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from intuned_runs import schema as schema_module
from intuned_runs.emulator.server import Emulator
from intuned_runs.fingerprint import fingerprint
from tests.helpers import (
    BODY_DAILY_US,
    BODY_HOURLY,
    BODY_ORDERS,
    OTHER_WS,
    SECRETS,
    WS,
    Repo,
    bodies,
    remote,
    sort_bodies,
)

SCHEMA = schema_module.load()
REFUND = """\
  - name: refund
    project: portal
    request: {api: refunds/process, parameters: {batch: 1}}
"""
ORDERS = """\
  - name: orders
    project: portal
    request:
      api: orders/sync
      parameters: {since: "2026-01-01"}
      proxy: "{{ secret('PROXY_URL') }}"
"""
INVOICES = """\
  - name: invoices
    project: portal
    request: {api: invoices/download, parameters: {month: "2026-10"}}
"""


@pytest.fixture
def user_repo(user_repo: Repo, state_backend: Callable[[Repo], Repo]) -> Repo:
    """Every test here runs against each backend (tests/state_backends.py)."""
    return state_backend(user_repo)


@pytest.fixture
def flaky() -> Iterator[Emulator]:
    """An emulator whose first start request fails with a 500 (outcome unknown)."""
    with Emulator(complete_after=0, script=[500]) as emu:
        yield emu


@pytest.fixture
def mixed(user_repo: Repo, flaky: Emulator) -> Repo:
    """A repository whose plan holds every kind of line: blocked, new, forget, changed, always, manual."""
    user_repo.standard()
    user_repo.write("runs.d/ops.yaml", "runs:\n" + REFUND)
    assert user_repo.cli("apply", "--yes", "--select", "refund", *remote(flaky)).code == 1  # the 500: unknown
    user_repo.write("runs.d/ops.yaml", "runs:\n" + REFUND + ORDERS)
    assert user_repo.cli("apply", "--yes", *remote(flaky)).code == 1  # the rest; refund stays blocked
    assert sort_bodies(bodies(flaky, 201)) == sort_bodies(
        [("portal", BODY_ORDERS), ("shop", BODY_DAILY_US), ("shop", BODY_HOURLY)]
    )
    user_repo.write("runs.d/ops.yaml", "runs:\n" + REFUND + INVOICES)  # orders removed, invoices added
    user_repo.edit("runs.d/shop.yaml", "region: us", "region: eu")
    return user_repo


MIXED_LINES = [
    "+ portal/invoices  new  runs.d/ops.yaml:5",
    "- portal/orders  removed",
    "? portal/refund  unknown  runs.d/ops.yaml:2",
    "~ shop/daily-us  changed  runs.d/shop.yaml:5",
    '    request.parameters.region: "us" → "eu"',
    "* shop/hourly  always  runs.d/shop.yaml:9",
    "",
    "Plan: 3 to submit (1 new, 1 changed, 0 requested, 1 always), 0 unchanged, 1 manual, 1 to forget, 1 blocked.",
]


def blocked_line(repo: Repo, key: str) -> str:
    unknown = repo.state()["entries"][key]["unknown"]
    return (
        f"blocked: {key}: outcome unknown since {unknown['since']} ({unknown['reason']}); check it in Intuned, "
        f"then 'intuned-runs state resolve {key} --submitted|--not-submitted', or plan with --retry-unknown or --run"
    )


def test_text_lists_runs_that_are_not_unchanged_sorted_then_the_summary(mixed: Repo) -> None:
    result = mixed.cli("plan")
    assert result.code == 0
    assert result.out_lines == MIXED_LINES
    assert result.err_lines == [mixed.context(), blocked_line(mixed, "portal/refund")]
    assert (
        mixed.state()["entries"]["portal/refund"]["unknown"]["reason"] == "500: Internal Server Error (injected fault)"
    )


def test_verbose_also_lists_unchanged_runs(mixed: Repo) -> None:
    result = mixed.cli("plan", "-v")
    assert result.out_lines == [*MIXED_LINES[:3], "  shop/backfill  manual  runs.d/shop.yaml:18", *MIXED_LINES[3:]]


def test_detailed_exitcode_is_2_when_something_would_be_submitted(mixed: Repo) -> None:
    result = mixed.cli("plan", "--detailed-exitcode")
    assert (result.code, result.out_lines) == (2, MIXED_LINES)


def test_json_lists_every_planned_run_with_a_redacted_request(mixed: Repo) -> None:
    result = mixed.cli("plan", "--json")
    assert result.code == 0
    document = result.json()
    assert list(document) == ["format_version", "context", "summary", "moves", "problems", "runs"]
    assert document["format_version"] == 1
    assert document["context"] == {"env": None, "workspace_id": None, "state": mixed.store.display}
    assert (document["moves"], document["problems"]) == ([], [])
    assert document["summary"] == {
        "submit": 3,
        "new": 1,
        "changed": 1,
        "requested": 0,
        "always": 1,
        "unchanged": 0,
        "manual": 1,
        "forget": 1,
        "blocked": 1,
    }
    runs = {r["key"]: r for r in document["runs"]}
    assert list(runs) == [
        "portal/invoices",
        "portal/orders",
        "portal/refund",
        "shop/backfill",
        "shop/daily-us",
        "shop/hourly",
    ]
    for run in document["runs"]:
        assert list(run) == [
            "key",
            "project",
            "name",
            "action",
            "reason",
            "moved_from",
            "source",
            "fingerprint",
            "changes",
            "request",
        ]
        assert run["moved_from"] is None
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", run["fingerprint"])
    assert [(r["action"], r["reason"]) for r in document["runs"]] == [
        ("submit", "new"),
        ("forget", "removed"),
        ("blocked", "unknown"),
        ("unchanged", "manual"),
        ("submit", "changed"),
        ("submit", "always"),
    ]
    daily = runs["shop/daily-us"]
    assert daily["project"] == "shop" and daily["name"] == "daily-us"
    assert daily["source"] == {"file": "runs.d/shop.yaml", "line": 5}
    assert daily["changes"] == [{"path": "request.parameters.region", "before": "us", "after": "eu"}]
    assert daily["request"] == {"api": "products/list", "parameters": {"region": "eu", "limit": 100}}
    assert daily["fingerprint"] == fingerprint("shop", "daily-us", daily["request"], SCHEMA)
    orders = runs["portal/orders"]
    assert orders["source"] is None
    assert orders["request"]["proxy"] == "(secret:PROXY_URL)"  # as stored: redacted
    assert runs["shop/hourly"]["request"]["sink"]["headers"] == {"Authorization": "Bearer (secret:HOOK_TOKEN)"}
    assert runs["shop/hourly"]["changes"] == []
    assert "retry" not in daily["request"]  # as written: no defaults filled in
    assert result.err_lines == [mixed.context(), blocked_line(mixed, "portal/refund")]


def test_format_json_is_the_same_as_json(mixed: Repo) -> None:
    assert mixed.cli("plan", "--format", "json").out == mixed.cli("plan", "--json").out


def diff_blocks(lines: list[str]) -> list[list[str]]:
    """The lines of every ```diff block of a markdown document."""
    blocks, current = [], None
    for line in lines:
        if current is None and line == "```diff":
            current = []
        elif current is not None and line == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_markdown_has_a_heading_a_summary_table_and_a_diff_per_run(mixed: Repo) -> None:
    result = mixed.cli("plan", "--format", "markdown")
    assert result.code == 0
    lines = result.out_lines
    assert lines[:7] == [
        f"### intuned-runs plan: env (none), workspace (not set), state `{mixed.store.display}`",
        "",
        MIXED_LINES[-1],
        "",
        "| submit | new | changed | requested | always | unchanged | manual | forget | blocked |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| 3 | 1 | 1 | 0 | 1 | 0 | 1 | 1 | 1 |",
    ]
    summaries = [line for line in lines if line.startswith("<details>")]
    assert summaries == [
        "<details><summary><code>+ portal/invoices</code> submit / new — <code>runs.d/ops.yaml:5</code></summary>",
        "<details><summary><code>- portal/orders</code> forget / removed</summary>",
        "<details><summary><code>? portal/refund</code> blocked / unknown — <code>runs.d/ops.yaml:2</code></summary>",
        "<details><summary><code>~ shop/daily-us</code> submit / changed — <code>runs.d/shop.yaml:5</code></summary>",
        "<details><summary><code>* shop/hourly</code> submit / always — <code>runs.d/shop.yaml:9</code></summary>",
    ]
    daily = lines.index(summaries[3])
    assert lines[daily + 1 : daily + 7] == [
        "",
        "```diff",
        '- request.parameters.region: "us"',
        '+ request.parameters.region: "eu"',
        "```",
        "",
    ]
    blocks = diff_blocks(lines)
    assert len(blocks) == 3  # new, removed, changed
    assert blocks[0][:2] == ["+ {", '+   "api": "invoices/download",']
    assert blocks[1][-2:] == ['-   "proxy": "(secret:PROXY_URL)"', "- }"]
    assert all(line[:2] in ("- ", "+ ") for block in blocks for line in block)
    assert lines.count("</details>") == 5
    assert not any("shop/backfill" in line for line in lines)
    assert not any(value in result.out for value in SECRETS.values())


def test_markdown_and_json_show_renames(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write(
        "runs.d/shop.yaml", "runs:\n  - {name: us-daily, project: shop, request: {api: x, parameters: {}}}\n"
    )
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    user_repo.write(
        "runs.d/shop.yaml",
        "moved:\n  - {from: shop/us-daily, to: shop/daily-us}\n"
        "runs:\n  - {name: daily-us, project: shop, request: {api: x, parameters: {}}}\n",
    )
    text = user_repo.cli("plan")
    assert text.out_lines == [
        "  shop/daily-us  up-to-date  runs.d/shop.yaml:4  → moved from shop/us-daily",
        "",
        "No changes. 1 run up to date.",
    ]
    document = user_repo.cli("plan", "--json").json()
    assert document["moves"] == [{"from": "shop/us-daily", "to": "shop/daily-us"}]
    assert [(r["key"], r["action"], r["moved_from"]) for r in document["runs"]] == [
        ("shop/daily-us", "unchanged", "shop/us-daily")
    ]
    markdown = user_repo.cli("plan", "--format", "markdown").out_lines
    renames = markdown.index("#### Renames")
    assert markdown[renames : renames + 5] == [
        "#### Renames",
        "",
        "| from | to |",
        "|---|---|",
        "| `shop/us-daily` | `shop/daily-us` |",
    ]
    assert (
        "- <code>  shop/daily-us</code> unchanged / up-to-date — <code>runs.d/shop.yaml:4</code> — moved from "
        "<code>shop/us-daily</code>"
    ) in markdown


def test_no_changes_is_one_line_and_exit_0(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", "runs:\n  - {name: a, project: shop, request: {api: x, parameters: {}}}\n")
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    for argv in (["plan"], ["plan", "--detailed-exitcode"]):
        result = user_repo.cli(*argv)
        assert (result.code, result.out_lines, result.err_lines) == (
            0,
            ["No changes. 1 run up to date."],
            [user_repo.context()],
        )


def test_a_forget_alone_is_a_change_for_detailed_exitcode(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write("runs.d/shop.yaml", "runs:\n  - {name: a, project: shop, request: {api: x, parameters: {}}}\n")
    assert user_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    user_repo.write("runs.d/shop.yaml", "")
    result = user_repo.cli("plan", "--detailed-exitcode")
    assert result.code == 2
    assert result.out_lines == [
        "- shop/a  removed",
        "",
        "Plan: 0 to submit (0 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 to forget, 0 blocked.",
    ]


def test_blocked_alone_is_not_a_change_for_detailed_exitcode(mixed: Repo) -> None:
    result = mixed.cli("plan", "--select", "refund", "--detailed-exitcode")
    assert result.code == 0
    assert result.out_lines == [
        "? portal/refund  unknown  runs.d/ops.yaml:2",
        "",
        "Plan: 0 to submit (0 new, 0 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 1 blocked.",
    ]
    assert result.err_lines == [mixed.context(), blocked_line(mixed, "portal/refund")]


@pytest.mark.parametrize(
    ("files", "argv", "message"),
    [
        (
            {"runs.d/bad.yaml": "runs:\n  - {name: a, project: shop, request: {parameters: {}}}\n"},
            [],
            "runs.d/bad.yaml:2:39: error: request.api: request is missing required 'api'",
        ),
        (
            {"runs.d/ok.yaml": "runs:\n  - {name: a, project: shop, request: {api: x, parameters: {}}}\n"},
            ["--select", "nothing-*"],
            "error: --select 'nothing-*' matches no run or state entry: check the key (PROJECT/NAME) or label",
        ),
        (
            {"runs.d/ok.yaml": "runs:\n  - {name: daily-us, project: shop, request: {api: x, parameters: {}}}\n"},
            ["--select", "shop/daily-su"],
            "error: --select 'shop/daily-su' matches no run or state entry: did you mean 'shop/daily-us'?",
        ),
        (
            {"runs.d/ok.yaml": "runs:\n  - {name: a, project: shop, request: {api: x, parameters: {}}}\n"},
            ["--no-such-flag"],
            "error: unrecognized option --no-such-flag (see intuned-runs plan --help)",
        ),
        (
            {"runs.d/ok.yaml": "runs:\n  - {name: a, project: shop, request: {api: x, parameters: {}}}\n"},
            ["--detailed-exitcodes"],
            "error: unrecognized option --detailed-exitcodes: did you mean --detailed-exitcode?",
        ),
    ],
    ids=["validation-error", "selector-matching-nothing", "selector-one-letter-off", "usage-error", "option-typo"],
)
def test_detailed_exitcode_is_1_on_error(user_repo: Repo, files: dict[str, str], argv: list[str], message: str) -> None:
    for relative, text in files.items():
        user_repo.write(relative, text)
    result = user_repo.cli("plan", "--detailed-exitcode", *argv)
    assert result.code == 1
    assert result.out == ""
    assert message in result.err_lines


def test_run_alone_plans_only_the_forced_runs(user_repo: Repo) -> None:
    user_repo.standard()
    result = user_repo.cli("plan", "--run", "backfill")
    assert result.out_lines == [
        "! shop/backfill  requested  runs.d/shop.yaml:18",
        "",
        "Plan: 1 to submit (0 new, 0 changed, 1 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]


def test_label_selection(user_repo: Repo) -> None:
    user_repo.standard()
    result = user_repo.cli("plan", "--select", "label:team=ops", "-v")
    assert result.out_lines == [
        "+ portal/orders  new  runs.d/ops.yaml:2",
        "",
        "Plan: 1 to submit (1 new, 0 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]


def test_plan_needs_no_secret_no_key_and_no_workspace(user_repo: Repo, env: pytest.MonkeyPatch) -> None:
    user_repo.standard()
    for name in ("INTUNED_API_KEY", *SECRETS):
        env.delenv(name)
    result = user_repo.cli("plan")
    assert result.code == 0
    assert result.out_lines[-1] == (
        "Plan: 3 to submit (3 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 manual, 0 to forget, 0 blocked."
    )


# -- saved plans -------------------------------------------------------------------------------------


def test_saved_plan_holds_the_plan_and_its_inputs_but_no_secret(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", "--select", "daily-us", *remote(emulator)).code == 0
    plan_file = user_repo.root / "plan.json"
    result = user_repo.cli("plan", "--out", str(plan_file), "--var", "region=eu", *remote(emulator))
    assert result.code == 0
    assert result.err_lines == [
        user_repo.context(WS),
        f"Saved the plan to {plan_file}: apply it with 'intuned-runs apply {plan_file}'.",
    ]
    text = plan_file.read_text(encoding="utf-8")
    saved = json.loads(text)
    state = user_repo.state()
    assert saved["format_version"] == 1
    assert saved["tool_version"] == "0.1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", saved["created_at"])
    assert saved["env"] is None
    assert saved["vars"] == ["region=eu"]
    assert saved["workspace_id"] == WS
    assert saved["state_path"] == user_repo.store.display
    assert (saved["lineage"], saved["serial"]) == (state["lineage"], state["serial"])
    assert saved["schema_version"] == "0.0.2"
    assert saved["summary"]["submit"] == 2
    assert [(r["key"], r["action"]) for r in saved["runs"]] == [
        ("portal/orders", "submit"),
        ("shop/backfill", "unchanged"),
        ("shop/daily-us", "unchanged"),
        ("shop/hourly", "submit"),
    ]
    for value in SECRETS.values():
        assert value not in text
    assert "(secret:PROXY_URL)" in text and "(secret:HOOK_TOKEN)" in text


def _save(repo: Repo, emu: Emulator, *argv: str) -> Path:
    plan_file = repo.root / "plan.json"
    assert repo.cli("plan", "--out", str(plan_file), *argv, *remote(emu)).code == 0
    return plan_file


def test_apply_of_a_saved_plan_submits_exactly_its_runs_without_prompting(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    plan_file = _save(user_repo, emulator, "--select", "shop/*")
    user_repo.edit("runs.d/ops.yaml", "2026-01-01", "2026-02-01")  # not in the plan: not submitted
    result = user_repo.cli("apply", str(plan_file), *remote(emulator))  # no --yes, no TTY
    assert result.code == 0, result.err
    assert sort_bodies(bodies(emulator)) == sort_bodies([("shop", BODY_DAILY_US), ("shop", BODY_HOURLY)])
    assert sorted(line.split("  ")[0] for line in result.out_lines if line.startswith("✓")) == [
        "✓ shop/daily-us",
        "✓ shop/hourly",
    ]
    assert result.out_lines[-1] == "Apply: 2 submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked."
    assert sorted(user_repo.state()["entries"]) == ["shop/daily-us", "shop/hourly"]


def test_a_saved_plan_is_applied_with_its_own_vars(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.write(
        "runs.d/shop.yaml",
        "runs:\n  - {name: a, project: shop, request: {api: x, parameters: {region: '{{ vars.region }}'}}}\n",
    )
    user_repo.write("intuned-runs.yaml", "vars: {region: us}\n")
    plan_file = _save(user_repo, emulator, "--var", "region=eu")
    result = user_repo.cli("apply", str(plan_file), *remote(emulator))
    assert result.code == 0, result.err
    assert bodies(emulator) == [("shop", {"api": "x", "parameters": {"region": "eu"}})]


def test_a_saved_plan_is_stale_after_another_apply(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    assert user_repo.cli("apply", "--yes", "--select", "daily-us", *remote(emulator)).code == 0
    plan_file = _save(user_repo, emulator)
    assert user_repo.cli("apply", "--yes", "--select", "orders", *remote(emulator)).code == 0
    sent = len(emulator.received)
    result = user_repo.cli("apply", str(plan_file), *remote(emulator))
    assert result.code == 1
    assert result.err_lines == [
        user_repo.context(WS),
        "error: Saved plan is stale: the state changed since the plan (serial 1 → 2): plan again",
    ]
    assert result.out == ""
    assert len(emulator.received) == sent


def test_a_saved_plan_is_stale_when_a_planned_run_was_edited(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    plan_file = _save(user_repo, emulator)
    user_repo.edit("runs.d/shop.yaml", "limit: 100", "limit: 200")
    result = user_repo.cli("apply", str(plan_file), *remote(emulator))
    assert result.code == 1
    assert result.err_lines == [
        user_repo.context(WS),
        "error: Saved plan is stale: run shop/daily-us changed since the plan: plan again",
    ]
    assert emulator.received == []
    assert user_repo.store.read() is None or user_repo.state()["entries"] == {}


def test_a_saved_plan_is_stale_in_another_workspace(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    plan_file = _save(user_repo, emulator)
    result = user_repo.cli("apply", str(plan_file), *remote(emulator, OTHER_WS))
    assert result.code == 1
    assert result.err_lines == [
        user_repo.context(OTHER_WS),
        f"error: Saved plan is stale: the workspace is {OTHER_WS}, the plan was made for {WS}",
    ]
    assert emulator.received == []


def test_a_saved_plan_made_before_the_first_apply_can_be_applied(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    plan_file = _save(user_repo, emulator)
    result = user_repo.cli("apply", str(plan_file), *remote(emulator))
    assert result.code == 0, result.err
    assert sort_bodies(bodies(emulator)) == sort_bodies(
        [("shop", BODY_DAILY_US), ("shop", BODY_HOURLY), ("portal", BODY_ORDERS)]
    )
    again = user_repo.cli("apply", str(plan_file), *remote(emulator))
    assert again.code == 1
    assert again.err_lines == [
        user_repo.context(WS),
        "error: Saved plan is stale: the state changed since the plan (serial 0 → 1): plan again",
    ]
    assert len(emulator.received) == 3


@pytest.mark.parametrize(
    "option",
    [["--select", "daily-us"], ["--run", "daily-us"], ["--exclude", "daily-us"], ["--retry-unknown"]],
    ids=["select", "run", "exclude", "retry-unknown"],
)
def test_apply_of_a_saved_plan_takes_no_planning_options(
    user_repo: Repo, emulator: Emulator, option: list[str]
) -> None:
    user_repo.standard()
    plan_file = _save(user_repo, emulator)
    result = user_repo.cli("apply", str(plan_file), *option, *remote(emulator))
    assert result.code == 1
    assert result.err_lines == [
        "error: apply PLANFILE takes no planning options (--select, --run, --exclude, --retry-unknown)"
    ]
    assert emulator.received == []


def test_max_submit_guards_a_saved_plan_too(user_repo: Repo, emulator: Emulator) -> None:
    """docs/apply.md: without a TTY, a plan submitting more than max_submit runs is refused, saved or not, so
    CI's `plan --out` + `apply FILE` cannot resubmit a whole repository after a lost state."""
    user_repo.standard()
    plan_file = _save(user_repo, emulator)
    refused = user_repo.cli("apply", str(plan_file), "--max-submit", "1", *remote(emulator))
    assert refused.code == 1
    assert refused.err_lines[-1].startswith("error: the plan submits ")
    assert emulator.received == []
    allowed = user_repo.cli("apply", str(plan_file), "--max-submit", "100", *remote(emulator))
    assert allowed.code == 0


def test_apply_of_a_file_that_is_not_a_plan(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    other = user_repo.write("other.json", '{"format_version": 1}')
    result = user_repo.cli("apply", str(other), *remote(emulator))
    assert result.code == 1
    assert result.err_lines == [
        f"error: {other} is not a saved plan of intuned-runs (write one with 'intuned-runs plan --out FILE')"
    ]
    assert emulator.received == []
