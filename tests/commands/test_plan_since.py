"""`plan --since REF` (docs/plan.md, Plan since a git revision), in a real git repository in tmp_path: add,
change, rename with `moved:`, delete between two commits, in text, JSON and markdown; no state read or
written; the working tree untouched; an unknown REF and a directory outside git are one error line each."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import Repo, run_main

pytestmark = pytest.mark.usefixtures("clean_env")

BEFORE_SHOP = """\
defaults: {project: shop}
runs:
  - name: keep
    request: {api: products/list, parameters: {x: 1}}
  - name: change
    request: {api: products/list, parameters: {x: 1}}
  - name: old-name
    request: {api: products/list, parameters: {x: 2}}
  - name: old-b
    request: {api: products/list, parameters: {x: 3}}
  - name: gone
    request: {api: products/list, parameters: {x: 4}}
  - name: hourly
    trigger: always
    request:
      api: products/list
      parameters: {}
      sink: {type: webhook, url: https://hooks.example.com/i, headers: {A: "{{ secret('HOOK_TOKEN') }}"}}
"""
BEFORE_OPS = """\
runs:
  - {name: orders, project: portal, request: {api: orders/sync, parameters: {}}}
"""
# Now: `keep` and `hourly` as they were, `change` changed, two renames (one also changed), `gone` deleted,
# runs.d/ops.yaml deleted, and a new manual run.
AFTER_SHOP = """\
defaults: {project: shop}
moved:
  - {from: shop/old-name, to: shop/new-name}
  - {from: shop/old-b, to: shop/new-b}
runs:
  - name: keep
    request: {api: products/list, parameters: {x: 1}}
  - name: change
    request: {api: products/list, parameters: {x: 5}}
  - name: new-name
    request: {api: products/list, parameters: {x: 2}}
  - name: new-b
    request: {api: products/list, parameters: {x: 30}}
  - name: added
    trigger: manual
    request: {api: products/list, parameters: {x: 6}}
  - name: hourly
    trigger: always
    request:
      api: products/list
      parameters: {}
      sink: {type: webhook, url: https://hooks.example.com/i, headers: {A: "{{ secret('HOOK_TOKEN') }}"}}
"""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture
def history(repo: Repo) -> Repo:
    """Two commits: BEFORE (tagged `before`), then AFTER in the working tree, committed too."""
    git(repo.root, "init", "-q")
    repo.write("runs.d/shop.yaml", BEFORE_SHOP)
    repo.write("runs.d/ops.yaml", BEFORE_OPS)
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "before")
    git(repo.root, "tag", "before")
    repo.write("runs.d/shop.yaml", AFTER_SHOP)
    (repo.root / "runs.d/ops.yaml").unlink()
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "after")
    return repo


def test_text_shows_added_changed_renamed_and_deleted_runs(history: Repo) -> None:
    result = history.cli("plan", "--since", "before")
    assert result.out_lines == [
        "- portal/orders  removed",
        "+ shop/added  new  runs.d/shop.yaml:14",
        "~ shop/change  changed  runs.d/shop.yaml:8",
        "    request.parameters.x: 1 → 5",
        "- shop/gone  removed",
        "~ shop/new-b  changed  runs.d/shop.yaml:12  → moved from shop/old-b",
        "    request.parameters.x: 3 → 30",
        "  shop/new-name  up-to-date  runs.d/shop.yaml:10  → moved from shop/old-name",
        "",
        "Plan: 3 to submit (1 new, 2 changed, 0 requested, 0 always), 3 unchanged, 2 to forget, 0 blocked.",
    ]


def test_json_names_the_revision_and_every_run(history: Repo) -> None:
    result = history.cli("plan", "--since", "before", "--json", "--detailed-exitcode")
    assert result.code == 2, result.err
    document = result.json()
    assert document["context"] == {"env": None, "workspace_id": None, "state": None, "since": "before"}
    assert document["moves"] == [
        {"from": "shop/old-name", "to": "shop/new-name"},
        {"from": "shop/old-b", "to": "shop/new-b"},
    ]
    expected = {"submit": 3, "new": 1, "changed": 2, "requested": 0, "always": 0, "unchanged": 3, "forget": 2}
    assert {key: document["summary"][key] for key in expected} == expected
    runs = {r["key"]: r for r in document["runs"]}
    got = {key: (r["action"], r["reason"], r["moved_from"]) for key, r in runs.items()}
    assert got == {
        "portal/orders": ("forget", "removed", None),
        "shop/added": ("submit", "new", None),  # a manual run: triggers are ignored
        "shop/change": ("submit", "changed", None),
        "shop/gone": ("forget", "removed", None),
        "shop/hourly": ("unchanged", "up-to-date", None),  # an `always` run that did not change
        "shop/keep": ("unchanged", "up-to-date", None),
        "shop/new-b": ("submit", "changed", "shop/old-b"),
        "shop/new-name": ("unchanged", "up-to-date", "shop/old-name"),
    }
    assert runs["shop/change"]["changes"] == [{"path": "request.parameters.x", "before": 1, "after": 5}]
    assert runs["shop/new-b"]["changes"] == [{"path": "request.parameters.x", "before": 3, "after": 30}]
    assert runs["shop/gone"]["source"] is None
    assert runs["shop/gone"]["request"] == {"api": "products/list", "parameters": {"x": 4}}
    # Secrets stay placeholders: none is set, and none is needed.
    assert runs["shop/hourly"]["request"]["sink"]["headers"] == {"A": "(secret:HOOK_TOKEN)"}


def test_markdown_names_the_revision(history: Repo) -> None:
    result = history.cli("plan", "--since", "before", "--format", "markdown")
    assert result.code == 0, result.err
    lines = result.out_lines
    assert lines[0] == "### intuned-runs plan: env (none), since git revision `before` (no state)"
    assert "Plan: 3 to submit (1 new, 2 changed, 0 requested, 0 always), 3 unchanged, 2 to forget, 0 blocked." in lines
    for key in ("shop/added", "shop/change", "shop/new-b", "shop/gone", "portal/orders"):
        assert sum(key in line and line.startswith("<details>") for line in lines) == 1, key
    assert "shop/keep" not in result.out


def test_uncommitted_edits_are_planned_against_head(history: Repo) -> None:
    # "now" is the working tree: a pull request's checkout, or a developer's edits before committing.
    history.edit("runs.d/shop.yaml", "parameters: {x: 1}}\n  - name: change", "parameters: {x: 9}}\n  - name: change")
    result = history.cli("plan", "--since", "HEAD", "-q")
    assert result.code == 0, result.err
    assert result.out_lines[-1] == (
        "Plan: 1 to submit (0 new, 1 changed, 0 requested, 0 always), 5 unchanged, 0 to forget, 0 blocked."
    )


def test_no_state_is_read_or_written_and_the_work_tree_is_untouched(history: Repo) -> None:
    history.state_path.parent.mkdir()
    history.state_path.write_text("{not json", encoding="utf-8")  # any read of it would fail
    assert history.cli("plan").code == 1  # the plain plan does read it
    status = git(history.root, "status", "--porcelain", "--untracked-files=all")
    index = git(history.root, "ls-files", "--stage")
    head = git(history.root, "rev-parse", "HEAD")
    result = history.cli("plan", "--since", "before", "--json")
    assert result.code == 0, result.err
    assert history.state_path.read_text(encoding="utf-8") == "{not json"
    assert sorted(p.name for p in history.state_path.parent.iterdir()) == ["state.json"]  # no lock, journal
    assert git(history.root, "status", "--porcelain", "--untracked-files=all") == status
    assert git(history.root, "ls-files", "--stage") == index
    assert git(history.root, "rev-parse", "HEAD") == head


def test_a_repository_in_a_subdirectory_with_its_config(repo: Repo) -> None:
    git(repo.root, "init", "-q")
    repo.write("ops/intuned-runs.yaml", "default_project: shop\nvars: {limit: 1}\n")
    repo.write("ops/runs.d/a.yml", 'runs:\n  - {name: a, request: {api: x, parameters: {n: "{{ vars.limit }}"}}}\n')
    repo.write("elsewhere/runs.d/b.yaml", "runs: [{name: b, project: p, request: {api: x, parameters: {}}}]\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "one")
    repo.write("ops/intuned-runs.yaml", "default_project: shop\nvars: {limit: 2}\n")  # a config change counts
    result = run_main("-C", str(repo.root / "ops"), "plan", "--since", "HEAD")
    assert result.code == 0, result.err
    assert result.out_lines == [
        "~ shop/a  changed  runs.d/a.yml:2",
        "    request.parameters.n: 1 → 2",
        "",
        "Plan: 1 to submit (0 new, 1 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
    ]


def test_a_revision_without_run_files_makes_every_run_new(repo: Repo) -> None:
    git(repo.root, "init", "-q")
    repo.write("README.md", "hello\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "empty")
    repo.write("runs.d/a.yaml", "runs: [{name: a, project: p, request: {api: x, parameters: {}}}]\n")
    result = repo.cli("plan", "--since", "HEAD")
    assert (result.code, result.out_lines) == (
        0,
        [
            "+ p/a  new  runs.d/a.yaml:1",
            "",
            "Plan: 1 to submit (1 new, 0 changed, 0 requested, 0 always), 0 unchanged, 0 to forget, 0 blocked.",
        ],
    )


def test_select_limits_the_plan(history: Repo) -> None:
    result = history.cli("plan", "--since", "before", "--select", "shop/g*", "--json")
    assert [(r["key"], r["action"]) for r in result.json()["runs"]] == [("shop/gone", "forget")]


def test_unknown_revision_is_one_error_line(history: Repo) -> None:
    result = history.cli("plan", "--since", "no-such-ref")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == [
        "error: --since no-such-ref: not a known git revision of this repository (a branch, tag or commit; "
        "fetch it first, e.g. git fetch origin main)"
    ]


def test_an_option_is_not_a_revision(history: Repo) -> None:
    result = history.cli("plan", "--since=--output=/tmp/x")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == [
        "error: --since --output=/tmp/x: not a known git revision of this repository (a branch, tag or commit; "
        "fetch it first, e.g. git fetch origin main)"
    ]


def test_a_directory_outside_git_is_one_error_line(repo: Repo) -> None:
    # The Repo helper marks the top with an empty `.git` folder: config discovery stops there, git does not
    # recognise it.
    repo.write("runs.d/a.yaml", "runs: []\n")
    result = repo.cli("plan", "--since", "main")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == [
        f"error: --since: {repo.root} is not in a git work tree: plan --since reads the run files from git"
    ]


@pytest.mark.parametrize(
    ("flags", "flag"),
    [(["--run", "shop/keep"], "--run"), (["--retry-unknown"], "--retry-unknown"), (["--out", "p.json"], "--out")],
)
def test_submitting_flags_are_refused(history: Repo, flags: list[str], flag: str) -> None:
    result = history.cli("plan", "--since", "before", *flags)
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == [
        f"error: {flag} cannot be used with --since: a plan since a git revision submits nothing"
    ]
    assert not (history.root / "p.json").exists()


def test_validation_errors_of_the_current_files_fail_the_plan(history: Repo) -> None:
    history.edit("runs.d/shop.yaml", "api: products/list, parameters: {x: 5}", "api: products/list")
    result = history.cli("plan", "--since", "before")
    assert result.code == 1
    assert (result.out, result.err_lines) == (
        "",
        [
            "Planning against git revision before with no state",
            "runs.d/shop.yaml:9:14: error: request.parameters: request is missing required 'parameters'",
        ],
    )


def test_errors_at_the_revision_are_a_warning(repo: Repo) -> None:
    git(repo.root, "init", "-q")
    repo.write("runs.d/a.yaml", "runs: [{name: a, project: p, request: {api: x}}]\n")  # no parameters
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "broken")
    repo.write("runs.d/a.yaml", "runs: [{name: a, project: p, request: {api: x, parameters: {}}}]\n")
    result = repo.cli("plan", "--since", "HEAD")
    assert result.code == 0
    assert result.out_lines[0] == "+ p/a  new  runs.d/a.yaml:1"
    assert result.err_lines[-1] == (
        "warning: the run files at HEAD have 1 error: the runs that did not load there show as new"
    )


def test_failed_validation_still_prints_a_json_and_markdown_document(history: Repo) -> None:
    # The fork's pull-request comment shows why the plan failed (docs/plan.md, Markdown output).
    history.edit("runs.d/shop.yaml", "api: products/list, parameters: {x: 5}", "api: products/list")
    result = history.cli("plan", "--since", "before", "--json")
    assert result.code == 1
    document = result.json()
    assert document["context"]["since"] == "before"
    assert (document["summary"], document["runs"]) == (None, [])
    assert [(p["file"], p["line"], p["path"]) for p in document["problems"]] == [
        ("runs.d/shop.yaml", 9, "request.parameters")
    ]
    result = history.cli("plan", "--since", "before", "--format", "markdown")
    assert result.code == 1
    assert "Problems" in result.out and "request is missing required 'parameters'" in result.out


def test_a_selection_renders_only_planned_requests_at_both_revisions(history: Repo) -> None:
    # A run outside the selection needs a variable nobody set, now and at REF: it does not stop the plan.
    needy = '  - name: needy\n    request: {api: x, parameters: {r: "{{ env.ONLY_HERE }}"}}\n'
    history.write("intuned-runs.yaml", "env_allow: [ONLY_HERE]\n")
    history.write("runs.d/needy.yaml", "defaults: {project: shop}\nruns:\n" + needy)
    git(history.root, "add", "-A")
    git(history.root, "commit", "-qm", "needy")
    history.edit("runs.d/shop.yaml", "parameters: {x: 5}", "parameters: {x: 7}")
    result = history.cli("plan", "--since", "HEAD", "--select", "shop/change")
    assert result.code == 0, result.err
    assert result.out_lines[0] == "~ shop/change  changed  runs.d/shop.yaml:8"
    assert "ONLY_HERE" not in result.err
    assert "warning" not in result.err
    assert history.cli("plan", "--since", "HEAD").code == 1  # unselected, the run's error shows


def test_a_secret_value_appears_in_no_format(history: Repo, clean_env: pytest.MonkeyPatch) -> None:
    canary = "canary-S3cr3t-77f1e2"
    clean_env.setenv("HOOK_TOKEN", canary)  # set or not, the plan renders secret() as its placeholder
    history.edit("runs.d/shop.yaml", "headers: {A:", "headers: {B:")  # the header around the secret changes
    for fmt in ("text", "json", "markdown"):
        result = history.cli("plan", "--since", "before", "--format", fmt, "-v")
        assert result.code == 0, result.err
        assert "(secret:HOOK_TOKEN)" in result.out, fmt
        assert canary not in result.out + result.err, fmt


def test_files_are_read_as_git_stores_them(repo: Repo) -> None:
    # Not as `git archive` exports them: an export-ignore attribute hides nothing; links and odd names stay.
    git(repo.root, "init", "-q")
    repo.write(".gitattributes", "runs.d/** export-ignore\n")
    repo.write("runs.d/my runs.yaml", "runs: [{name: a, project: p, request: {api: x, parameters: {}}}]\n")
    repo.write("shared/linked.yaml", "runs: [{name: b, project: p, request: {api: x, parameters: {}}}]\n")
    (repo.root / "runs.d/linked.yaml").symlink_to("../shared/linked.yaml")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "one")
    result = repo.cli("plan", "--since", "HEAD")
    assert (result.code, result.out_lines) == (0, ["No changes. 2 runs up to date."])
