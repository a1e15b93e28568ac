"""The sandbox's bounds (docs/templating.md, Limits): depth, the size of what each filter, method, function and
operator makes, the work of loops and macros, invalid Unicode. Each hostile template is an error whose message
names what would have made it too large; templates just inside a bound still render. End-to-end cases, with
peak memory, are in tests/acceptance/test_hostile.py."""

from __future__ import annotations

from typing import Any

import pytest

from intuned_runs import bounds
from intuned_runs.templating import Renderer, TemplateError

MIB = 1024 * 1024
LARGE = "template result too large: {} would make more than 1 MiB"
DEEP = "template nests too deeply (more than 50 levels, or 16 nested loops): flatten it"
LONG = "template takes too long: its loops and macros do more work than a run file may"
DIGITS = "integer has more than 4,300 digits: quote it to keep it as text"


def render(source: str) -> Any:
    """A fresh renderer: its budget of work is that of one file."""
    return Renderer({}, ()).render_string(source, {"vars": {}, "x": {}}, secrets_allowed=True)


def error(source: str) -> str:
    with pytest.raises(TemplateError) as info:
        render(source)
    return info.value.message


SET_S = "{% set s = 'a' * 600000 %}"
SET_BIG = "{% set s = 'a' * 1000000 %}"


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        # filters
        ("{{ 'a'|center(10**9) }}", "filter 'center'"),
        ("{{ 'a'|center(width=10**9) }}", "filter 'center'"),
        ("{{ '%*s'|format(10**9, 'a') }}", "'%' formatting"),
        ("{{ '%1000000000s'|format('a') }}", "'%' formatting"),
        ("{{ '%.1000000000f'|format(1.5) }}", "'%' formatting"),
        ("{{ 'a'|indent(10**9) }}", "filter 'indent'"),
        ("{{ ('a\\n' * 400000)|indent(4) }}", "filter 'indent'"),
        ("{{ 'a\\na\\na'|indent('x' * 600000) }}", "filter 'indent'"),
        ("{{ ('a' * 600000)|wordwrap(1) }}", "filter 'wordwrap'"),
        ("{{ ('a ' * 1000)|wordwrap(1, wrapstring='x' * 2000) }}", "filter 'wordwrap'"),
        ("{{ ['a' * 600000, 'b' * 600000]|join }}", "join"),
        ("{{ range(100000)|map('string')|map('center', 20)|join(',') }}", "join"),
        ("{{ ('a' * 1000)|replace('a', 'b' * 2000) }}", "filter 'replace'"),
        ("{{ ('a' * 1000)|replace('', 'b' * 2000) }}", "filter 'replace'"),
        ("{{ [1]|batch(10**9, 'x')|list }}", "filter 'batch'"),
        ("{{ [1]|slice(10**9)|list }}", "filter 'slice'"),
        (SET_BIG + "{{ [s, s]|tojson }}", "filter 'tojson'"),
        (SET_BIG + "{{ [s, s]|pprint }}", "filter 'pprint'"),
        (SET_BIG + "{{ [s, s]|string }}", "filter 'string'"),
        (SET_BIG + "{{ {'a': s, 'b': s}|xmlattr }}", "filter 'xmlattr'"),
        # functions
        ("{{ lipsum(10**6) }}", "lipsum()"),
        ("{{ lipsum(5, max=10**9) }}", "lipsum()"),
        # str methods
        ("{{ '{:>1000000000}'.format(1) }}", "format()"),
        ("{{ '{:{w}}'.format(1, w=10**9) }}", "format()"),
        ("{{ '{x:>1000000000}'.format_map({'x': 1}) }}", "format()"),
        ("{{ ('{}' * 3).format('a' * 600000, 'b', 'c' * 600000) }}", "format()"),
        ("{{ 'a'.center(10**9) }}", "center()"),
        ("{{ 'a'.ljust(10**9) }}", "ljust()"),
        ("{{ 'a'.rjust(10**9) }}", "rjust()"),
        ("{{ '1'.zfill(10**9) }}", "zfill()"),
        ("{{ ('\\t' * 1000).expandtabs(10**6) }}", "expandtabs()"),
        ("{{ ','.join(['a' * 600000, 'b' * 600000]) }}", "join"),
        ("{{ ('a' * 1000).replace('a', 'b' * 2000) }}", "replace()"),
        ("{{ ('a' * 1000).translate({97: 'b' * 2000}) }}", "translate()"),
        # operators
        ("{{ 'a' * 10**9 }}", "'*'"),
        ("{{ 10**9 * 'a' }}", "'*'"),
        ("{{ ['a'] * 10**9 }}", "'*'"),
        ("{{ ['a' * 1000] * 2000 }}", "'*'"),
        ("{{ 'a' * (1024 * 1024 + 1) }}", "'*'"),
        (SET_S + "{{ s + s }}", "'+'"),
        ("{% set s = ['a' * 600000] %}{{ s + s }}", "'+'"),
        ("{{ '%1000000000d' % 1 }}", "'%' formatting"),
        ("{{ '%s%s' % ('a' * 600000, 'b' * 600000) }}", "'%' formatting"),
        ("{{ '%(a)s%(a)s' % {'a': 'a' * 600000} }}", "'%' formatting"),
        (SET_S + "{{ s ~ s }}", "'~'"),
        (SET_BIG + "{{ [s, s] ~ '' }}", "'~'"),
        # what a template outputs
        ("{% for i in range(100000) %}0123456789abcdefghij{% endfor %}", "the value"),
        ("{% for i in range(100000) %}{{ 'x' * 20 }}{% endfor %}", "the value"),
        (SET_BIG + "{{ [s, s] }}", "the value"),
        (SET_BIG + "x{{ [s, s] }}", "the value"),
        (SET_BIG + "{{ {'a': s, 'b': s}.items() }}", "the value"),
        (SET_BIG + "{% set ns = namespace(a=s, b=s) %}{{ ns }}", "the value"),
        ("{% macro m() %}{{ 'a' * 600000 }}{% endmacro %}{{ m() }}{{ m() }}", "the value"),
    ],
)
def test_every_way_to_a_large_value_is_refused_before_it_is_made(source: str, culprit: str) -> None:
    assert error(source) == LARGE.format(culprit)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * (1024 * 1024) }}",
        "{{ 'a'|center(1024 * 1024) }}",
        "{{ ('a' * 500000)|indent(1) }}",
        "{{ ['a' * 500000, 'b' * 500000]|join }}",
        "{{ '%*s'|format(1000000, 'a') }}",
        "{{ '{:>1000000}'.format(1) }}",
        "{{ lipsum(100) }}",
    ],
)
def test_values_up_to_one_mib_render(source: str) -> None:
    value = render(source)
    assert isinstance(value, str) and len(value) <= MIB


