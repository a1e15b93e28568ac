"""`intuned-runs validate` end to end (docs/run-files.md, docs/validation.md, docs/cli.md): output formats,
the bad-input corpus, the examples of this repository, and the conventions every command shares
(--version, --help, usage errors, global options after the command)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intuned_runs import __version__
from tests.helpers import CORPUS, PROJECT, Repo, run_main, subprocess_env

pytestmark = pytest.mark.usefixtures("clean_env")


# Each corpus file, dropped into runs.d/, gives exactly this one line (docs/run-files.md: FILE:LINE:COL, or FILE for
# a whole-file problem).
CORPUS_LINES = {
    "alias-bomb.yaml": "runs.d/alias-bomb.yaml:2:14: error: more than 10000 alias expansions: simplify the anchors",
    "bad-indent.yaml": "runs.d/bad-indent.yaml:3:4: error: invalid YAML: did not find expected '-' indicator",
    "bad-int-tag.yaml": "runs.d/bad-int-tag.yaml:4:39: error: unsupported tag tag:yaml.org,2002:int for 'twelve'",
    "complex-key.yaml": "runs.d/complex-key.yaml:2:7: error: mapping keys must be scalars",
    "duplicate-key.yaml": "runs.d/duplicate-key.yaml:4:5: error: duplicate key 'name'",
    "non-utf8.yaml": "runs.d/non-utf8.yaml:2:14: error: file is not valid UTF-8: save it as UTF-8",
    "not-a-mapping.yaml": "runs.d/not-a-mapping.yaml:1:1: error: a run file is a mapping with 'runs' "
    "(and optional 'defaults', 'moved')",
    "nul-byte.yaml": "runs.d/nul-byte.yaml:2:12: error: invalid YAML: unacceptable character #x0000: "
    "control characters are not allowed",
    "python-tag.yaml": "runs.d/python-tag.yaml:1:7: error: unsupported tag "
    "tag:yaml.org,2002:python/object/apply:os.system",
    "recursive-alias.yaml": "runs.d/recursive-alias.yaml:1:4: error: recursive alias: an anchor may not contain itself",
    "tab-indent.yaml": "runs.d/tab-indent.yaml:2:1: error: invalid YAML: found character that cannot start any token",
    "two-documents.yaml": "runs.d/two-documents.yaml:2:1: error: invalid YAML: but found another document",
    "unclosed-flow.yaml": "runs.d/unclosed-flow.yaml:4:1: error: invalid YAML: did not find expected ',' or '}'",
    "unclosed-quote.yaml": "runs.d/unclosed-quote.yaml:4:1: error: invalid YAML: found unexpected end of stream",
    "undefined-alias.yaml": "runs.d/undefined-alias.yaml:1:7: error: invalid YAML: found undefined alias",
    "unknown-top-level-key.yaml": "runs.d/unknown-top-level-key.yaml:2:3: error: run: unknown top-level key 'run'; "
    "did you mean 'runs'?",
    "utf16.yaml": "runs.d/utf16.yaml:1:1: error: file is not valid UTF-8: save it as UTF-8",
}

VALID = "runs:\n  - {name: ok, project: p, request: {api: a, parameters: {}}}\n"


def test_the_corpus_is_complete() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(CORPUS_LINES)


def _assert_one_clean_line(repo: Repo, line: str, *args: str) -> None:
    result = repo.cli("validate", *args)
    assert (result.code, result.out_lines, result.err) == (1, [line], "")
    assert "Traceback" not in result.out + result.err


@pytest.mark.parametrize("name", sorted(CORPUS_LINES))
def test_each_bad_input_gives_exactly_one_line(repo: Repo, name: str) -> None:
    (repo.root / "runs.d").mkdir()
    shutil.copyfile(CORPUS / name, repo.root / "runs.d" / name)
    repo.write("runs.d/zz-valid.yaml", VALID)  # the others are still read
    _assert_one_clean_line(repo, CORPUS_LINES[name])


def test_whole_corpus_at_once_reports_every_file(repo: Repo) -> None:
    shutil.copytree(CORPUS, repo.root / "runs.d")
    result = repo.cli("validate", "--format", "json")
    assert result.code == 1
    problems = json.loads(result.out)["problems"]
    assert [p["file"] for p in problems] == [f"runs.d/{name}" for name in sorted(CORPUS_LINES)]
    assert all(p["severity"] == "error" for p in problems)


def test_file_over_10_mib(repo: Repo) -> None:
    repo.write_bytes("runs.d/big.yaml", b"runs: []\n" + b"#" * (10 * 1024 * 1024) + b"\n")
    _assert_one_clean_line(repo, "runs.d/big.yaml: error: file is larger than 10 MiB: split it into several files")


def test_symlinked_file_outside_the_repository(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(VALID)
    (repo.root / "runs.d").mkdir()
    os.symlink(outside, repo.root / "runs.d" / "link.yaml")
    _assert_one_clean_line(
        repo, "runs.d/link.yaml: error: resolves outside the repository: move the file inside it or remove the link"
    )


def test_symlinked_directory_outside_the_repository(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yaml").write_text(VALID)
    (repo.root / "runs.d").mkdir()
    os.symlink(tmp_path / "elsewhere", repo.root / "runs.d" / "linked")
    _assert_one_clean_line(
        repo,
        "runs.d/linked/x.yaml: error: resolves outside the repository: move the file inside it or remove the link",
    )


def test_runs_dir_outside_the_repository(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yaml").write_text(VALID)
    repo.write("intuned-runs.yaml", "runs_dir: ../elsewhere\n")
    result = repo.cli("validate")
    assert (result.code, result.err) == (1, "")
    assert result.out_lines == [
        f"intuned-runs.yaml:1:11: error: runs_dir: runs_dir {tmp_path / 'elsewhere'} resolves outside the repository "
        f"{repo.root}"
    ]


def test_runs_dir_linked_outside_the_repository(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yaml").write_text(VALID)
    os.symlink(tmp_path / "elsewhere", repo.root / "runs.d")
    result = repo.cli("render")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == [
        # no config file: addressed to the folder itself (docs/validation.md: a problem of a whole file)
        f"runs.d: error: runs_dir {tmp_path / 'elsewhere'} resolves outside the repository {repo.root}"
    ]


# -- formats ---------------------------------------------------------------------------------------

TWO_PROBLEMS = """
runs:
  - name: a
    project: p
    request:
      api: a
      parameters: {}
      saveTrce: true
      sink: {type: ftp}
