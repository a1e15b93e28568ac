"""Selection end to end (docs/plan.md, Selection): `--exclude`, `label:KEY!=VALUE`, selectors that match
nothing suggest the closest key, and only the planned runs' requests are rendered and validated."""

from __future__ import annotations

import pytest

from intuned_runs.emulator.server import Emulator
from tests.helpers import BODY_DAILY_US, BODY_ORDERS, WS, Repo, bodies, context, remote, sort_bodies

# The standard repository (tests/helpers.py): shop/daily-us, shop/hourly (always), shop/backfill (manual),
# all labelled team=pricing, and portal/orders (team=ops).


def test_exclude_removes_its_matches_after_select_and_run(user_repo: Repo) -> None:
    user_repo.standard()
    result = user_repo.cli("plan", "--exclude", "hourly", "--exclude", "label:team=ops")
    assert (result.code, result.out_lines) == (
        0,
        [
            "+ shop/daily-us  new  runs.d/shop.yaml:5",
            "",
            "Plan: 1 to submit (1 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 manual, 0 to forget, "
            "0 blocked.",
        ],
    )
    forced = user_repo.cli("plan", "--run", "shop/*", "--exclude", "shop/backfill")
    assert forced.out_lines == [
        "+ shop/daily-us  new  runs.d/shop.yaml:5",
        "+ shop/hourly  new  runs.d/shop.yaml:9",
        "",
        "Plan: 2 to submit (2 new, 0 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]


def test_a_label_not_equal_selector_matches_runs_whose_label_differs_or_is_absent(user_repo: Repo) -> None:
    user_repo.standard()
    user_repo.write("runs.d/misc.yaml", "runs:\n  - {name: bare, project: misc, request: {api: x, parameters: {}}}\n")
    result = user_repo.cli("plan", "--select", "label:team!=pricing", "--json")
    assert result.code == 0
    assert [run["key"] for run in result.json()["runs"]] == ["misc/bare", "portal/orders"]


def test_apply_with_exclude_sends_only_the_planned_runs(user_repo: Repo, emulator: Emulator) -> None:
    user_repo.standard()
    result = user_repo.cli("apply", "--yes", "--exclude", "hourly", *remote(emulator))
    assert result.code == 0, result.err
    assert sort_bodies(bodies(emulator)) == sort_bodies([("portal", BODY_ORDERS), ("shop", BODY_DAILY_US)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--select", "shop/daly-us"],
            "--select 'shop/daly-us' matches no run or state entry: did you mean 'shop/daily-us'?",
        ),
        (["--run", "ordres"], "--run 'ordres' matches no run or state entry: did you mean 'portal/orders'?"),
        (["--exclude", "hourli"], "--exclude 'hourli' matches no run or state entry: did you mean 'shop/hourly'?"),
        (
            ["--select", "label:team=opps"],
            "--select 'label:team=opps' matches no run or state entry: did you mean 'label:team=ops'?",
        ),
        (
            ["--select", "zzz/qqq"],
            "--select 'zzz/qqq' matches no run or state entry: check the key (PROJECT/NAME) or label",
        ),
    ],
)
def test_a_selector_matching_nothing_suggests_the_closest_key(
    user_repo: Repo, emulator: Emulator, argv: list[str], message: str
) -> None:
    user_repo.standard()
    for command in (["plan", *argv], ["apply", "--yes", *argv, *remote(emulator)]):
        result = user_repo.cli(*command)
        assert (result.code, result.out) == (1, ""), command
        assert result.err_lines[-1] == f"error: {message}", command
    assert emulator.received == []


BROKEN_ELSEWHERE = """\
runs:
  - name: needs-env
    project: other
    labels: {team: other}
    request:
      api: "{{ env.ONLY_OTHER_NEEDS }}"
      parameters: {}
  - name: bad-schema
    project: other
    request: {api: x, parameters: {}, saveTrace: 1}
"""


@pytest.fixture
def broken_elsewhere(user_repo: Repo) -> Repo:
    """The standard repository plus runs whose requests cannot be rendered or are invalid."""
    user_repo.standard()
    user_repo.write("intuned-runs.yaml", "env_allow: [ONLY_*]\n")
    user_repo.write("runs.d/other.yaml", BROKEN_ELSEWHERE)
    return user_repo


def test_a_broken_request_outside_the_selection_does_not_stop_plan_or_apply(
    broken_elsewhere: Repo, emulator: Emulator
) -> None:
    planned = broken_elsewhere.cli("plan", "--select", "shop/daily-us")
    assert (planned.code, planned.err_lines) == (0, [context()])
    assert planned.out_lines == [
        "+ shop/daily-us  new  runs.d/shop.yaml:5",
        "",
        "Plan: 1 to submit (1 new, 0 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]
    applied = broken_elsewhere.cli("apply", "--yes", "--select", "label:team=pricing", *remote(emulator))
    assert applied.code == 0, applied.err
    assert [project for project, _ in bodies(emulator)] == ["shop", "shop"]
    # the other runs are still defined: neither forgotten nor planned
    assert broken_elsewhere.cli("plan", "--exclude", "other/*").code == 0


def test_validate_and_an_unselected_plan_still_report_every_run(broken_elsewhere: Repo) -> None:
    validate = broken_elsewhere.cli("validate")
    assert validate.code == 1
    [unset, invalid] = validate.out_lines
    # (the wording of an unset variable is templating's: docs/templating.md)
    assert unset.startswith("runs.d/other.yaml:6:12: error: request.api: ") and "ONLY_OTHER_NEEDS" in unset
    assert invalid == "runs.d/other.yaml:10:50: error: request.saveTrace: must be a boolean (true/false) (got integer)"
    plan = broken_elsewhere.cli("plan")
    assert (plan.code, plan.out) == (1, "")
    assert plan.err_lines == [context(), unset, invalid]
    selected = broken_elsewhere.cli("plan", "--select", "other/needs-env")
    assert (selected.code, selected.err_lines) == (1, [context(), unset])


def test_names_and_labels_of_every_run_are_still_rendered(broken_elsewhere: Repo) -> None:
    broken_elsewhere.write(
        "runs.d/other.yaml", "runs:\n  - {name: '{{ vars.nope }}', project: other, request: {api: x, parameters: {}}}\n"
    )
    result = broken_elsewhere.cli("plan", "--select", "shop/daily-us")
    assert result.code == 1
    assert result.err_lines == [
        context(),
        "runs.d/other.yaml:2:12: error: name: undefined: 'dict object' has no attribute 'nope'",
    ]


def test_a_saved_plan_of_a_selection_applies_with_the_unselected_request_still_broken(
    broken_elsewhere: Repo, emulator: Emulator
) -> None:
    plan_file = broken_elsewhere.root / "plan.json"
    planned = broken_elsewhere.cli("plan", "--select", "shop/*", "--out", str(plan_file), *remote(emulator))
    assert planned.code == 0, planned.err
    applied = broken_elsewhere.cli("apply", str(plan_file), *remote(emulator))
    assert applied.code == 0, applied.err
    assert applied.err_lines == [context(WS)]
    # the counts apply FILE prints are those of the saved plan's planned set (docs/plan.md, Saved plans)
    assert planned.out_lines[-1] in applied.out_lines
    assert planned.out_lines[-1] == (
        "Plan: 2 to submit (2 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 manual, 0 to forget, 0 blocked."
    )
