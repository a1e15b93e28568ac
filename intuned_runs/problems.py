"""A Problem is one addressed finding: FILE:LINE:COL, severity, JSON path, message (docs/validation.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from msgspec import Struct

Severity = Literal["error", "warning"]


class Problem(Struct, frozen=True, order=True):
    file: str  # relative to the repository, or `<flag --var>` / `<env NAME>`
    line: int | None
    col: int | None
    severity: Severity
    path: str  # like `request.sink.apisToSend[0]`; "" for a problem of a whole file
    message: str

    def as_text(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.col or 1}"
        path = f"{self.path}: " if self.path else ""
        line = f"{where}: {self.severity}: {path}{self.message}"
        return line.replace("\r", "\\r").replace("\n", "\\n")  # one problem, one line (a key may hold both)

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
        }


def json_path(parts: tuple[str | int, ...]) -> str:
    """('request', 'sink', 'apisToSend', 0) -> 'request.sink.apisToSend[0]'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def strictly(problems: Iterable[Problem], strict: bool) -> list[Problem]:
    """--strict makes warnings errors."""
    if not strict:
        return list(problems)
    return [Problem(p.file, p.line, p.col, "error", p.path, p.message) for p in problems]


def errors_in(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def json_type(value: object) -> str:
    """The kind of a loaded value, in the words of a run file's author: null, boolean, integer, number,
    string, list, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


# The same kinds as a JSON file (the state, the journal) names them.
JSON_FILE_WORDS = {
    "null": "null",
    "boolean": "a boolean",
    "integer": "a number",
    "number": "a number",
    "string": "a string",
    "list": "an array",
    "object": "an object",
}


def utf8_text(text: str) -> bool:
    """Whether `text` can be written as UTF-8. Bytes that are not UTF-8 (in an environment variable, an
    argument) reach Python as surrogate escapes, which no output, state or JSON body can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