"""


def test_text_format(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", TWO_PROBLEMS)
    repo.write("runs.d/b.yaml", "runs: [\n")
    result = repo.cli("validate", "--format", "text")
    assert (result.code, result.err) == (1, "")
    assert result.out_lines == [
        "runs.d/a.yaml:8:20: error: request.sink.type: must be one of webhook, s3",
        "runs.d/a.yaml:7:17: error: request.saveTrce: unknown key 'saveTrce'; did you mean 'saveTrace'?",
        "runs.d/b.yaml:2:1: error: invalid YAML: did not find expected node content",
    ]


def test_json_format(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", TWO_PROBLEMS)
    repo.write_bytes("runs.d/b.yaml", b"#" * (10 * 1024 * 1024 + 1))
    result = repo.cli("validate", "--format", "json")
    assert (result.code, result.err) == (1, "")
    assert json.loads(result.out) == {
        "format_version": 1,
        "problems": [
            {
                "file": "runs.d/a.yaml",
                "line": 8,
                "col": 20,
                "severity": "error",
                "path": "request.sink.type",
                "message": "must be one of webhook, s3",
            },
            {
                "file": "runs.d/a.yaml",
                "line": 7,
                "col": 17,
                "severity": "error",
                "path": "request.saveTrce",
                "message": "unknown key 'saveTrce'; did you mean 'saveTrace'?",
            },
            {
                "file": "runs.d/b.yaml",
                "line": None,
                "col": None,
                "severity": "error",
                "path": "",
                "message": "file is larger than 10 MiB: split it into several files",
            },
        ],
    }


def test_json_format_without_problems(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", VALID)
    result = repo.cli("validate", "--format", "json")
    assert (result.code, result.err) == (0, "")
    assert json.loads(result.out) == {"format_version": 1, "problems": []}


def test_github_format(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", TWO_PROBLEMS)
    repo.write_bytes("runs.d/b.yaml", b"#" * (10 * 1024 * 1024 + 1))
    result = repo.cli("validate", "--format", "github")
    assert (result.code, result.err) == (1, "")
    assert result.out_lines == [
        "::error file=runs.d/a.yaml,line=8,col=20::request.sink.type: must be one of webhook, s3",
        "::error file=runs.d/a.yaml,line=7,col=17::request.saveTrce: unknown key 'saveTrce'; did you mean 'saveTrace'?",
        "::error file=runs.d/b.yaml::file is larger than 10 MiB: split it into several files",
    ]


ODD_KEY = r"""
runs:
  - name: a
    project: p
    request:
      api: a
      parameters: {}
      "100%\r\nsure": 1
