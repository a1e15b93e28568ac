"""Validation of each rendered request against the pulled schema, in the words of docs/validation.md, plus the warnings
of docs/secrets.md (literal credentials, short secrets). End to end through `intuned-runs validate`, and the checker
on its own for what the command cannot show."""

from __future__ import annotations

import math

import pytest

from intuned_runs import schema
from intuned_runs.validation import Finding, RequestChecker
from tests.helpers import Repo

pytestmark = pytest.mark.usefixtures("clean_env")


def validate(repo: Repo, *args: str) -> tuple[int, list[str]]:
    result = repo.cli("validate", *args)
    assert "Traceback" not in result.out + result.err
    if result.out:
        assert result.err == ""
    return result.code, result.out_lines


def request_file(request: str) -> str:
    """One run whose request body is `request` (indented under `request:`)."""
    body = "\n".join("      " + line for line in request.strip("\n").splitlines())
    return f"runs:\n  - name: a\n    project: p\n    request:\n{body}\n"


# -- docs/validation.md messages -----------------------------------------------------------------------------


def test_the_spec_example_line(repo: Repo) -> None:
    repo.write(
        "runs.d/pricing.yaml",
        """
        defaults:
          project: pricing-scraper

        runs:
          - name: daily-us
            request:
              api: products/list
              parameters: {region: us}
          - name: export
            request:
              api: products/export
              parameters: {}
              sink:
                type: s3
                region: us-east-1
                accessKeyId: "{{ secret('AWS_KEY_ID') }}"
                secretAccessKey: "{{ secret('AWS_SECRET') }}"
        """,
    )
    # The address of a missing key is the mapping that lacks it: the sink, at 14:9.
    assert validate(repo) == (
        1,
        ["runs.d/pricing.yaml:14:9: error: request.sink.bucket: s3 sink is missing required 'bucket'"],
    )


@pytest.mark.parametrize(
    ("sink", "line"),
    [
        ("{type: ftp, url: x}", "runs.d/a.yaml:7:20: error: request.sink.type: must be one of webhook, s3"),
        ("{url: x}", "runs.d/a.yaml:7:13: error: request.sink.type: must be one of webhook, s3"),
        ("{type: 5}", "runs.d/a.yaml:7:20: error: request.sink.type: must be one of webhook, s3"),
        ("5", "runs.d/a.yaml:7:13: error: request.sink: must be an object (got integer)"),
    ],
)
def test_sink_type_selects_the_variant(repo: Repo, sink: str, line: str) -> None:
    repo.write("runs.d/a.yaml", request_file(f"api: a\nparameters: {{}}\nsink: {sink}"))
    assert validate(repo) == (1, [line])


def test_webhook_variant_problems_only(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file(
            """
api: a
parameters: {}
sink:
  type: webhook
  url: not-a-url-but-format-is-an-annotation
  headers: {X-Num: 5, Content-Type: application/json}
  apisToSend: []
  skipOnFail: "yes"
  bucket: b
"""
        ),
    )
    assert validate(repo) == (
        1,
        [
            "runs.d/a.yaml:11:21: error: request.sink.apisToSend: must have at least 1 item",
            "runs.d/a.yaml:10:26: error: request.sink.headers.X-Num: must be a string (got integer)",
            "runs.d/a.yaml:12:21: error: request.sink.skipOnFail: must be a boolean (true/false) (got string)",
            "runs.d/a.yaml:13:17: error: request.sink.bucket: unknown key 'bucket'",  # an s3 key, not webhook's
        ],
    )


