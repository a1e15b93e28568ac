"""The pure plan (docs/plan.md): `make_plan` of desired runs and a state, as tables — every rule, every reason.

Runs and state entries are built directly; fingerprints are the real ones (packaged schema), so a
case reads as "this definition against that stored definition".
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from intuned_runs import schema as schema_module
from intuned_runs.errors import UsageError
from intuned_runs.fingerprint import changes, fingerprint
from intuned_runs.plan import Plan, make_plan
from intuned_runs.runs import Move, Run, Source
from intuned_runs.selection import Selection
from intuned_runs.state.model import Entry, State, Unknown

SCHEMA = schema_module.load()
US = {"api": "products/list", "parameters": {"region": "us"}}
EU = {"api": "products/list", "parameters": {"region": "eu"}}


def fp(key: str, request: dict[str, Any]) -> str:
    project, _, name = key.partition("/")
    return fingerprint(project, name, request, SCHEMA)


def run(
    key: str,
    request: dict[str, Any] = US,
    *,
    trigger: str = "on-change",
    labels: dict[str, str] | None = None,
    line: int = 1,
) -> Run:
    """A desired run as the loader makes it (fields the Run of this version has, filled in)."""
    project, _, name = key.partition("/")
    values: dict[str, Any] = {
        "key": key,
        "project": project,
        "name": name,
        "labels": labels or {},
        "trigger": trigger,
        "source": Source("runs.d/runs.yaml", line),
        "request": request,
        "secrets": frozenset(),
        "fingerprint": fp(key, request),
        "raw_request": request,
        "context": {},
    }
    names = {f.name for f in msgspec.structs.fields(Run)}
    return Run(**{k: v for k, v in values.items() if k in names})


def entry(
    key: str,
    request: dict[str, Any] = US,
    *,
    unknown: bool = False,
    removed: bool = False,
    hashed_as: str | None = None,
) -> Entry:
    """A state entry for `key`; `hashed_as` = the key its fingerprint was computed under (a moved entry)."""
    return Entry(
        fingerprint=fp(hashed_as or key, request),
        request=request,
        run_id=None if unknown else "ru_1",
        submitted_at="2026-11-01T10:00:00Z",
        unknown=Unknown("2026-11-01T10:00:00Z", "read timeout") if unknown else None,
        removed_at="2026-11-02T10:00:00Z" if removed else None,
    )


def state(**entries: Entry) -> State:
    """`state(**{"shop/a": entry(...)})`."""
    return State(
        lineage="l-1",
        serial=4,
        workspace_id=None,
        fingerprint_version=1,
        schema_version="0.0.2",
        entries=entries,
    )


def plan(
    runs: list[Run],
    current: State,
    *,
    select: tuple[str, ...] = (),
    force: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    retry_unknown: bool = False,
    moves: tuple[Move, ...] = (),
    others: tuple[tuple[str, dict[str, str]], ...] = (),
) -> Plan:
    return make_plan(
        runs,
        current,
        lambda project, name, request: fingerprint(project, name, request, SCHEMA),
        moves=moves,
        selection=Selection.of(select, force, exclude),
        others=others,
        retry_unknown=retry_unknown,
        changes=lambda before, after: changes(before, after, SCHEMA),
    )


def rows(result: Plan) -> list[tuple[str, str, str, str]]:
    return [(r.symbol, r.key, r.action, r.reason) for r in result.runs]


A = "shop/a"

# (id, desired run, state entries, options, expected (symbol, action, reason) of shop/a)
RULES = [
    # rule 1: an unknown outcome blocks, whatever the trigger or edits
    ("unknown-blocked", run(A), {A: entry(A, unknown=True)}, {}, ("?", "blocked", "unknown")),
    ("unknown-edited-still-blocked", run(A, EU), {A: entry(A, unknown=True)}, {}, ("?", "blocked", "unknown")),
    (
        "unknown-always-still-blocked",
        run(A, trigger="always"),
        {A: entry(A, unknown=True)},
        {},
        ("?", "blocked", "unknown"),
    ),
    (
        "unknown-manual-still-blocked",
        run(A, trigger="manual"),
        {A: entry(A, unknown=True)},
        {},
        ("?", "blocked", "unknown"),
    ),
    (
        "unknown-with-run",
        run(A),
        {A: entry(A, unknown=True)},
        {"force": ("shop/a",)},
        ("!", "submit", "requested"),
    ),
    (
        "unknown-with-retry-unknown",
        run(A),
        {A: entry(A, unknown=True)},
        {"retry_unknown": True},
        ("!", "submit", "unknown"),
    ),
    # rule 2: manual
    ("manual-unchanged", run(A, trigger="manual"), {}, {}, (" ", "unchanged", "manual")),
    ("manual-edited-unchanged", run(A, EU, trigger="manual"), {A: entry(A)}, {}, (" ", "unchanged", "manual")),
    ("manual-with-run", run(A, trigger="manual"), {}, {"force": ("a",)}, ("!", "submit", "requested")),
    # rule 3: new (no entry, or a tombstone of another definition)
    ("new", run(A), {}, {}, ("+", "submit", "new")),
    ("new-wins-over-run", run(A), {}, {"force": ("a",)}, ("+", "submit", "new")),
    ("new-wins-over-always", run(A, trigger="always"), {}, {}, ("+", "submit", "new")),
    ("tombstone-other-fingerprint", run(A, EU), {A: entry(A, US, removed=True)}, {}, ("+", "submit", "new")),
    ("tombstone-same-fingerprint", run(A), {A: entry(A, removed=True)}, {}, (" ", "unchanged", "up-to-date")),
    (
        "tombstone-same-fingerprint-always",
        run(A, trigger="always"),
        {A: entry(A, removed=True)},
        {},
        ("*", "submit", "always"),
    ),
    # rule 4: changed
    ("changed", run(A, EU), {A: entry(A, US)}, {}, ("~", "submit", "changed")),
    ("changed-wins-over-run", run(A, EU), {A: entry(A, US)}, {"force": ("a",)}, ("~", "submit", "changed")),
    ("changed-wins-over-always", run(A, EU, trigger="always"), {A: entry(A, US)}, {}, ("~", "submit", "changed")),
    # rule 5: requested
    ("requested", run(A), {A: entry(A)}, {"force": ("shop/a",)}, ("!", "submit", "requested")),
    ("requested-always", run(A, trigger="always"), {A: entry(A)}, {"force": ("a",)}, ("!", "submit", "requested")),
    # rule 6: always
    ("always", run(A, trigger="always"), {A: entry(A)}, {}, ("*", "submit", "always")),
    # rule 7: up to date
    ("up-to-date", run(A), {A: entry(A)}, {}, (" ", "unchanged", "up-to-date")),
    # writing out a default or reordering keys is not a change
    (
        "default-written-out",
        run(A, {"parameters": {"region": "us"}, "api": "products/list", "retry": {"maximumAttempts": 3}}),
        {A: entry(A)},
        {},
        (" ", "unchanged", "up-to-date"),
    ),
]


@pytest.mark.parametrize(
    ("desired", "entries", "options", "expected"),
    [case[1:] for case in RULES],
    ids=[case[0] for case in RULES],
)
def test_rule_table(
    desired: Run, entries: dict[str, Entry], options: dict[str, Any], expected: tuple[str, ...]
) -> None:
    result = plan([desired], state(**entries), **options)
    assert rows(result) == [(expected[0], A, expected[1], expected[2])]
    planned = result.runs[0]
    assert planned.fingerprint == desired.fingerprint
    assert planned.source == Source("runs.d/runs.yaml", 1)
    assert planned.request == desired.request


def test_changed_lists_field_level_changes_with_absent_sides_omitted() -> None:
    before = {"api": "products/list", "parameters": {"region": "us", "limit": 10}, "proxy": "http://p.example"}
    after = {"api": "products/list", "parameters": {"region": "eu", "page": 2}, "retry": {"maximumAttempts": 3}}
    result = plan([run(A, after)], state(**{A: entry(A, before)}))
    assert rows(result) == [("~", A, "submit", "changed")]
    assert list(result.runs[0].changes) == [
        {"path": "request.parameters.limit", "before": 10},
        {"path": "request.parameters.page", "after": 2},
        {"path": "request.parameters.region", "before": "us", "after": "eu"},
        {"path": "request.proxy", "before": "http://p.example"},
    ]


def test_changes_are_only_listed_for_changed_runs() -> None:
    result = plan([run("shop/a", EU), run("shop/b")], state(**{"shop/b": entry("shop/b")}))
    assert [list(r.changes) for r in result.runs] == [[], []]


def test_removed_runs_are_forgotten_and_tombstones_are_not_listed() -> None:
    current = state(
        **{
            "shop/a": entry("shop/a"),
            "shop/gone": entry("shop/gone", EU),
            "shop/old-tombstone": entry("shop/old-tombstone", removed=True),
        }
    )
    result = plan([run("shop/a")], current)
    assert rows(result) == [
        (" ", "shop/a", "unchanged", "up-to-date"),
        ("-", "shop/gone", "forget", "removed"),
    ]
    gone = result.runs[1]
    assert (gone.project, gone.name, gone.source) == ("shop", "gone", None)
    assert gone.fingerprint == fp("shop/gone", EU)
    assert gone.request == EU
    assert result.to_forget == [gone]
    assert result.has_changes


def test_a_removed_unknown_run_is_forgotten_not_blocked() -> None:
    result = plan([], state(**{"shop/gone": entry("shop/gone", unknown=True)}))
    assert rows(result) == [("-", "shop/gone", "forget", "removed")]


def test_runs_are_sorted_by_key_and_summary_counts_every_kind() -> None:
    current = state(
        **{
            "p/changed": entry("p/changed", US),
            "p/always": entry("p/always"),
            "p/forced": entry("p/forced"),
            "p/same": entry("p/same"),
            "p/unknown": entry("p/unknown", unknown=True),
            "p/retried": entry("p/retried", unknown=True),
            "p/removed": entry("p/removed"),
        }
    )
    desired = [
        run("p/zz-new"),
        run("p/changed", EU),
        run("p/always", trigger="always"),
        run("p/forced"),
        run("p/same"),
        run("p/manual", trigger="manual"),
        run("p/unknown"),
        run("p/retried"),
    ]
    result = plan(desired, current, select=("p/*",), force=("forced", "retried"))
    assert rows(result) == [
        ("*", "p/always", "submit", "always"),
        ("~", "p/changed", "submit", "changed"),
        ("!", "p/forced", "submit", "requested"),
        (" ", "p/manual", "unchanged", "manual"),
        ("-", "p/removed", "forget", "removed"),
        ("!", "p/retried", "submit", "requested"),
        (" ", "p/same", "unchanged", "up-to-date"),
        ("?", "p/unknown", "blocked", "unknown"),
        ("+", "p/zz-new", "submit", "new"),
    ]
    assert result.summary == {
        "submit": 5,
        "new": 1,
        "changed": 1,
        "requested": 2,
        "always": 1,
        "unchanged": 1,  # unrequested manual runs are counted apart (docs/plan.md, Text output)
        "manual": 1,
        "forget": 1,
        "blocked": 1,
    }
    assert [r.key for r in result.blocked] == ["p/unknown"]


def test_retry_unknown_counts_as_requested_so_the_kinds_add_up() -> None:
    result = plan([run(A)], state(**{A: entry(A, unknown=True)}), retry_unknown=True)
    summary = result.summary
    assert summary["submit"] == 1
    assert summary["new"] + summary["changed"] + summary["requested"] + summary["always"] == summary["submit"]


def test_nothing_to_do_has_no_changes() -> None:
    result = plan([run(A), run("shop/m", trigger="manual")], state(**{A: entry(A)}))
    assert not result.has_changes
    assert result.to_submit == [] and result.to_forget == []
    assert (result.summary["unchanged"], result.summary["manual"]) == (1, 1)


# -- moves -------------------------------------------------------------------------------------------

OLD, NEW = "shop/us-daily", "shop/daily-us"
MOVE = Move(OLD, NEW, Source("runs.d/runs.yaml", 2))


def test_a_move_carries_the_history_so_a_rename_does_not_rerun() -> None:
    result = plan([run(NEW)], state(**{OLD: entry(OLD)}), moves=(MOVE,))
    assert rows(result) == [(" ", NEW, "unchanged", "up-to-date")]
    assert result.runs[0].moved_from == OLD
    assert result.moves == ((OLD, NEW),)


def test_a_move_with_an_edit_is_changed() -> None:
    result = plan([run(NEW, EU)], state(**{OLD: entry(OLD, US)}), moves=(MOVE,))
    assert rows(result) == [("~", NEW, "submit", "changed")]
    assert list(result.runs[0].changes) == [{"path": "request.parameters.region", "before": "us", "after": "eu"}]
    assert result.moves == ((OLD, NEW),)


def test_an_applied_move_stays_up_to_date() -> None:
    """After apply records the move, the entry lives under the new key with the fingerprint it was
    submitted with (computed under the old name): the next plan must not call the run changed."""
    current = state(**{NEW: entry(NEW, hashed_as=OLD)})
    result = plan([run(NEW)], current, moves=(MOVE,))
    assert rows(result) == [(" ", NEW, "unchanged", "up-to-date")]
    assert result.moves == ()


def test_a_move_whose_source_is_still_defined_does_nothing() -> None:
    result = plan([run(OLD), run(NEW)], state(**{OLD: entry(OLD)}), moves=(MOVE,))
    assert rows(result) == [
        ("+", NEW, "submit", "new"),
        (" ", OLD, "unchanged", "up-to-date"),
    ]
    assert result.moves == ()


def test_a_move_onto_a_live_entry_does_nothing_and_the_old_entry_is_forgotten() -> None:
    result = plan([run(NEW)], state(**{OLD: entry(OLD), NEW: entry(NEW)}), moves=(MOVE,))
    assert rows(result) == [
        (" ", NEW, "unchanged", "up-to-date"),
        ("-", OLD, "forget", "removed"),
    ]
    assert result.moves == ()


def test_a_move_from_a_tombstone_does_nothing() -> None:
    result = plan([run(NEW)], state(**{OLD: entry(OLD, removed=True)}), moves=(MOVE,))
    assert rows(result) == [("+", NEW, "submit", "new")]
    assert result.moves == ()


def test_a_moved_unknown_entry_stays_blocked() -> None:
    result = plan([run(NEW)], state(**{OLD: entry(OLD, unknown=True)}), moves=(MOVE,))
    assert rows(result) == [("?", NEW, "blocked", "unknown")]
    assert result.moves == ((OLD, NEW),)


# -- selection ---------------------------------------------------------------------------------------

SELECTION_RUNS = [
    run("shop/daily-us", labels={"team": "pricing"}),
    run("shop/daily-eu", EU, labels={"team": "pricing"}),
    run("portal/orders", labels={"team": "ops"}),
    run("portal/daily-us", labels={"team": "ops"}),
]
SELECTION_STATE = state(**{r.key: entry(r.key, r.request) for r in SELECTION_RUNS}, **{"shop/gone": entry("shop/gone")})


def test_run_alone_plans_only_what_it_matches() -> None:
    result = plan(SELECTION_RUNS, SELECTION_STATE, force=("shop/daily-us",))
    assert rows(result) == [("!", "shop/daily-us", "submit", "requested")]


def test_select_limits_without_forcing() -> None:
    result = plan(SELECTION_RUNS, SELECTION_STATE, select=("shop/*",))
    assert rows(result) == [
        (" ", "shop/daily-eu", "unchanged", "up-to-date"),
        (" ", "shop/daily-us", "unchanged", "up-to-date"),
        ("-", "shop/gone", "forget", "removed"),
    ]


def test_select_and_run_are_a_union_and_selects_are_ored() -> None:
    result = plan(SELECTION_RUNS, SELECTION_STATE, select=("orders", "shop/daily-eu"), force=("shop/daily-us",))
    assert rows(result) == [
        (" ", "portal/orders", "unchanged", "up-to-date"),
        (" ", "shop/daily-eu", "unchanged", "up-to-date"),
        ("!", "shop/daily-us", "submit", "requested"),
    ]


def test_a_selector_without_slash_matches_the_name_in_any_project() -> None:
    result = plan(SELECTION_RUNS, SELECTION_STATE, force=("daily-us",))
    assert rows(result) == [
        ("!", "portal/daily-us", "submit", "requested"),
        ("!", "shop/daily-us", "submit", "requested"),
    ]


def test_globs_are_case_sensitive_and_match_the_whole_key() -> None:
    result = plan(SELECTION_RUNS, SELECTION_STATE, select=("daily-*",))
    assert [r.key for r in result.runs] == ["portal/daily-us", "shop/daily-eu", "shop/daily-us"]
    with pytest.raises(UsageError) as caught:
        plan(SELECTION_RUNS, SELECTION_STATE, select=("Daily-*",))
    assert str(caught.value) == "--select 'Daily-*' matches no run or state entry: did you mean 'shop/daily-us'?"


def test_label_selectors_match_exactly() -> None:
    result = plan(SELECTION_RUNS, SELECTION_STATE, force=("label:team=ops",))
    assert rows(result) == [
        ("!", "portal/daily-us", "submit", "requested"),
        ("!", "portal/orders", "submit", "requested"),
    ]
    with pytest.raises(UsageError):
        plan(SELECTION_RUNS, SELECTION_STATE, select=("label:team=op",))


def test_a_selector_may_match_only_a_state_entry() -> None:
    result = plan(SELECTION_RUNS, SELECTION_STATE, select=("shop/gone",))
    assert rows(result) == [("-", "shop/gone", "forget", "removed")]


def test_every_selector_must_match_and_all_misses_are_named_at_once() -> None:
    with pytest.raises(UsageError) as caught:
        plan(SELECTION_RUNS, SELECTION_STATE, force=("nope", "shop/daily-us", "label:team=none"))
    assert str(caught.value) == (
        "--run 'nope' matches no run or state entry: check the key (PROJECT/NAME) or label; "
        "--run 'label:team=none' matches no run or state entry: did you mean 'label:team=ops'?"
    )


def test_a_malformed_label_selector_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        plan(SELECTION_RUNS, SELECTION_STATE, select=("label:team",))
    assert str(caught.value) == "selector 'label:team': expected label:KEY=VALUE or label:KEY!=VALUE"


def test_exclude_removes_runs_and_state_entries_after_select_and_run() -> None:
    result = plan(SELECTION_RUNS, SELECTION_STATE, force=("daily-us",), exclude=("portal/*",))
    assert rows(result) == [("!", "shop/daily-us", "submit", "requested")]
    result = plan(SELECTION_RUNS, SELECTION_STATE, exclude=("label:team=pricing", "shop/gone"))
    assert [r.key for r in result.runs] == ["portal/daily-us", "portal/orders"]


def test_label_not_equal_matches_runs_whose_label_differs_or_is_absent() -> None:
    runs = [*SELECTION_RUNS, run("misc/bare")]
    result = plan(runs, SELECTION_STATE, select=("label:team!=ops",))
    assert [r.key for r in result.runs] == ["misc/bare", "shop/daily-eu", "shop/daily-us"]


def test_runs_outside_the_selection_are_defined_so_their_entries_are_not_forgotten() -> None:
    """`others`: runs whose requests were not rendered because the selection leaves them out."""
    planned = [r for r in SELECTION_RUNS if r.key.startswith("shop/")]
    others = tuple((r.key, dict(r.labels)) for r in SELECTION_RUNS if r.key.startswith("portal/"))
    result = plan(planned, SELECTION_STATE, exclude=("label:team=ops",), others=others)
    assert rows(result) == [
        (" ", "shop/daily-eu", "unchanged", "up-to-date"),
        (" ", "shop/daily-us", "unchanged", "up-to-date"),
        ("-", "shop/gone", "forget", "removed"),
    ]
    # and selectors may match them: an --exclude that names only an unplanned run is no typo
    assert plan(planned, SELECTION_STATE, exclude=("orders",), others=others).summary["forget"] == 1
