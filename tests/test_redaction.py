"""The redactor (docs/secrets.md, defence in depth): secret values of 6+ characters and their JSON-escaped,
percent-encoded and base64 forms become `***` in everything written."""

from __future__ import annotations

import base64
import io
import json
import re
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


# -- encodings of the JSON-escaped form (a server echoing the request body encodes the body's text) ---------

ECHOED = 'p@ss"w/rd+=&%Z9x'  # the case of docs/secrets.md: `"` is escaped in the body, `+=&%/` get encoded


def _escaped_forms(value: str) -> list[str]:
    """What an echoing server may send back, derived independently of the redactor."""
    texts = [value, json.dumps(value)[1:-1], json.dumps(json.dumps(value)[1:-1])[1:-1]]
    found = []
    for text in texts:
        raw = text.encode()
        lower = re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote(text, safe=""))  # `%2f` as some encoders write
        found += [quote(text, safe=""), quote_plus(text), lower, raw.hex(), raw.hex().upper()]
        for prefix in (b"", b"{", b'{"'):  # every alignment: 0, 1 and 2 bytes before the value
            for suffix in (b"", b"}", b'"}'):
                body = prefix + raw + suffix
                found += [
                    base64.b64encode(body).decode(),
                    base64.b64encode(body).decode().rstrip("="),
                    base64.urlsafe_b64encode(body).decode(),
                    base64.urlsafe_b64encode(body).decode().rstrip("="),
                ]
    return found


@pytest.mark.parametrize("value", [ECHOED, 'CANARY-pä"ss\\word/1', "key-7Hq2Zr9"])
def test_every_encoding_of_every_escaped_form_is_masked(value: str) -> None:
    redactor = Redactor([value])
    for form in _escaped_forms(value):
        redacted = redactor(f"error: {form} was rejected")
        assert MASK in redacted, form
        # No 6 characters in a row of the encoding of the value itself survive.
        for text in (value, json.dumps(value)[1:-1]):
            for encoded in (text.encode().hex(), quote(text, safe="")):
                assert encoded not in redacted


def test_the_whole_echoed_body_base64_encoded_is_masked() -> None:
    body = json.dumps({"api": "a", "proxy": ECHOED, "parameters": {}}).encode()
    assert json.dumps(ECHOED)[1:-1].encode() in body  # the body holds the escaped form
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(body).decode()
        redacted = Redactor([ECHOED])(json.dumps({"message": f"bad body {encoded}"}))
        [kept] = [part for part in redacted.split('"') if part.startswith("bad body ")]
        before, after = kept.removeprefix("bad body ").split(MASK)
        # What is left decodes to the text around the value: at most 2 bytes of it on either side.
        assert len(encoded) - len(before) - len(after) >= 4 * (len(json.dumps(ECHOED)) - 6) // 3


def test_hex_of_the_api_key_is_masked_in_both_cases() -> None:
    key = "CANARY-api-key-999"
    redactor = Redactor([key])
    assert redactor(f"id={key.encode().hex()}") == f"id={MASK}"
    assert redactor(f"id={key.encode().hex().upper()}") == f"id={MASK}"


def test_many_values_in_one_pattern_each_masked_longest_first() -> None:
    values = [f"secret-value-{i:03d}" for i in range(200)]
    redactor = Redactor(values)
    line = " ".join(values[::7]) + " secret-value-0420 secret-value-00"
    assert redactor(line) == " ".join([MASK] * len(values[::7])) + f" {MASK}0 secret-value-00"


def test_a_long_multi_line_secret_is_masked_in_every_form() -> None:
    pem = (
        "-----BEGIN PRIVATE KEY-----\n"
        + base64.encodebytes(bytes(range(256)) * 4).decode()
        + "-----END PRIVATE KEY-----\n"
    )
    redactor = Redactor([pem])
    for form in (
        pem,
        json.dumps(pem)[1:-1],
        quote(pem, safe=""),
        pem.encode().hex(),
        base64.b64encode(pem.encode()).decode(),
    ):
        assert redactor(f"<{form}>") == f"<{MASK}>"