def test_s3_sink_missing_every_required_key(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", request_file("api: a\nparameters: {}\nsink: {type: s3, url: x}"))
    assert validate(repo) == (
        1,
        [
            "runs.d/a.yaml:7:13: error: request.sink.bucket: s3 sink is missing required 'bucket'",
            "runs.d/a.yaml:7:13: error: request.sink.accessKeyId: s3 sink is missing required 'accessKeyId'",
            "runs.d/a.yaml:7:13: error: request.sink.secretAccessKey: s3 sink is missing required 'secretAccessKey'",
            "runs.d/a.yaml:7:13: error: request.sink.region: s3 sink is missing required 'region'",
            "runs.d/a.yaml:7:29: error: request.sink.url: unknown key 'url'",
        ],
    )


def test_runtime_auth_session_needs_auto_recreate_true(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file(
            """
api: a
parameters: {}
authSession:
  autoRecreate: false
  runtimeInput: {user: "{{ secret('PORTAL_USER') }}"}
"""
        ),
    )
    assert validate(repo) == (
        1,
        [
            "runs.d/a.yaml:8:23: error: request.authSession.autoRecreate: "
            "autoRecreate must be true for runtime-input AuthSessions"
        ],
    )


def test_credentials_auth_session_may_set_auto_recreate_false(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", request_file("api: a\nparameters: {}\nauthSession: {id: s, autoRecreate: false}"))
    assert validate(repo) == (0, [])


@pytest.mark.parametrize("auth", ["{}", "{checkAttempts: 2}", "{autoRecreate: true, proxy: null}"])
def test_auth_session_without_id_or_runtime_input(repo: Repo, auth: str) -> None:
    repo.write("runs.d/a.yaml", request_file(f"api: a\nparameters: {{}}\nauthSession: {auth}"))
    assert validate(repo) == (
        1,
        ["runs.d/a.yaml:7:20: error: request.authSession: needs 'id' (credentials) or 'runtimeInput' (runtime)"],
    )


def test_auth_session_known_keys_are_the_union_of_both_variants(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file("api: a\nparameters: {}\nauthSession: {id: s, runtimeInpt: {}, createAttempts: 1, proxy: null}"),
    )
    assert validate(repo) == (
        1,
        [
            "runs.d/a.yaml:7:41: error: request.authSession.runtimeInpt: "
            "unknown key 'runtimeInpt'; did you mean 'runtimeInput'?"
        ],
    )


def test_never_the_generic_any_of_message(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file("api: a\nparameters: {}\nauthSession: {runtimeInput: 5}\nsink: {type: s3}"),
    )
    code, lines = validate(repo)
    assert code == 1
    assert not [line for line in lines if "is not valid under any of the given schemas" in line]
    assert lines[0] == "runs.d/a.yaml:7:35: error: request.authSession.runtimeInput: must be an object (got integer)"


UNKNOWN_KEYS = "api: a\nparameters: {}\nsaveTrce: true\nretry: {maximumAttempt: 3}\ncompletelyDifferent: 1"
UNKNOWN_KEY_LINES = [
    "runs.d/a.yaml:7:17: error: request.saveTrce: unknown key 'saveTrce'; did you mean 'saveTrace'?",
    "runs.d/a.yaml:8:31: error: request.retry.maximumAttempt: "
    "unknown key 'maximumAttempt'; did you mean 'maximumAttempts'?",
    "runs.d/a.yaml:9:28: error: request.completelyDifferent: unknown key 'completelyDifferent'",
]


def test_unknown_keys_are_errors_with_the_closest_name(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", request_file(UNKNOWN_KEYS))
    assert validate(repo) == (1, UNKNOWN_KEY_LINES)


def test_unknown_keys_warn_makes_them_warnings_and_strict_errors_again(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "unknown_keys: warn\n")
    repo.write("runs.d/a.yaml", request_file(UNKNOWN_KEYS))
    warnings = [line.replace(": error: ", ": warning: ") for line in UNKNOWN_KEY_LINES]
    assert validate(repo) == (0, warnings)
    assert validate(repo, "--strict") == (1, UNKNOWN_KEY_LINES)


def test_unknown_keys_warn_for_a_field_newer_than_the_schema(repo: Repo) -> None:
    # authSession.saveTrace: known to Intuned's SDK, not to the packaged schema (docs/validation.md).
    repo.write("runs.d/a.yaml", request_file("api: a\nparameters: {}\nauthSession: {id: s, saveTrace: false}"))
    line = "runs.d/a.yaml:7:39: error: request.authSession.saveTrace: unknown key 'saveTrace'"
    assert validate(repo) == (1, [line])
    repo.write("intuned-runs.yaml", "environments: {next: {unknown_keys: warn}}\n")
    assert validate(repo) == (1, [line])
    assert validate(repo, "--env", "next") == (0, [line.replace(": error: ", ": warning: ")])


@pytest.mark.parametrize("value", ["warning", "'off'", "true", "[warn]"])
def test_unknown_keys_takes_error_or_warn(repo: Repo, value: str) -> None:
    repo.write("intuned-runs.yaml", f"unknown_keys: {value}\n")
    repo.write("runs.d/a.yaml", request_file("api: a\nparameters: {}"))
    assert validate(repo) == (1, ["intuned-runs.yaml:1:15: error: unknown_keys: must be error or warn"])


def test_no_unknown_key_warnings_in_free_maps(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file(
            """
api: a
parameters: {saveTrce: 1, nested: {apii: 2}, list: [{retry: 1}]}
sink:
  type: webhook
  url: https://hooks.example.com/x
  headers: {X-Anything: "{{ secret('HOOK_TOKEN') }}", Content-Type: application/json}
authSession:
  runtimeInput: {usernmae: "{{ secret('PORTAL_USER') }}", password: "{{ secret('PORTAL_PASSWORD') }}"}
"""
        ),
    )
    assert validate(repo) == (0, [])


FORMAT = "servers that check formats will reject it"


def test_a_failed_format_is_a_warning_never_an_error(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file(
            "api: a\nparameters: {}\nproxy: not a uri at all\n"
            "sink: {type: webhook, url: also not a url}\nauthSession: {id: s, proxy: '::'}"
        ),
    )
    lines = [
        f"runs.d/a.yaml:7:14: warning: request.proxy: 'not a uri at all' is not a URI; {FORMAT}",
        f"runs.d/a.yaml:9:35: warning: request.authSession.proxy: '::' is not a URI; {FORMAT}",
    ]
    assert validate(repo) == (0, lines)
    assert validate(repo, "--strict") == (1, [line.replace(": warning: ", ": error: ") for line in lines])


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ('""', f"'' is not a URI; {FORMAT}"),
        ('"http://proxy example:8080"', f"'http://proxy example:8080' is not a URI; {FORMAT}"),
        ("proxy.example.com/path", f"'proxy.example.com/path' is not a URI; {FORMAT}"),  # no scheme
        ("http://h/%zz", f"'http://h/%zz' is not a URI; {FORMAT}"),
    ],
)
def test_uri_format_failures(repo: Repo, proxy: str, message: str) -> None:
    repo.write("runs.d/a.yaml", request_file(f"api: a\nparameters: {{}}\nproxy: {proxy}"))
    assert validate(repo) == (0, [f"runs.d/a.yaml:7:14: warning: request.proxy: {message}"])


@pytest.mark.parametrize(
    "proxy",
    ["http://proxy.example:8080", "socks5://u:p%40ss@[::1]:1080/", "null", "\"{{ secret('PROXY_URL') }}\""],
)
def test_uris_and_secrets_pass_the_format(repo: Repo, proxy: str) -> None:
    # A secret's value is not known while validating: its placeholder is not judged.
    repo.write("runs.d/a.yaml", request_file(f"api: a\nparameters: {{}}\nproxy: {proxy}"))
    code, lines = validate(repo)
    assert code == 0
    assert not [line for line in lines if "URI" in line]


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("parameters: {}", "runs.d/a.yaml:5:7: error: request.api: request is missing required 'api'"),
        ("api: a", "runs.d/a.yaml:5:7: error: request.parameters: request is missing required 'parameters'"),
        ("api: 1\nparameters: {}", "runs.d/a.yaml:5:12: error: request.api: must be a string (got integer)"),
        ("api: a\nparameters: []", "runs.d/a.yaml:6:19: error: request.parameters: must be an object (got list)"),
        (
            'api: a\nparameters: {}\nrequestTimeout: "600"',
            "runs.d/a.yaml:7:23: error: request.requestTimeout: must be an integer (got string)",
        ),
        (
            "api: a\nparameters: {}\nrequestTimeout: 1.5",
            "runs.d/a.yaml:7:23: error: request.requestTimeout: must be an integer (got number)",
        ),
        (
            "api: a\nparameters: {}\nretry: {maximumAttempts: 0}",
            "runs.d/a.yaml:7:32: error: request.retry.maximumAttempts: must be at least 1",
        ),
        (
            "api: a\nparameters: {}\nsaveTrace: 'false'",
            "runs.d/a.yaml:7:18: error: request.saveTrace: must be a boolean (true/false) (got string)",
        ),
        (
            "api: a\nparameters: {}\nproxy: 5",
            "runs.d/a.yaml:7:14: error: request.proxy: must be a string or null (got integer)",
        ),
        (
            "api: a\nparameters: {1: x}",
            "runs.d/a.yaml:6:23: error: request.parameters.1: key 1 must be a string: quote it",
        ),
        (
            "api: a\nparameters: {limit: .inf}",
            "runs.d/a.yaml:6:27: error: request.parameters.limit: must be a finite number: JSON has no Infinity or NaN",
        ),
        ("[1]", "runs.d/a.yaml:5:7: error: request: must be a mapping (got list)"),
    ],
)
def test_schema_problems(repo: Repo, body: str, line: str) -> None:
    repo.write("runs.d/a.yaml", request_file(body))
    assert validate(repo) == (1, [line])


