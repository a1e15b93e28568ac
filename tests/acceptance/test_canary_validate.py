"""Canaries (docs/secrets.md): with secret variables and the API key set to recognisable values, validate
and render — in every format, with -v and --debug, also when a problem's message would quote a value —
never show a value, nor its JSON-escaped, percent-encoded or base64 form."""

from __future__ import annotations

import base64
import json
import subprocess
from urllib.parse import quote, quote_plus

import pytest

from tests.helpers import Repo, subprocess_env

CANARIES = {
    "PROXY_URL": "http://u:CANARY-s3cr3t-proxy@p:1",
    "HOOK_TOKEN": "CANARY-hook-token-123",
    "PORTAL_PASSWORD": 'CANARY-pä"ss\\word/1',
    "INTUNED_API_KEY": "CANARY-api-key-999",
}


def forms(value: str) -> set[str]:
    """Every way a value could be written out, as the redactor must know them (derived independently)."""
    raw = value.encode()
    found = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        json.dumps(repr(value)[1:-1], ensure_ascii=False)[1:-1],  # a message quoting it, in a JSON report
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        base64.b64encode(raw).decode().rstrip("="),
    }
    for offset in (1, 2):  # inside a longer base64 string: the characters that depend on the value alone
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        found.add(encoded[(8 * offset + 5) // 6 : 8 * (offset + len(raw)) // 6])
    return found


FORBIDDEN = sorted({form for value in CANARIES.values() for form in forms(value)} | {"CANARY"})


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        leaked = [form for form in FORBIDDEN if form in text]
        assert not leaked, f"leaked {leaked} in:\n{text}"


@pytest.fixture
def canaries(clean_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in CANARIES.items():
        clean_env.setenv(name, value)
    return clean_env


VALID_RUNS = """
runs:
  - name: hooked
    project: p
    request:
      api: a
      parameters: {}
      proxy: "{{ secret('PROXY_URL') }}"
      sink:
        type: webhook
        url: https://hooks.example.com/x
        headers: {Authorization: "Bearer {{ secret('HOOK_TOKEN') }}"}
  - name: portal
    project: p
    request:
      api: b
      parameters: {}
      authSession:
        runtimeInput: {user: "{{ secret('PORTAL_USER') }}", password: "{{ secret('PORTAL_PASSWORD') }}"}
"""

COMMANDS = [
    ("validate",),
    ("validate", "--format", "json"),
    ("validate", "--format", "github"),
    ("validate", "--strict"),
    ("render",),
    ("render", "--json"),
    ("render", "p/*", "--json"),
]
VERBOSITY = [(), ("-v",), ("--debug",), ("-v", "--debug")]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("verbosity", VERBOSITY, ids=lambda v: " ".join(v) or "plain")
def test_valid_repository_shows_no_secret(
    repo: Repo, canaries: pytest.MonkeyPatch, command: tuple[str, ...], verbosity: tuple[str, ...]
) -> None:
    repo.write("runs.d/a.yaml", VALID_RUNS)
    result = repo.cli(*command, *verbosity)
    assert_no_canary(result.out, result.err)
    if command[0] == "render":
        assert result.code == 0
        assert "(secret:HOOK_TOKEN)" in result.out
        assert "(secret:PORTAL_PASSWORD)" in result.out


def test_literal_copies_of_values_in_files_are_masked(repo: Repo, canaries: pytest.MonkeyPatch) -> None:
    # Someone pasted the values into a file: render still shows none of them (defence in depth).
    pasted = base64.b64encode(("bob:" + CANARIES["HOOK_TOKEN"]).encode()).decode()
    repo.write(
        "runs.d/a.yaml",
        VALID_RUNS
        + f"""
  - name: pasted
    project: p
    request:
      api: c
      parameters:
        key: {CANARIES["INTUNED_API_KEY"]}
        token: {CANARIES["HOOK_TOKEN"]}
        basic: "Basic {pasted}"
        url: "https://x.example/?t={quote(CANARIES["HOOK_TOKEN"])}"
""",
    )
    for command in (("render",), ("render", "--json"), ("validate", "--format", "json")):
        result = repo.cli(*command, "--debug")
        assert result.code == 0
        assert_no_canary(result.out, result.err)
    assert "    key: ***\n    token: ***\n" in repo.cli("render").out


# env_allow lists the secrets by their exact names (a glob never admits them), so that templates read them
# through env and the messages below would quote their values but for the redactor.
ADMITS_THE_SECRETS = "env_allow: [HOOK_TOKEN, PROXY_URL, PORTAL_PASSWORD]\n"
ERROR_RUNS = """
runs:
  - name: quotes-a-secret
    project: p
    request:
      api: a
      parameters: {t: "{{ {}[env.HOOK_TOKEN] }}"}
      proxy: "{{ secret('PROXY_URL') }}"
  - name: "x-{{ env.PROXY_URL }}"
    project: p
    request: {api: a, parameters: {}}
  - name: label-quotes
    project: p
    labels: {x: "{{ {}[env.PORTAL_PASSWORD] }}"}
    request: {api: a, parameters: {}}
  - name: key-quotes
    project: p
    request: {api: a, parameters: {k: "{{ {}[env.INTUNED_API_KEY] }}"}}
  - name: only-here
    project: p
    request:
      api: a
      parameters: {}
      sink: {type: webhook, url: x, headers: {Authorization: "{{ secret('HOOK_TOKEN') }}{{ nope }}"}}
      authSession: {runtimeInput: {p: "{{ secret('PORTAL_PASSWORD') }}"}}
"""


@pytest.mark.parametrize(
    "command", [("validate",), ("validate", "--format", "json"), ("validate", "--format", "github"), ("render",)]
)
@pytest.mark.parametrize("verbosity", VERBOSITY, ids=lambda v: " ".join(v) or "plain")
def test_messages_that_would_quote_a_value_are_masked(
    repo: Repo, canaries: pytest.MonkeyPatch, command: tuple[str, ...], verbosity: tuple[str, ...]
) -> None:
    # Every run here fails, so no run ever reports its secrets: the names come from the files' text.
    repo.write("intuned-runs.yaml", ADMITS_THE_SECRETS)
    repo.write("runs.d/a.yaml", ERROR_RUNS)
    result = repo.cli(*command, *verbosity)
    assert result.code == 1
    assert_no_canary(result.out, result.err)
    text = result.out + result.err
    assert "has no attribute '***'" in text
    assert "invalid run name 'x-***'" in text


def test_the_masked_messages_exactly(repo: Repo, canaries: pytest.MonkeyPatch) -> None:
    repo.write("intuned-runs.yaml", ADMITS_THE_SECRETS)
    repo.write("runs.d/a.yaml", ERROR_RUNS)
    result = repo.cli("validate")
    assert result.out_lines == [
        "runs.d/a.yaml:6:23: error: request.parameters.t: undefined: 'dict object' has no attribute '***'",
        "runs.d/a.yaml:8:11: error: name: invalid run name 'x-***': use letters, digits, '.', '_' and '-' "
        "(starting with a letter or digit, at most 128)",
        "runs.d/a.yaml:13:17: error: labels.x: undefined: 'dict object' has no attribute '***'",
        "runs.d/a.yaml:17:39: error: request.parameters.k: "
        "env.INTUNED_API_KEY may not be read by templates: the API key stays out of runs",
        "runs.d/a.yaml:23:62: error: request.sink.headers.Authorization: undefined: 'nope' is undefined",
        "runs.d/a.yaml:6:30: error: env.HOOK_TOKEN reads a variable that is used through secret(): "
        "use {{ secret('HOOK_TOKEN') }} inside request instead",
        "runs.d/a.yaml:13:24: error: env.PORTAL_PASSWORD reads a variable that is used through secret(): "
        "use {{ secret('PORTAL_PASSWORD') }} inside request instead",
        "runs.d/a.yaml:8:17: error: env.PROXY_URL reads a variable that is used through secret(): "
        "use {{ secret('PROXY_URL') }} inside request instead",
    ]


def test_config_errors_that_would_quote_a_value_are_masked(repo: Repo, canaries: pytest.MonkeyPatch) -> None:
    repo.write("intuned-runs.yaml", 'vars: {t: "{{ {}[env.HOOK_TOKEN] }}"}\n' + ADMITS_THE_SECRETS)
    repo.write("runs.d/a.yaml", VALID_RUNS)
    for command in (("validate",), ("validate", "--format", "json"), ("render", "--json"), ("render", "--debug")):
        result = repo.cli(*command)
        assert result.code == 1
        assert_no_canary(result.out, result.err)
        assert "has no attribute '***'" in result.out + result.err


def test_installed_command_with_canaries(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", ERROR_RUNS)
    for command in (["validate", "--debug"], ["render", "--json", "-v"]):
        done = subprocess.run(
            ["intuned-runs", "-C", str(repo.root), *command],
            capture_output=True,
            text=True,
            env=subprocess_env(**CANARIES),
            check=False,
        )
        assert done.returncode == 1
        assert_no_canary(done.stdout, done.stderr)
    repo.write("runs.d/a.yaml", VALID_RUNS)
    done = subprocess.run(
        ["intuned-runs", "-C", str(repo.root), "render", "--json", "--debug"],
        capture_output=True,
        text=True,
        env=subprocess_env(**CANARIES),
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert_no_canary(done.stdout)
    assert json.loads(done.stdout)["runs"][0]["request"]["proxy"] == "(secret:PROXY_URL)"


def test_render_works_without_the_secret_variables(repo: Repo, clean_env: pytest.MonkeyPatch) -> None:
    repo.write("runs.d/a.yaml", VALID_RUNS)
    for command in (("validate",), ("render", "--json")):
        assert repo.cli(*command).code == 0
    runs = json.loads(repo.cli("render", "--json").out)["runs"]
    assert runs[0]["request"]["sink"]["headers"] == {"Authorization": "Bearer (secret:HOOK_TOKEN)"}
    assert runs[1]["request"]["authSession"]["runtimeInput"]["password"] == "(secret:PORTAL_PASSWORD)"
