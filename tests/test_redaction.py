"""The redactor (docs/secrets.md, defence in depth): secret values of 6+ characters and their JSON-escaped,
percent-encoded and base64 forms become `***` in everything written."""

from __future__ import annotations

import base64
import io
import json
from urllib.parse import quote, quote_plus

import pytest

from intuned_runs.redaction import MASK, NO_REDACTION, Redactor
from intuned_runs.report.output import Output

SECRET = 'CANARY-s3cr3t/pr"oxy é+&'


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        quote(SECRET, safe=""),
        quote(SECRET),
        quote_plus(SECRET),
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(SECRET.encode()).decode().rstrip("="),
    ],
)
def test_every_form_of_the_value_is_masked(form: str) -> None:
    redacted = Redactor([SECRET])(f"before {form} after")
    assert redacted.startswith(f"before {MASK}")
    assert redacted.endswith(" after")
    assert form not in redacted


@pytest.mark.parametrize("value", [SECRET, "abcdef", "abcdefg", "abcdefgh", "CANARY-hook-token-123"])
@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"usr", b"user:", b"admin:"])
@pytest.mark.parametrize("suffix", [b"", b":", b":pw", b"@host:1"])
def test_base64_of_the_value_inside_a_longer_string_is_masked(value: str, prefix: bytes, suffix: bytes) -> None:
    # e.g. a Basic auth header, base64("user:" + password), or base64(password + ":" + …).
    encoded = base64.b64encode(prefix + value.encode() + suffix).decode()
    redacted = Redactor([value])(f"Authorization: Basic {encoded}")
    assert MASK in redacted
    assert base64.b64encode(value.encode()).decode().rstrip("=")[1:-2] not in redacted


def test_values_shorter_than_6_characters_are_not_masked() -> None:
    redactor = Redactor(["abc12", "", "abc123"])
    assert redactor("abc12 abc123") == f"abc12 {MASK}"
    assert redactor.values == frozenset({"abc123"})


def test_longest_form_wins_so_no_tail_is_left() -> None:
    redactor = Redactor(["secret-value", "secret-value-longer"])
    assert redactor("x secret-value-longer y secret-value z") == f"x {MASK} y {MASK} z"


def test_with_values_returns_a_new_redactor() -> None:
    first = Redactor(["first-secret"])
    second = first.with_values(["second-secret"])
    assert first("first-secret second-secret") == f"{MASK} second-secret"
    assert second("first-secret second-secret") == f"{MASK} {MASK}"


def test_no_redaction_passes_text_through() -> None:
    assert NO_REDACTION("anything at all") == "anything at all"
    assert Redactor()("CANARY") == "CANARY"


def test_regex_characters_in_values_are_literal() -> None:
    redactor = Redactor(["a.b*c+d?(e)"])
    assert redactor("a.b*c+d?(e) aXbbbcd") == f"{MASK} aXbbbcd"


def test_output_writes_through_the_redactor() -> None:
    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), redactor=Redactor(["CANARY-api-key-999"]))
    out.out("key=CANARY-api-key-999")
    out.err(json.dumps({"k": "CANARY-api-key-999"}))
    out.debug = True
    out.log("header x-api-key: CANARY-api-key-999")
    assert out.stdout.getvalue() == "key=***\n"  # type: ignore[attr-defined]
    assert out.stderr.getvalue() == '{"k": "***"}\ndebug: header x-api-key: ***\n'  # type: ignore[attr-defined]