def test_every_problem_is_reported_before_exiting(repo: Repo) -> None:
    repo.write("runs.d/a.yaml", request_file("api: 1\nparameters: {}"))
    repo.write("runs.d/b/c.yaml", "runs: [\n")
    repo.write("runs.d/d.yaml", request_file("api: d\nparameters: {}\nsaveTrce: true").replace("name: a", "name: d"))
    repo.write("runs.d/e.yaml", request_file("api: e").replace("name: a", "name: e"))
    assert validate(repo) == (
        1,
        [
            "runs.d/a.yaml:5:12: error: request.api: must be a string (got integer)",
            "runs.d/b/c.yaml:2:1: error: invalid YAML: did not find expected node content",
            "runs.d/d.yaml:7:17: error: request.saveTrce: unknown key 'saveTrce'; did you mean 'saveTrace'?",
            "runs.d/e.yaml:5:7: error: request.parameters: request is missing required 'parameters'",
        ],
    )


def test_strict_turns_warnings_into_errors(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "unknown_keys: warn\n")
    repo.write("runs.d/a.yaml", request_file("api: a\nparameters: {country: NO, flag: yes}\nsaveTrce: true"))
    warning_lines = [
        "runs.d/a.yaml:6:29: warning: request.parameters.country: unquoted 'NO' is the string 'NO' in "
        "YAML 1.2, not a boolean: quote it, or write true/false",
        "runs.d/a.yaml:6:39: warning: request.parameters.flag: unquoted 'yes' is the string 'yes' in "
        "YAML 1.2, not a boolean: quote it, or write true/false",
        "runs.d/a.yaml:7:17: warning: request.saveTrce: unknown key 'saveTrce'; did you mean 'saveTrace'?",
    ]
    assert validate(repo) == (0, warning_lines)
    assert validate(repo, "--strict") == (1, [line.replace(": warning: ", ": error: ") for line in warning_lines])