@pytest.mark.parametrize(
    "source",
    [
        "{{ " + "[" * 51 + "]" * 51 + " }}",
        "{{ " + "[" * 80 + "]" * 80 + " }}",
        "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",
        "{{ " + "{'a': " * 51 + "1" + "}" * 51 + " }}",
        "{{ " + "not " * 51 + "1 }}",
        "{{ " + "- " * 51 + "1 }}",
        "{% if 1 %}" * 51 + "x" + "{% endif %}" * 51,
        "{% for i in [1] %}" * 17 + "x" + "{% endfor %}" * 17,
        "{% for i in [1] %}" * 51 + "x" + "{% endfor %}" * 51,
        "{{ " + " + ".join(["1"] * 200) + " }}",
        "{{ 1" + "|abs" * 200 + " }}",
        "{{ x" + ".a" * 200 + " }}",
        "{{ " + "1 if x else " * 200 + "1 }}",
        "{{ " + "[" * 5000 + "]" * 5000 + " }}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",  # recursion at run time
    ],
)
def test_deep_nesting_is_an_error_not_a_recursion_error(source: str) -> None:
    assert error(source) == DEEP


def test_nesting_up_to_the_limit_renders() -> None:
    assert render("{{ " + "[" * 50 + "]" * 50 + " }}") is not None
    assert render("{% if 1 %}" * 50 + "x" + "{% endif %}" * 50) == "x"
    assert render("{% for i in [1] %}" * 16 + "x" + "{% endfor %}" * 16) == "x"


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        SET_BIG + "{% for i in range(100000) %}{% for j in range(100000) %}{% if 'b' in s %}{% endif %}"
        "{% endfor %}{% endfor %}",
        SET_BIG + "{% for i in range(100000) %}{% set t = s[1:] %}{% endfor %}",
        SET_BIG + "{% for i in range(100000) %}{% set t = s|upper %}{% endfor %}",
        SET_BIG + "{% for i in range(100000) %}{% set t = s.count('b') %}{% endfor %}",
        "{% set ns = namespace(s='') %}{% for i in range(100000) %}{% set ns.s = ns.s ~ 'abcdefghij' %}{% endfor %}",
        "{% macro m() %}{% for i in range(100000) %}{% endfor %}{% endmacro %}"
        "{% for i in range(100000) %}{{ m() }}{% endfor %}",
    ],
)
def test_loops_and_macros_end_within_the_work_budget(source: str) -> None:
    assert error(source) == LONG


def test_the_work_budget_is_per_file() -> None:
    renderer = Renderer({}, ())
    loop = "{% for i in range(100000) %}{% endfor %}"
    for _ in range(3):  # 3 files, each well inside its budget
        renderer.start_file()
        for _ in range(10):
            assert renderer.render_string(loop, {}, secrets_allowed=False) == ""


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ '\\ud800' }}", "not valid Unicode: '\\ud800' at character 1 is a lone surrogate"),
        ("x{{ '\\udfff' }}", "not valid Unicode: '\\udfff' at character 2 is a lone surrogate"),
        ("{{ ['ok', 'a\\ud800'] }}", "not valid Unicode: '\\ud800' at character 2 is a lone surrogate"),
        ("{{ {'\\ud800': 1} }}", "not valid Unicode: '\\ud800' at character 1 is a lone surrogate"),
        ("{{ 2 ** 100000 }}", "exponent too large"),
        ("{{ (10 ** 60) ** 60 }}", "exponent too large"),
        (
            "{% set x = (2 ** 60) ** 60 %}{{ x * x * x * x }}",
            "template result too large: '*' would make a number of more than 8192 bits",
        ),
        ("{{ " + "9" * 5000 + " }}", f"template syntax error: {DIGITS}"),
        ("{{ 0x" + "f" * 3700 + " }}", f"template syntax error: {DIGITS}"),
    ],
)
def test_invalid_unicode_and_huge_numbers_are_errors(source: str, message: str) -> None:
    assert error(source) == message


def test_size_stops_counting_past_its_limit() -> None:
    shared = ["a" * 1000] * 100_000  # 100 MB of text, 800 kB of references
    assert bounds.MAX_VALUE < bounds.size(shared) < 2 * bounds.MAX_VALUE