"""


def test_github_format_escapes_percent_cr_lf(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "unknown_keys: warn\n")
    repo.write("runs.d/we%ird,na:me.yaml", ODD_KEY)
    result = repo.cli("validate", "--format", "github")
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        "::warning file=runs.d/we%25ird%2Cna%3Ame.yaml,line=7,col=23::"
        "request.100%25%0D%0Asure: unknown key '100%25%0D%0Asure'\n"
    )


def test_text_format_keeps_one_problem_per_line(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "unknown_keys: warn\n")
    repo.write("runs.d/a.yaml", ODD_KEY)
    result = repo.cli("validate")
    assert result.out == "runs.d/a.yaml:7:23: warning: request.100%\\r\\nsure: unknown key '100%\\r\\nsure'\n"
    problems = json.loads(repo.cli("validate", "--format", "json").out)["problems"]
    assert problems[0]["message"] == "unknown key '100%\r\nsure'"  # JSON keeps the real text


@pytest.mark.parametrize(("github_actions", "github"), [("true", True), ("false", False), (None, False)])
def test_auto_format_is_github_inside_github_actions(
    repo: Repo, clean_env: pytest.MonkeyPatch, github_actions: str | None, github: bool
) -> None:
    if github_actions is not None:
        clean_env.setenv("GITHUB_ACTIONS", github_actions)
    repo.write("runs.d/a.yaml", "runs: [\n")
    expected = (
        "::error file=runs.d/a.yaml,line=2,col=1::invalid YAML: did not find expected node content"
        if github
        else "runs.d/a.yaml:2:1: error: invalid YAML: did not find expected node content"
    )
    for args in ((), ("--format", "auto")):
        result = repo.cli("validate", *args)
        assert (result.code, result.out_lines) == (1, [expected])
    # Other commands report the same problems on stderr, in the same format.
    result = repo.cli("render")
    assert (result.code, result.out, result.err_lines) == (1, "", [expected])


def test_explicit_text_format_inside_github_actions(repo: Repo, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("GITHUB_ACTIONS", "true")
    repo.write("runs.d/a.yaml", "runs: [\n")
    result = repo.cli("validate", "--format", "text")
    assert result.out_lines == ["runs.d/a.yaml:2:1: error: invalid YAML: did not find expected node content"]


def test_valid_repository_says_so_on_stderr(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", VALID)
    result = repo.cli("validate")
    assert (result.code, result.out, result.err) == (0, "", "1 run valid.\n")
    result = repo.cli("validate", "-q")
    assert (result.code, result.out, result.err) == (0, "", "")


def test_bad_format_is_a_usage_error(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", VALID)
    result = repo.cli("validate", "--format", "yaml")
    assert (result.code, result.out) == (1, "")
    assert result.err == "error: invalid choice 'yaml' for --format (choose from text, json, github, auto)\n"


def test_config_problems_follow_the_format_on_stdout(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "base_ur: x\n")
    repo.write("runs.d/a.yaml", VALID)
    result = repo.cli("validate", "--format", "json")
    assert result.code == 1
    assert json.loads(result.out)["problems"] == [
        {
            "file": "intuned-runs.yaml",
            "line": 1,
            "col": 10,
            "severity": "error",
            "path": "base_ur",
            "message": "unknown key 'base_ur'; did you mean 'base_url'?",
        }
    ]


def test_flag_problems_are_addressed_to_the_flag_in_json(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", VALID)
    result = repo.cli("validate", "--format", "json", "--var", "novalue")
    assert result.code == 1
    assert json.loads(result.out)["problems"] == [
        {
            "file": "<flag --var>",
            "line": None,
            "col": None,
            "severity": "error",
            "path": "",
            "message": "expected KEY=VALUE, got 'novalue'",
        }
    ]


# -- the examples of this repository ---------------------------------------------------------------


def test_examples_validate_clean() -> None:
    result = run_main("-C", str(PROJECT), "validate", "--strict")
    assert (result.code, result.out) == (0, "")
    assert result.err.endswith(" runs valid.\n")


def test_examples_render_without_any_secret_set() -> None:
    result = run_main("-C", str(PROJECT), "render", "--json")
    assert (result.code, result.err) == (0, "")
    runs = {run["key"]: run for run in json.loads(result.out)["runs"]}
    assert runs["catalog/full-export"]["request"]["sink"]["secretAccessKey"] == "(secret:AWS_SECRET_ACCESS_KEY)"
    assert runs["catalog/full-export"]["trigger"] == "manual"
    assert runs["pricing-scraper/daily-eu"]["request"]["parameters"]["limit"] == 50
    assert runs["pricing-scraper/daily-eu"]["request"]["parameters"]["country"] == "NO"
    assert runs["catalog/category-hats"]["request"]["parameters"]["owner"] == "catalog"
    result = run_main("-C", str(PROJECT), "render", "--json", "--env", "prod")
    runs = {run["key"]: run for run in json.loads(result.out)["runs"]}
    assert runs["pricing-scraper/daily-eu"]["request"]["parameters"]["limit"] == 500


# -- conventions -----------------------------------------------------------------------------------


def test_version() -> None:
    result = run_main("--version")
    assert (result.code, result.out, result.err) == (0, f"intuned-runs {__version__} (Run API schema 0.0.2)\n", "")


def test_version_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from intuned_runs.cli import main\n"
        "assert main(['--version']) == 0\n"
        "print(sorted(m for m in ('httpx', 'jsonschema', 'jinja2', 'watchfiles') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"intuned-runs {__version__} (Run API schema 0.0.2)\n[]\n"


def test_installed_command_and_module_agree() -> None:
    for argv in (["intuned-runs", "--version"], [sys.executable, "-m", "intuned_runs", "--version"]):
        done = subprocess.run(argv, capture_output=True, text=True, env=subprocess_env(), check=False)
        assert (done.returncode, done.stdout, done.stderr) == (
            0,
            f"intuned-runs {__version__} (Run API schema 0.0.2)\n",
            "",
        )


COMMANDS = [
    (),
    ("validate",),
    ("render",),
    ("plan",),
    ("apply",),
    ("watch",),
    ("schema",),
    ("schema", "pull"),
    ("state",),
    ("state", "list"),
    ("state", "show"),
    ("state", "mv"),
    ("state", "forget"),
    ("state", "resolve"),
    ("state", "unlock"),
    ("status",),
    ("emulator",),
    ("init",),
    ("completion",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_of_every_command_exits_0_with_an_example(command: tuple[str, ...]) -> None:
    result = run_main(*command, "--help")
    assert (result.code, result.err) == (0, "")
    out = result.out
    assert out.startswith("usage: intuned-runs")
    example = out.split("\nExample:\n  ", 1)[1]
    assert "intuned-runs " in example.splitlines()[0]


def test_help_through_the_installed_command() -> None:
    done = subprocess.run(
        ["intuned-runs", "validate", "--help"], capture_output=True, text=True, env=subprocess_env(), check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "Example:\n  intuned-runs validate --strict --format github\n" in done.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("validate", "--stirct"),
            "error: unrecognized option --stirct: did you mean --strict?",
        ),
        (
            ("valdate",),
            "error: unknown command 'valdate': did you mean 'validate'?",
        ),
        (
            ("schema",),
            "error: intuned-runs schema: the following arguments are required: pull|export "
            "(see intuned-runs schema --help)",
        ),
    ],
)
def test_usage_errors_exit_1_not_2(argv: tuple[str, ...], message: str) -> None:
    result = run_main(*argv)
    assert (result.code, result.out, result.err) == (1, "", message + "\n")


def test_mistyped_flag_exits_1_from_the_installed_command(tmp_path: Path) -> None:
    done = subprocess.run(
        ["intuned-runs", "validate", "--detailed-exitcod"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=subprocess_env(),
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: unrecognized option --detailed-exitcod (see intuned-runs validate --help)\n"


def test_global_options_after_the_command(repo: Repo, tmp_path: Path) -> None:
    repo.write("intuned-runs.yaml", "vars: {r: us}\nenvironments: {prod: {vars: {r: eu}}}\n")
    repo.write(
        "runs.d/a.yaml", 'runs:\n  - {name: a, project: p, request: {api: a, parameters: {r: "{{ vars.r }}"}}}\n'
    )
    result = run_main("validate", "-C", str(repo.root))
    assert (result.code, result.out, result.err) == (0, "", "1 run valid.\n")
    result = run_main("render", "--json", "-C", str(repo.root), "--env", "prod", "--no-color", "-v")
    assert json.loads(result.out)["runs"][0]["request"]["parameters"] == {"r": "eu"}
    result = run_main("render", "--json", "--var", "r=ap", "-C", str(repo.root))
    assert json.loads(result.out)["runs"][0]["request"]["parameters"] == {"r": "ap"}
    result = run_main("schema", "pull", "--check", "-C", str(PROJECT))
    assert (result.code, result.err) == (0, "schemas/run-start.schema.json is up to date.\n")
    done = subprocess.run(
        ["intuned-runs", "validate", "-C", str(repo.root), "--format", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=subprocess_env(),
        check=False,
    )
    assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, {"format_version": 1, "problems": []}, "")


def test_installed_command_reports_problems_without_traceback(repo: Repo) -> None:
    shutil.copytree(CORPUS, repo.root / "runs.d")
    done = subprocess.run(
        ["intuned-runs", "-C", str(repo.root), "validate"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.splitlines() == [CORPUS_LINES[name] for name in sorted(CORPUS_LINES)]


def test_no_color_codes_without_a_tty(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", TWO_PROBLEMS)
    result = repo.cli("validate")
    assert "\x1b[" not in result.out + result.err