def test_warnings_alone_exit_0_without_the_summary(repo: Repo) -> None:
    repo.write("intuned-runs.yaml", "unknown_keys: warn\n")
    repo.write("runs.d/a.yaml", request_file("api: a\nparameters: {}\nsaveTrce: true"))
    result = repo.cli("validate")
    assert (result.code, result.err) == (0, "")
    assert len(result.out_lines) == 1


# -- literal credentials and short secrets (docs/secrets.md) -----------------------------------------------

LITERAL = "looks like a literal credential: use {{ secret('NAME') }} and set NAME in the environment"
PROXY = "proxy URL holds a literal password: use {{ secret('NAME') }} for the URL"


def test_literal_credentials_are_warnings(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file(
            """
api: a
parameters: {password: literal-in-parameters-is-fine}
proxy: http://user:pa55word@proxy.example:8080
sink:
  type: s3
  bucket: b
  region: r
  accessKeyId: AKIAEXAMPLE
  secretAccessKey: wJalrXUtnFEMI
authSession:
  runtimeInput: {username: bob, password: "{{ secret('PORTAL_PASSWORD') }}"}
  proxy: http://u:pw@proxy.example:1
"""
        ),
    )
    assert validate(repo) == (
        0,
        [
            f"runs.d/a.yaml:13:26: warning: request.sink.secretAccessKey: {LITERAL}",
            f"runs.d/a.yaml:12:22: warning: request.sink.accessKeyId: {LITERAL}",
            f"runs.d/a.yaml:15:34: warning: request.authSession.runtimeInput.username: {LITERAL}",
            f"runs.d/a.yaml:7:14: warning: request.proxy: {PROXY}",
            f"runs.d/a.yaml:16:16: warning: request.authSession.proxy: {PROXY}",
        ],
    )


