"""Jinja templating in a sandbox (docs/templating.md, docs/secrets.md): types, undefined names, env_allow, the
sandbox, secret() rules. Library level first, then the same rules seen through `intuned-runs`."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from intuned_runs.templating import Renderer, TemplateError, secret_refs
from tests.helpers import Repo

pytestmark = pytest.mark.usefixtures("clean_env")

ENVIRON = {"LIMIT": "50", "REGION": "eu", "Lower": "l", "PROXY_URL": "http://u:p@proxy:1", "INTUNED_API_KEY": "k" * 12}
CONTEXT: dict[str, Any] = {
    "vars": {"limit": 50, "name": "n", "nums": [1, 2], "nested": {"a": {"b": True}}},
    "matrix": {"region": "apac"},
    "run": {"name": "daily"},
}


def render(source: str, *, allow: tuple[str, ...] = ("*",), secrets: bool = True, environ: Any = None) -> Any:
    renderer = Renderer(ENVIRON if environ is None else environ, allow)
    return renderer.render_string(source, CONTEXT, secrets_allowed=secrets)


def error(source: str, **kwargs: Any) -> str:
    with pytest.raises(TemplateError) as info:
        render(source, **kwargs)
    return info.value.message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # Exactly one expression keeps the Python value...
        ("{{ vars.limit }}", 50),
        ("{{vars.limit}}", 50),
        ("{{ vars.limit > 10 }}", True),
        ("{{ none }}", None),
        ("{{ vars.nums }}", [1, 2]),
        ("{{ vars.nested }}", {"a": {"b": True}}),
        ("{{ (1, 2) }}", [1, 2]),  # a tuple is a JSON list
        ("{{ vars.limit | int + 1 }}", 51),
        ("{{ vars.missing | default(3) }}", 3),
        ("{{ 5 | tojson }}", "5"),  # Markup becomes a plain str
        # ...but a string is never re-parsed into another type.
        ("{{ env.LIMIT }}", "50"),
        ("{{ '50' }}", "50"),
        ("{{ 'true' }}", "true"),
        # Anything else yields a string.
        ("n={{ vars.limit }}", "n=50"),
        ("{{ vars.limit }} ", "50 "),
        ("{{ 1 }}{{ 2 }}", "12"),
        ("{% if vars.limit > 10 %}big{% else %}small{% endif %}", "big"),
        ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
        ("{# a comment #}{{ 1 }}", "1"),
        ("{% raw %}{{ x }}{% endraw %}", "{{ x }}"),
        ("{{ matrix.region }}-{{ run.name }}", "apac-daily"),
        # Strings without {{ or {% are not templates.
        ("plain {text} } {", "plain {text} } {"),
        ("{#not a comment either", "{#not a comment either"),
        ("", ""),
    ],
)
def test_rendered_values(source: str, expected: Any) -> None:
    value = render(source)
    assert value == expected
    assert type(value) is type(expected)


def test_render_walks_values_not_keys_and_keeps_other_types() -> None:
    renderer = Renderer(ENVIRON, ("*",))
    value = {"{{ vars.name }}": ["{{ vars.limit }}", 1.5, None, {"k": "{{ matrix.region }}"}], "n": 3}
    assert renderer.render(value, CONTEXT) == {"{{ vars.name }}": [50, 1.5, None, {"k": "apac"}], "n": 3}


def test_errors_carry_the_path_of_the_failing_string() -> None:
    renderer = Renderer(ENVIRON, ("*",))
    with pytest.raises(TemplateError) as info:
        renderer.render({"a": [1, {"b": "{{ nope }}"}]}, CONTEXT, path=("request",))
    assert (info.value.path, info.value.message) == (("request", "a", 1, "b"), "undefined: 'nope' is undefined")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ nope }}", "undefined: 'nope' is undefined"),
        ("{{ vars.nope }}", "undefined: 'dict object' has no attribute 'nope'"),
        ("x{{ vars.nope }}y", "undefined: 'dict object' has no attribute 'nope'"),
        ("{{ [vars.nope] }}", "undefined: 'dict object' has no attribute 'nope'"),
        ("{{ vars.nope.deeper | default(1) }}", "undefined: 'dict object' has no attribute 'nope'"),
        (
            "{{ env.NOPE }}",
            "environment variable NOPE is not set: set it or use {{ env.NOPE | default('…') }}",
        ),
        ("{{ }}", "template syntax error: Expected an expression, got 'end of print statement'"),
        ("{% if %}", "template syntax error: Expected an expression, got 'end of statement block'"),
        ("{{ 1/0 }}", "template error: ZeroDivisionError: division by zero"),
    ],
)
def test_undefined_names_and_broken_templates_are_errors(source: str, message: str) -> None:
    assert error(source) == message


def test_default_filter_applies_to_unset_environment_variables() -> None:
    assert render("{{ env.NOPE | default('d') }}") == "d"
    assert render("{{ env.NOPE | default(7) }}") == 7
    assert render("{{ env.LIMIT | default(7) }}") == "50"


def test_env_allow_globs_are_case_sensitive() -> None:
    assert render("{{ env.LIMIT }}", allow=("LIM*",)) == "50"
    assert render("{{ env.REGION }}", allow=("LIM*", "REG?ON")) == "eu"
    assert error("{{ env.REGION }}", allow=("LIM*",)) == (
        "environment variable REGION is not allowed by env_allow (add it to env_allow)"
    )
    assert error("{{ env.Lower }}", allow=("LOWER", "low*")) == (
        "environment variable Lower is not allowed by env_allow (add it to env_allow)"
    )


NOT_ADMITTED = "environment variable REGION is not allowed by env_allow (add it to env_allow)"


@pytest.mark.parametrize(
    "source",
    [
        "{{ env.REGION }}",
        "{{ env['REGION'] }}",
        "{{ env.REGION | default('hidden') }}",  # taking the default would hide why REGION is ignored
        "{{ env.get('REGION', 'hidden') }}",
        "{{ env.REGION is defined }}",
        "prefix {{ env.REGION | d('x') }}",
    ],
)
def test_a_name_env_allow_does_not_admit_is_an_error_even_under_default(source: str) -> None:
    assert error(source, allow=()) == NOT_ADMITTED


def test_the_default_env_allow_admits_only_the_tools_own_variables() -> None:
    environ = {"INTUNED_WORKSPACE_ID": "ws", "INTUNED_BASE_URL": "http://b", "INTUNED_RUNS_ENV": "prod", "X": "1"}
    source = "{{ env.INTUNED_WORKSPACE_ID }} {{ env.INTUNED_BASE_URL }} {{ env.INTUNED_RUNS_ENV }}"
    assert render(source, allow=(), environ=environ) == "ws http://b prod"
    assert error("{{ env.X }}", allow=(), environ=environ) == (
        "environment variable X is not allowed by env_allow (add it to env_allow)"
    )
    # Admitted but unset: the other error, and there a default applies.
    assert error("{{ env.INTUNED_RUNS_ENV }}", allow=(), environ={}) == (
        "environment variable INTUNED_RUNS_ENV is not set: set it or use {{ env.INTUNED_RUNS_ENV | default('…') }}"
    )
    assert render("{{ env.INTUNED_RUNS_ENV | default('dev') }}", allow=(), environ={}) == "dev"


def credential_refusal(name: str) -> str:
    return (
        f"environment variable {name} is not allowed by env_allow: it looks like a credential, which a glob "
        f"never admits; use {{{{ secret('{name}') }}}} inside request (or list {name} by its exact name)"
    )


CREDENTIAL_NAMES = [
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "db_password",
    "LDAP_PASSWD",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "SSH_PRIVATE_PATH",
    "STRIPE_API_KEY",
    "MY_ACCESS_KEY_ID",
    "signing_key",
    "Refresh_Token_2",
]


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
@pytest.mark.parametrize("allow", [("*",), ("*_*", "AWS*", "*KEY*"), ()])
def test_credential_looking_names_are_never_admitted_by_a_glob(name: str, allow: tuple[str, ...]) -> None:
    environ = {name: "CANARY-credential-value"}
    message = error(f"{{{{ env.{name} | default('x') }}}}", allow=allow, environ=environ)
    assert message == credential_refusal(name)
    assert "CANARY" not in message


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_credential_looking_names_are_admitted_by_their_exact_name(name: str) -> None:
    environ = {name: "value-1"}
    assert render(f"{{{{ env.{name} }}}}", allow=("OTHER", name), environ=environ) == "value-1"
    # Not case-insensitively, and not by a pattern that happens to equal it but for case.
    assert error(f"{{{{ env.{name} }}}}", allow=(name.swapcase(),), environ=environ) == credential_refusal(name)


@pytest.mark.parametrize("name", ["KEYBOARD", "MONKEY", "KEY_ID", "REGION", "SORT_KEYS"])
def test_names_that_only_resemble_credentials_follow_the_globs(name: str) -> None:
    assert render(f"{{{{ env.{name} }}}}", allow=("*",), environ={name: "v"}) == "v"


@pytest.mark.parametrize(
    "source",
    [
        "{{ env.INTUNED_API_KEY }}",
        "{{ env['INTUNED_API_KEY'] }}",
        "{{ env.get('INTUNED_API_KEY') }}",
        "{{ env.INTUNED_API_KEY | default('x') }}",
        "{{ 'INTUNED_API_KEY' in env }}",
        "prefix {{ env.INTUNED_API_KEY }}",
    ],
)
def test_the_api_key_cannot_be_read_through_env(source: str) -> None:
    message = "env.INTUNED_API_KEY may not be read by templates: the API key stays out of runs"
    assert error(source) == message
    assert error(source, environ={}) == message  # set or not
    assert error(source, allow=("INTUNED_*",)) == message


@pytest.mark.parametrize("source", ["{{ env | dictsort }}", "{{ env.items() | list }}", "{{ env.values() | list }}"])
def test_env_is_read_by_name_only(source: str) -> None:
    # Bulk reads would pass secret() variables around the check that forbids reading them via env.
    assert error(source) == "env is read one variable at a time, as env.NAME"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{{ ''.__class__.__mro__ }}",
            "not allowed in templates: access to attribute '__class__' of 'str' object is unsafe.",
        ),
        (
            "{{ cycler.__init__.__globals__ }}",
            "not allowed in templates: access to attribute '__init__' of 'type' object is unsafe.",
        ),
        (
            "{{ lipsum.__globals__ }}",
            "not allowed in templates: access to attribute '__globals__' of 'function' object is unsafe.",
        ),
        (
            "{{ vars.__class__ }}",
            "not allowed in templates: access to attribute '__class__' of 'dict' object is unsafe.",
        ),
        ("{{ 'a' * 100000000 }}", "template result too large: '*' would make more than 1 MiB"),
        ("{{ [1] * 10000000 }}", "template result too large: '*' would make more than 1 MiB"),
        ("{{ 2 ** 100000 }}", "exponent too large"),
        (
            "{{ range(10**9) }}",
            "template error: OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).",
        ),
        (
            "{% for i in range(10**9) %}{% endfor %}",
            "template error: OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).",
        ),
        ("{{ config }}", "undefined: 'config' is undefined"),
        (
            "{{ self }}",
            "the expression gives a TemplateReference, not a string, number, boolean, null, list or mapping",
        ),
    ],
)
def test_sandbox_escapes_are_clean_errors(source: str, message: str) -> None:
    assert error(source) == message


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("{{ range(3) }}", "range"),
        ("{{ cycler }}", "type"),
        ("{{ joiner }}", "type"),
        ("{{ namespace(a=1) }}", "Namespace"),
        ("{{ vars.items() }}", "dict_items"),
        ("{{ lipsum }}", "function"),
        ("{{ [range(2)] }}", "range"),
    ],
)
def test_single_expressions_must_give_json_values(source: str, kind: str) -> None:
    assert error(source) == f"the expression gives a {kind}, not a string, number, boolean, null, list or mapping"


# -- secrets ---------------------------------------------------------------------------------------


def test_secret_gives_a_placeholder_in_the_displayed_view() -> None:
    renderer = Renderer({}, ("*",))
    value = renderer.render("Bearer {{ secret('HOOK_TOKEN') }}", CONTEXT, secrets_allowed=True)
    assert value == "Bearer (secret:HOOK_TOKEN)"
    assert renderer.secrets_used == {"HOOK_TOKEN"}
    assert renderer.render("{{ secret('PROXY_URL') }}", CONTEXT, secrets_allowed=True) == "(secret:PROXY_URL)"


def test_secret_gives_the_value_only_in_the_real_view() -> None:
    displayed = Renderer({"HOOK_TOKEN": "tok-123456"}, ("*",))
    real = displayed.with_secrets()
    source = "Bearer {{ secret('HOOK_TOKEN') }}"
    assert displayed.render(source, CONTEXT, secrets_allowed=True) == "Bearer (secret:HOOK_TOKEN)"
    assert real.render(source, CONTEXT, secrets_allowed=True) == "Bearer tok-123456"
    assert displayed.render(source, CONTEXT, secrets_allowed=True) == "Bearer (secret:HOOK_TOKEN)"  # no mixing


def test_unset_secret_fails_only_in_the_real_view() -> None:
    displayed = Renderer({"EMPTY": ""}, ("*",))
    assert displayed.render("{{ secret('NOPE') }}", CONTEXT, secrets_allowed=True) == "(secret:NOPE)"
    real = displayed.with_secrets()
    for name in ("NOPE", "EMPTY"):
        with pytest.raises(TemplateError) as info:
            real.render(f"{{{{ secret('{name}') }}}}", CONTEXT, secrets_allowed=True)
        assert info.value.message == f"secret {name} is not set"


def test_secret_outside_request_is_an_error() -> None:
    assert error("{{ secret('X') }}", secrets=False) == "secret() may only be used inside request"


@pytest.mark.parametrize(
    "source",
    [
        "{% if secret('X') %}a{% endif %}",
        "{% set s = secret('X') %}{{ s }}",
        "{% for c in secret('X') %}{{ c }}{% endfor %}",
    ],
)
def test_secret_in_statements_is_an_error(source: str) -> None:
    assert error(source) == "secret() may only be used inside {{ }} expressions"


def test_secret_name_must_be_a_string() -> None:
    assert error("{{ secret(1) }}") == "secret() takes the name of an environment variable, as a string"


# -- seen through the command ----------------------------------------------------------------------


def _run(request: str) -> str:
    return f"""
    runs:
      - name: x
        project: p
        request:
          api: a
          {request}
    """


def test_types_survive_into_the_rendered_request(repo: Repo, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LIMIT", "50")
    repo.write("intuned-runs.yaml", "vars: {limit: 50}\nenv_allow: [LIMIT]\n")
    repo.write(
        "runs.d/a.yaml",
        _run('parameters: {a: "{{ vars.limit }}", b: "{{ env.LIMIT }}", c: "n={{ vars.limit }}", d: "50"}'),
    )
    result = repo.cli("render")
    assert (result.code, result.err) == (0, "")
    assert result.out_lines[-5:] == [
        "  parameters:",
        "    a: 50",
        "    b: '50'",
        "    c: n=50",
        "    d: '50'",
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            'parameters: {v: "{{ vars.nope }}"}',
            "runs.d/a.yaml:6:23: error: request.parameters.v: undefined: 'dict object' has no attribute 'nope'",
        ),
        (
            'parameters: {v: "{{ env.NOT_SET }}"}',
            "runs.d/a.yaml:6:23: error: request.parameters.v: environment variable NOT_SET is not allowed by "
            "env_allow (add it to env_allow)",
        ),
        (
            "parameters: {v: \"{{ ''.__class__.__mro__ }}\"}",
            "runs.d/a.yaml:6:23: error: request.parameters.v: not allowed in templates: "
            "access to attribute '__class__' of 'str' object is unsafe.",
        ),
        (
            'parameters: {v: "{{ range(3) }}"}',
            "runs.d/a.yaml:6:23: error: request.parameters.v: the expression gives a range, "
            "not a string, number, boolean, null, list or mapping",
        ),
        (
            'parameters: {v: "{{ env.INTUNED_API_KEY }}"}',
            "runs.d/a.yaml:6:23: error: request.parameters.v: "
            "env.INTUNED_API_KEY may not be read by templates: the API key stays out of runs",
        ),
        (
            "parameters: {v: \"{% if secret('A') %}x{% endif %}\"}",
            "runs.d/a.yaml:6:23: error: request.parameters.v: secret() may only be used inside {{ }} expressions",
        ),
    ],
)
def test_template_errors_are_one_line_at_their_file_line(
    repo: Repo, clean_env: pytest.MonkeyPatch, text: str, line: str
) -> None:
    clean_env.setenv("INTUNED_API_KEY", "CANARY-key-0001")
    repo.write("runs.d/a.yaml", _run(text))
    result = repo.cli("validate")
    assert (result.code, result.out_lines, result.err) == (1, [line], "")


def test_api_key_read_in_a_branch_not_taken_is_still_an_error(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", _run("parameters: {v: \"{{ 'x' if true else env.INTUNED_API_KEY }}\"}"))
    result = repo.cli("validate")
    assert result.out_lines == [
        "runs.d/a.yaml:6:44: error: env.INTUNED_API_KEY may not be read by templates: the API key stays out of runs"
    ]
    assert result.code == 1


@pytest.mark.parametrize(
    ("field", "line"),
    [
        ("name: \"{{ secret('X') }}\"", "runs.d/a.yaml:2:11: error: name: secret() may only be used inside request"),
        (
            "labels: {a: \"{{ secret('X') }}\"}",
            "runs.d/a.yaml:2:17: error: labels.a: secret() may only be used inside request",
        ),
        (
            "matrix: {a: [\"{{ secret('X') }}\"]}",
            "runs.d/a.yaml:2:18: error: matrix.a[0]: secret() may only be used inside request",
        ),
    ],
)
def test_secret_outside_request_is_an_error_at_its_line(repo: Repo, field: str, line: str) -> None:
    repo.write("runs.d/a.yaml", f"runs:\n  - {field}\n    project: p\n    request: {{api: a, parameters: {{}}}}\n")
    if not field.startswith("name"):
        repo.write(
            "runs.d/a.yaml",
            f"runs:\n  - {field}\n    name: x\n    project: p\n    request: {{api: a, parameters: {{}}}}\n",
        )
    result = repo.cli("validate")
    assert (result.code, result.out_lines) == (1, [line])


def test_secret_in_config_is_an_error(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "vars: {token: \"{{ secret('X') }}\"}\n")
    repo.write("runs.d/a.yaml", _run("parameters: {}"))
    result = repo.cli("validate")
    assert result.code == 1
    assert result.out_lines == [  # validate reports on stdout (docs/validation.md)
        "intuned-runs.yaml:1:15: error: vars.token: secret() may only be used inside request"
    ]


def test_reading_a_secret_variable_through_env_is_an_error(repo: Repo, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HOOK_TOKEN", "CANARY-hook-token-123")
    repo.write("intuned-runs.yaml", "env_allow: [HOOK_TOKEN]\n")  # admitted by its exact name, still refused
    repo.write(
        "runs.d/a.yaml",
        """
        runs:
          - name: reads
            project: p
            request:
              api: a
              parameters: {t: "{{ env.HOOK_TOKEN }}"}
        """,
    )
    repo.write(
        "runs.d/b.yaml",
        """
        runs:
          - name: uses
            project: p
            request:
              api: a
              parameters: {}
              sink:
                type: webhook
                url: https://hooks.example.com/x
                headers: {Authorization: "Bearer {{ secret('HOOK_TOKEN') }}"}
        """,
    )
    result = repo.cli("validate")
    assert result.out_lines == [
        "runs.d/a.yaml:6:27: error: env.HOOK_TOKEN reads a variable that is used through secret(): "
        "use {{ secret('HOOK_TOKEN') }} inside request instead"
    ]
    assert result.code == 1


def test_reading_a_secret_variable_through_a_computed_env_name_is_an_error(
    repo: Repo, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HOOK_TOKEN", "CANARY-hook-token-123")
    repo.write("intuned-runs.yaml", "vars: {which: HOOK_TOKEN}\nenv_allow: [HOOK_TOKEN]\n")
    repo.write(
        "runs.d/a.yaml",
        """
        runs:
          - name: reads
            project: p
            request:
              api: a
              parameters: {t: "{{ env[vars.which] }}"}
              proxy: "{{ secret('HOOK_TOKEN') }}"
        """,
    )
    result = repo.cli("validate")
    assert result.out_lines == [
        "runs.d/a.yaml: error: env.HOOK_TOKEN reads a variable that is used through secret(): "
        "use {{ secret('HOOK_TOKEN') }} inside request instead"
    ]
    assert result.code == 1


def test_secret_refs_are_the_matches_of_the_pattern_with_its_word_boundary() -> None:
    # The word boundary is tested apart, for speed: these are the matches it stands for.
    pattern = re.compile(r"""\bsecret\(\s*(['"])([^'"\\]+)\1\s*\)""")
    pieces = ["secret(", "'", '"', ")", " ", "\n", "x", "_", "\u00e9", "1", "\\", ".", "\u0663"]
    rng = random.Random(7)
    texts = [
        "xsecret('secret(')')",
        "_secret('A') secret('B')",
        *("".join(rng.choices(pieces, k=12)) for _ in range(20_000)),
    ]
    for text in texts:
        assert [(m.span(), m[2]) for m in secret_refs(text)] == [(m.span(), m[2]) for m in pattern.finditer(text)], text
