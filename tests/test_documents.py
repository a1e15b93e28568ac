"""YAML loading with addresses (docs/run-files.md): YAML 1.2 core scalars, duplicate keys, aliases, size, encoding,
paths that leave the repository. Library level; the end-to-end corpus is in test_cli_validate.py."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from intuned_runs import documents
from intuned_runs.documents import DocumentError, locate, locate_best, parse, plain_scalar, read_text
from intuned_runs.problems import Problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Only true/false (three spellings each) are booleans in the YAML 1.2 core schema.
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("NO", "NO"),
        ("no", "no"),
        ("yes", "yes"),
        ("Yes", "Yes"),
        ("on", "on"),
        ("OFF", "OFF"),
        ("y", "y"),
        ("~", None),
        ("null", None),
        ("NULL", None),
        ("", None),
        ("12", 12),
        ("-3", -3),
        ("+4", 4),
        ("0777", 777),  # YAML 1.1 read this as octal 511
        ("0o17", 15),
        ("0x1F", 31),
        ("0b101", "0b101"),  # no binary integers in 1.2
        ("1_000", "1_000"),  # no digit separators in 1.2
        ("12:30", "12:30"),  # no sexagesimal numbers in 1.2
        ("2001-12-14", "2001-12-14"),  # no timestamps
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("-.inf", -math.inf),
        (".Inf", math.inf),
    ],
)
def test_plain_scalars_follow_the_yaml_1_2_core_schema(text: str, expected: object) -> None:
    value = plain_scalar(text)
    assert value == expected
    assert type(value) is type(expected)


def test_nan_is_a_float() -> None:
    assert math.isnan(plain_scalar(".nan"))


def test_quoted_and_tagged_scalars() -> None:
    document = parse('a: "12"\nb: !!str 12\nc: !!float 3\nd: !!int "7"\ne: !!bool true\nf: !!null ""\n', "f.yaml")
    assert document.value == {"a": "12", "b": "12", "c": 3.0, "d": 7, "e": True, "f": None}
    assert type(document.value["c"]) is float
    assert document.warnings == []


def test_unquoted_yaml_1_1_booleans_warn_with_their_path() -> None:
    text = "runs:\n  - name: a\n    request:\n      parameters: {country: NO, x: 'yes', flag: on}\n"
    document = parse(text, "runs.d/a.yaml")
    assert document.value["runs"][0]["request"]["parameters"] == {"country": "NO", "x": "yes", "flag": "on"}
    assert document.warnings == [
        Problem(
            "runs.d/a.yaml",
            4,
            29,
            "warning",
            "runs[0].request.parameters.country",
            "unquoted 'NO' is the string 'NO' in YAML 1.2, not a boolean: quote it, or write true/false",
        ),
        Problem(
            "runs.d/a.yaml",
            4,
            49,
            "warning",
            "runs[0].request.parameters.flag",
            "unquoted 'on' is the string 'on' in YAML 1.2, not a boolean: quote it, or write true/false",
        ),
    ]


def test_empty_document_has_no_value() -> None:
    document = parse("# nothing but a comment\n", "f.yaml")
    assert document.value is None
    assert document.node is None


@pytest.mark.parametrize(
    ("text", "message", "line", "col"),
    [
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a'", 3, 1),
        ("a:\n  x: 1\n  x: 1\n", "duplicate key 'x'", 3, 3),
        ("1: a\n'1': b\n", None, None, None),  # 1 and "1" are different keys: no error
        ("? [a]\n: 1\n", "mapping keys must be scalars", 1, 3),
        ("a: &x [*x]\n", "recursive alias: an anchor may not contain itself", 1, 4),
        ("a: !!python/object:os.system x\n", "unsupported tag tag:yaml.org,2002:python/object:os.system for 'x'", 1, 4),
        ("a: !!int twelve\n", "unsupported tag tag:yaml.org,2002:int for 'twelve'", 1, 4),
        ("a: [1, 2\n", "invalid YAML: did not find expected ',' or ']'", 2, 1),
        ("a: 1\n---\nb: 2\n", "invalid YAML: but found another document", 2, 1),
        ("a: *nowhere\n", "invalid YAML: found undefined alias", 1, 4),
        ("a: b\x00\n", "invalid YAML: unacceptable character #x0000: control characters are not allowed", 1, 5),
    ],
)
def test_parse_errors_carry_their_address(text: str, message: str | None, line: int | None, col: int | None) -> None:
    if message is None:
        assert parse(text, "f.yaml").value == {1: "a", "1": "b"}
        return
    with pytest.raises(DocumentError) as info:
        parse(text, "f.yaml")
    assert (info.value.message, info.value.line, info.value.col) == (message, line, col)
    assert "\n" not in info.value.message


def _laughs(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_alias_expansions_beyond_the_limit_are_an_error() -> None:
    with pytest.raises(DocumentError) as info:
        parse(_laughs(5), "bomb.yaml")  # over a million node expansions
    assert info.value.message == "more than 10000 alias expansions: simplify the anchors"
    assert info.value.line is not None


def test_aliases_within_the_limit_are_expanded() -> None:
    document = parse(_laughs(3), "f.yaml")  # about 1,200 node expansions
    assert document.value["a2"] == [[["x"] * 10] * 10] * 10


def test_anchors_merge_nothing_but_repeat_the_value() -> None:
    document = parse("base: &b {api: a}\nruns:\n  - request: *b\n  - request: *b\n", "f.yaml")
    assert document.value["runs"] == [{"request": {"api": "a"}}, {"request": {"api": "a"}}]


def test_read_text_rejects_non_utf8_with_the_address_of_the_byte(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(DocumentError) as info:
        read_text(tmp_path, "f.yaml")
    assert (info.value.message, info.value.line, info.value.col) == ("file is not valid UTF-8: save it as UTF-8", 2, 7)


def test_read_text_size_limit_is_10_mib(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_bytes(b"#" * (documents.MAX_BYTES - 1) + b"\n")
    assert len(read_text(tmp_path, "ok.yaml")) == 10 * 1024 * 1024
    (tmp_path / "big.yaml").write_bytes(b"#" * documents.MAX_BYTES + b"\n")
    with pytest.raises(DocumentError) as info:
        read_text(tmp_path, "big.yaml")
    assert (info.value.message, info.value.line) == ("file is larger than 10 MiB: split it into several files", None)


def test_read_text_rejects_links_out_of_the_repository(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    outside = tmp_path / "outside.yaml"
    outside.write_text("runs: []\n")
    os.symlink(outside, root / "link.yaml")
    os.symlink("inside.yaml", root / "relative-link.yaml")
    (root / "inside.yaml").write_text("runs: []\n")
    with pytest.raises(DocumentError) as info:
        read_text(root, "link.yaml")
    assert info.value.message == "resolves outside the repository: move the file inside it or remove the link"
    assert read_text(root, "relative-link.yaml") == "runs: []\n"


def test_read_text_of_a_dangling_link(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.yaml", tmp_path / "dangling.yaml")
    with pytest.raises(DocumentError) as info:
        read_text(tmp_path, "dangling.yaml")
    assert info.value.message == "cannot read file: No such file or directory"


def test_locate_points_at_the_node_or_the_mapping_that_lacks_the_key() -> None:
    text = "runs:\n  - name: a\n    request:\n      sink: {type: s3}\n"
    node = parse(text, "f.yaml").node
    assert locate(node, ("runs", 0, "request", "sink", "type")) == (4, 20)
    assert locate(node, ("runs", 0, "request", "sink", "bucket")) == (4, 13)  # the sink mapping
    assert locate(node, ("runs", 3)) == (2, 3)  # the list, which has no item 3
    assert locate(None, ("runs",)) is None


def test_locate_best_prefers_the_deepest_match_then_the_first_layer() -> None:
    run = parse("name: a\nrequest:\n  api: x\n", "f.yaml").node
    defaults = parse("request:\n  retry:\n    maximumAttempts: 0\n", "f.yaml").node
    assert locate_best((run, defaults), ("request", "retry", "maximumAttempts")) == (3, 22)
    assert locate_best((run, defaults), ("request", "api")) == (3, 8)
    assert locate_best((run, defaults), ("request",)) == (3, 3)  # tie: the run's own node wins