def test_literal_authorization_header_is_a_warning(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file(
            """
api: a
parameters: {}
sink:
  type: webhook
  url: https://hooks.example.com/x
  headers: {Authorization: Bearer abc123, Content-Type: application/json, X-Signed: "{{ secret('SIG') }}"}
"""
        ),
    )
    assert validate(repo, "--strict") == (
        1,
        [f"runs.d/a.yaml:10:34: error: request.sink.headers.Authorization: {LITERAL}"],
    )


def test_proxy_without_password_or_from_a_secret_is_fine(repo: Repo) -> None:
    repo.write(
        "runs.d/a.yaml",
        request_file(
            "api: a\nparameters: {}\nproxy: http://proxy.example:8080\n"
            "authSession: {id: s, proxy: \"{{ secret('PROXY_URL') }}\"}"
        ),
    )
    assert validate(repo) == (0, [])


def test_short_secret_values_are_warnings(repo: Repo, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SHORT", "abc12")
    clean_env.setenv("LONG_ENOUGH", "abc123")
    clean_env.setenv("EMPTY", "")
    repo.write(
        "runs.d/a.yaml",
        request_file(
            "api: a\nparameters: {}\nproxy: \"{{ secret('SHORT') }}\"\n"
            "authSession: {runtimeInput: {a: \"{{ secret('LONG_ENOUGH') }}\", b: \"{{ secret('EMPTY') }}\"}}"
        ),
    )
    assert validate(repo) == (
        0,
        [
            "runs.d/a.yaml:2:1: warning: request: secret SHORT is shorter than 6 characters, "
            "so output redaction cannot mask it"
        ],
    )


def test_a_short_secret_only_failing_runs_use_is_addressed_in_their_file(
    repo: Repo, clean_env: pytest.MonkeyPatch
) -> None:
    # No run that loaded uses it, so the warning points into the file's text (kept for it).
    clean_env.setenv("SHORT", "abc12")
    repo.write("runs.d/a.yaml", request_file("api: a\nparameters: {}\nretry: 3\nproxy: \"{{ secret('SHORT') }}\""))
    repo.write("runs.d/b.yaml", request_file("api: b\nparameters: {}").replace("name: a", "name: b"))
    assert validate(repo) == (
        1,
        [
            "runs.d/a.yaml:7:14: error: request.retry: must be an object (got integer)",
            "runs.d/a.yaml:8:18: warning: secret SHORT is shorter than 6 characters, "
            "so output redaction cannot mask it",
        ],
    )


# -- the checker on its own ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checker() -> RequestChecker:
    return RequestChecker(schema.load())


def test_checker_addresses_missing_keys_at_their_mapping(checker: RequestChecker) -> None:
    findings = checker.check({"api": "a", "parameters": {}, "sink": {"type": "s3", "bucket": "b", "region": "r"}})
    assert findings == [
        Finding(
            ("request", "sink", "accessKeyId"),
            ("request", "sink"),
            "error",
            "s3 sink is missing required 'accessKeyId'",
        ),
        Finding(
            ("request", "sink", "secretAccessKey"),
            ("request", "sink"),
            "error",
            "s3 sink is missing required 'secretAccessKey'",
        ),
    ]


def test_checker_accepts_a_full_valid_request(checker: RequestChecker) -> None:
    request = {
        "api": "products/list",
        "parameters": {"anything": [1, {"x": None}]},
        "proxy": None,
        "saveTrace": False,
        "requestTimeout": 600,
        "retry": {"maximumAttempts": 3},
        "authSession": {"id": "s", "autoRecreate": True, "checkAttempts": 3, "createAttempts": 3},
        "sink": {
            "type": "s3",
            "bucket": "b",
            "region": "r",
            "accessKeyId": "(secret:A)",
            "secretAccessKey": "(secret:B)",
            "prefix": "p/",
            "skipOnFail": True,
            "apisToSend": ["x"],
            "endpoint": "https://s3.example",
            "forcePathStyle": True,
        },
    }
    assert checker.check(request) == []


def test_checker_reports_non_json_values(checker: RequestChecker) -> None:
    findings = checker.check({"api": "a", "parameters": {"n": math.nan, "deep": [{2: "x"}]}})
    assert findings == [
        Finding(
            ("request", "parameters", "n"),
            ("request", "parameters", "n"),
            "error",
            "must be a finite number: JSON has no Infinity or NaN",
        ),
        Finding(
            ("request", "parameters", "deep", 0, "2"),
            ("request", "parameters", "deep", 0, "2"),
            "error",
            "key 2 must be a string: quote it",
        ),
    ]
