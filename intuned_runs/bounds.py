"""The sizes templates may make, and the work they may do (docs/templating.md, Limits).

`Budget` is what one file's templates may still do; `size` estimates a value's text without building it;
the other functions compute the size of what a filter, `str` method or operator would make from its
arguments, so the sandbox refuses a result that would be too large before it is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, ItemsView, KeysView, ValuesView
from typing import Any

from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace

MAX_VALUE = 1 << 20  # characters of one rendered value
MAX_FILE = 64 << 20  # characters of one file's rendered runs
# Work of one file's templates, in units of about a nanosecond: a character made or compared costs 1, a
# node of a loop's or macro's body 100 per step, a step 1,000. Measured: 5e9 units end in under 10 s.
MAX_WORK = 5_000_000_000
STEP_COST = 1_000
NODE_COST = 100
MAX_INT_BITS = 8192  # 2,466 digits: JSON output refuses integers over 4,300 digits
TOO_LARGE = "template result too large"
TOO_LONG = "template takes too long: its loops and macros do more work than a run file may"
# Filters whose text can be far larger than the size() of their input's references (`[s, s, s]|tojson`).
_STRINGIFY = frozenset({"pprint", "tojson", "string", "e", "escape", "forceescape", "urlencode", "xmlattr", "urlize"})


class LimitError(Exception):
    """A template past one of the bounds; templating turns it into a problem at the value's place."""


def too_large(culprit: str = "the value") -> LimitError:
    return LimitError(f"{TOO_LARGE}: {culprit} would make more than 1 MiB")


class Budget:
    """What the templates of one file may still do; the loader starts one per file."""

    def __init__(self) -> None:
        self.work = 0
        self.value = 0  # characters of the value being rendered

    def start_value(self) -> None:
        self.value = 0

    def spend(self, work: int) -> None:
        self.work += work
        if self.work > MAX_WORK:
            raise LimitError(TOO_LONG)

    def output(self, characters: int) -> None:
        """`characters` more of the value being rendered."""
        self.value += characters
        if self.value > MAX_VALUE:
            raise too_large()
        self.spend(characters)


def size(value: Any, limit: int = MAX_VALUE) -> int:
    """About how many characters `value` takes as text; stops counting once past `limit`."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, (bytes, bytearray)):
            total += 4 * len(item) + 3
        elif isinstance(item, (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Namespace):
            stack.append(dict(item._Namespace__attrs))
        else:  # floats, undefined, loop helpers, generators: their text is short
            total += 32
    return total


def ensure(total: int, culprit: str = "the value") -> None:
    if total > MAX_VALUE:
        raise too_large(culprit)


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def printf_size(template: str, args: Any) -> int:
    """An upper bound of the length of `template % args`, from its conversions' widths and arguments."""
    values = list(args) if isinstance(args, tuple) else [args]
    by_key = isinstance(args, dict)
    total = len(template)
    for match in _PRINTF.finditer(template):
        width, precision, kind = match.groups()
        if kind == "%":
            continue
        for part in (width, precision):
            if part == "*":
                total += abs(_int(values.pop(0) if values else 0))
            elif part:
                total += int(part)
        argument = args if by_key else (values.pop(0) if values else "")
        total += size(argument) + 330  # `%f` of 1e308 has 309 digits
        ensure(total, "'%' formatting")
    return total


class _SizedFields:
    """`str.format` with each field's widths checked before the field is padded."""

    made = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.made += sum(int(n) for n in re.findall(r"\d+", format_spec)) + size(value)
        ensure(self.made, "format()")
        return super().format_field(value, format_spec)  # type: ignore[misc]


class Formatter(_SizedFields, SandboxedFormatter):
    pass


class EscapeFormatter(_SizedFields, SandboxedEscapeFormatter):
    pass


def take(items: Any, separator: str = "") -> list[Any]:
    """The items of `items` (also an iterator), refused once they and the separators pass MAX_VALUE."""
    taken, total = [], 0
    for item in items:
        total += size(item) + len(separator)
        ensure(total, "join")
        taken.append(item)
    return taken


def binop_size(operator: str, left: Any, right: Any) -> None:
    if operator == "**" and isinstance(right, (int, float)):
        if abs(right) > 64 or (isinstance(left, int) and left.bit_length() * abs(right) > MAX_INT_BITS):
            raise LimitError("exponent too large")
    elif operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                ensure((len(seq) if isinstance(seq, str) else size(seq)) * max(count, 0), "'*'")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise LimitError(f"{TOO_LARGE}: '*' would make a number of more than {MAX_INT_BITS} bits")
    elif operator == "+" and isinstance(left, str) and isinstance(right, str):
        ensure(len(left) + len(right), "'+'")
    elif operator == "+" and isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        ensure(size(left) + size(right), "'+'")
    elif operator == "%" and isinstance(left, str):
        printf_size(left, right)


def _stringified(value: Any, *_: Any, **__: Any) -> int:
    return size(value)


def _lines(value: Any) -> int:
    return str(value).count("\n") + 1 if size(value) <= MAX_VALUE else MAX_VALUE


def _indent_size(s: Any, width: Any = 4, first: Any = False, blank: Any = False) -> int:
    pad = len(width) if isinstance(width, str) else _int(width, 4)
    return size(s) + _lines(s) * max(pad, 0)


def _wordwrap_size(
    s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *_: Any, **__: Any
) -> int:
    text = size(s)
    return text + (text // max(_int(width, 79), 1) + _lines(s)) * (len(str(wrapstring)) if wrapstring else 1)


def _replace_size(s: Any, old: Any, new: Any, count: Any = None) -> int:
    text, old, new = str(s), str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def lipsum_size(n: Any = 5, html: Any = True, min: Any = 20, max: Any = 100) -> int:
    return _int(n, 5) * (_int(max, 100) * 16 + 20)


def _width(s: str, width: Any = 0, *_: Any) -> int:
    return len(s) + _int(width)


def _expandtabs(s: str, tabsize: Any = 8) -> int:
    return len(s) + s.count("\t") * max(_int(tabsize, 8), 0)


def _translate(s: str, table: Any) -> int:
    longest = max((size(v) for v in table.values()), default=1) if isinstance(table, dict) else 1
    return len(s) * max(longest, 1)


STR_METHODS: dict[str, Callable[..., int]] = {
    "center": _width,
    "ljust": _width,
    "rjust": _width,
    "zfill": _width,
    "expandtabs": _expandtabs,
    "replace": lambda s, old, new, count=-1: _replace_size(s, old, new, count),
    "translate": _translate,
}


def filter_bounds() -> dict[str, Callable[..., int]]:
    """Filters whose result can be larger than their input: the size of the result, from their arguments
    (with the filters' own parameter names, so keyword arguments work; without the context or environment
    Jinja passes first to some)."""
    return {
        "center": lambda value, width=80: max(size(value), _int(width)),
        "format": lambda value, *args, **kwargs: printf_size(str(value), kwargs or tuple(args)),
        "indent": _indent_size,
        "wordwrap": _wordwrap_size,
        "replace": lambda s, old, new, count=None: _replace_size(s, old, new, count),
        "batch": lambda value, linecount, fill_with=None: _int(linecount) * (size(fill_with) + 2),
        "slice": lambda value, slices, fill_with=None: _int(slices) * (size(fill_with) + 2),
        **{name: _stringified for name in _STRINGIFY},
    }
