"""YAML documents with an address for every value (docs/run-files.md).

PyYAML's C parser composes the node graph; we construct plain values from it with YAML 1.2 core-schema
scalars (only true/false are booleans), rejecting duplicate keys, runaway aliases, oversize files,
non-UTF-8 bytes and paths that leave the repository. The node graph is kept so that any problem found
later can be addressed to its line and column (`locate`).
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from msgspec import Struct, field

from intuned_runs.problems import Problem, json_path

MAX_BYTES = 10 * 1024 * 1024
MAX_ALIAS_EXPANSIONS = 10_000
MAX_DEPTH = 100  # deeper input would exhaust the recursion of every later stage (render, hash, JSON)

PLAIN_TAG = "?plain"  # plain scalars keep this marker; we resolve them with YAML 1.2 rules


def _resolve(self: Any, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
    if kind is yaml.ScalarNode:
        return PLAIN_TAG if implicit[0] else STR_TAG
    return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"


# The C parser composes; our resolver leaves plain scalars unresolved (PyYAML's are YAML 1.1).
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Loader = type("_Loader", (_Base,), {"resolve": _resolve})

_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

STR_TAG = "tag:yaml.org,2002:str"


class DocumentError(Exception):
    """A problem that makes a whole file unreadable; carries its address."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


class Document(Struct):
    """One parsed file: its plain value, the node graph for addressing, and load-time warnings."""

    file: str  # relative to the repository, POSIX separators
    value: Any
    node: yaml.Node | None
    warnings: list[Problem] = field(default_factory=list)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


_WORDS: dict[str, Any] = {"": None, "~": None, "null": None, "Null": None, "NULL": None, **_BOOL}
_NUMERIC_START = frozenset("0123456789+-.")
_YAML11_WORDS = frozenset({"yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"})


MAX_INT_BITS = 14_000  # about 4,300 digits: Python (and so JSON output) refuses longer integers
TOO_MANY_DIGITS = "integer has more than 4,300 digits: quote it to keep it as text"


def _bounded(value: int) -> int:
    if value.bit_length() > MAX_INT_BITS:
        raise ValueError(TOO_MANY_DIGITS)
    return value


def plain_scalar(text: str) -> Any:
    """Resolve an untagged plain scalar with the YAML 1.2 core schema."""
    if text in _WORDS:
        return _WORDS[text]
    if text[0] not in _NUMERIC_START:  # most scalars are words: no pattern can match them
        return text
    if _INT10.match(text):
        return int(text)
    if _INT8.match(text):
        return _bounded(int(text[2:], 8))
    if _INT16.match(text):
        return _bounded(int(text[2:], 16))
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return text


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class _Builder:
    """Plain values from a node graph. The hot path of loading 10,000 runs (docs/performance.md): one call per
    node, no per-node bookkeeping beyond what alias detection needs."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.expansions = 0
        self.depth = 0
        self.yaml11: list[yaml.ScalarNode] = []  # unquoted yes/no/on/off, warned about after the build

    def build(self, node: yaml.Node) -> Any:
        ident = id(node)
        if ident in self.seen:  # reached again: an alias being expanded
            self.expansions += 1
            if self.expansions > MAX_ALIAS_EXPANSIONS:
                raise DocumentError(
                    f"more than {MAX_ALIAS_EXPANSIONS} alias expansions: simplify the anchors", *_mark(node)
                )
            if ident in self.active:
                raise DocumentError("recursive alias: an anchor may not contain itself", *_mark(node))
        self.seen.add(ident)
        if node.__class__ is yaml.ScalarNode:
            return self.scalar(node)
        self.active.add(ident)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise DocumentError(f"nested more than {MAX_DEPTH} levels deep: flatten the structure", *_mark(node))
        try:
            if node.__class__ is yaml.MappingNode:
                return self.mapping(node)
            if node.tag != _SEQ_TAG:
                raise DocumentError(f"unsupported tag {node.tag}", *_mark(node))
            return [self.build(child) for child in node.value]
        finally:
            self.active.discard(ident)
            self.depth -= 1

    def mapping(self, node: yaml.MappingNode) -> dict[Any, Any]:
        if node.tag != _MAP_TAG:
            raise DocumentError(f"unsupported tag {node.tag}", *_mark(node))
        out: dict[Any, Any] = {}
        build = self.build
        for key_node, value_node in node.value:
            key = build(key_node)
            if key.__class__ is dict or key.__class__ is list:
                raise DocumentError("mapping keys must be scalars", *_mark(key_node))
            if key in out:
                raise DocumentError(f"duplicate key {key!r}", *_mark(key_node))
            out[key] = build(value_node)
        return out

    def scalar(self, node: yaml.ScalarNode) -> Any:
        text: str = node.value
        tag: str = node.tag
        if tag == PLAIN_TAG:
            if text in _YAML11_WORDS:
                self.yaml11.append(node)
            return self.plain(node) if text else None
        if tag == STR_TAG:
            return text
        value = self.plain(node) if text else None
        if tag == "tag:yaml.org,2002:null" and value is None:
            return None
        if tag == "tag:yaml.org,2002:bool" and isinstance(value, bool):
            return value
        if tag == "tag:yaml.org,2002:int" and type(value) is int:
            return value
        if tag == "tag:yaml.org,2002:float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise DocumentError(f"unsupported tag {tag} for {text!r}", *_mark(node))

    def plain(self, node: yaml.ScalarNode) -> Any:
        try:
            return plain_scalar(node.value)
        except ValueError as e:  # a decimal integer of more than 4,300 digits
            raise DocumentError(TOO_MANY_DIGITS, *_mark(node)) from e

    def warnings(self, root: yaml.Node) -> list[Problem]:
        problems = []
        for node in self.yaml11:
            line, col = _mark(node)
            path = _path_to(root, node)
            problems.append(
                Problem(
                    self.file,
                    line,
                    col,
                    "warning",
                    json_path(path) if path is not None else "",
                    f"unquoted {node.value!r} is the string {node.value!r} in YAML 1.2, not a boolean: "
                    "quote it, or write true/false",
                )
            )
        return problems


def _path_to(root: yaml.Node, target: yaml.Node) -> tuple[str | int, ...] | None:
    """The path of `target` below `root` (only for the rare warning: a search, not bookkeeping)."""
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, (*path, str(key.value))) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, (*path, index)) for index, child in enumerate(node.value))
    return None


_SYMLINK_LOOP = "symlink loop: the link leads back to itself; point it at a file or remove it"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _not_regular(mode: int) -> DocumentError:
    return DocumentError(f"is {_kind(mode)}, not a regular file: only regular files are read")


def read_text(root: Path, relative: str) -> str:
    """Read a file of the repository, enforcing size, UTF-8 and staying inside the repository.

    Only regular files (docs/security.md, Files): the file is opened without blocking (a FIFO would wait
    for a writer forever) and checked with fstat, so nothing can swap it between the check and the read."""
    path = root / relative
    try:
        resolved = path.resolve(strict=True)
    except RuntimeError as e:  # Python before 3.13 reports a symlink loop this way
        raise DocumentError(_SYMLINK_LOOP) from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DocumentError(_SYMLINK_LOOP) from e
        raise DocumentError(f"cannot read file: {e.strerror or e}") from e
    if not resolved.is_relative_to(root.resolve()):
        raise DocumentError("resolves outside the repository: move the file inside it or remove the link")
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        try:
            mode = os.stat(resolved).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):  # a socket cannot be opened at all
            raise _not_regular(mode) from e
        raise DocumentError(f"cannot read file: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise _not_regular(mode)
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise DocumentError(f"cannot read file: {e.strerror or e}") from e
    if len(data) > MAX_BYTES:
        raise DocumentError("file is larger than 10 MiB: split it into several files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DocumentError("file is not valid UTF-8: save it as UTF-8", line, col) from e


def parse(text: str, file: str) -> Document:
    """Parse YAML text into a Document; raises DocumentError with the address of the problem."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "invalid YAML"
        if mark is not None:
            raise DocumentError(f"invalid YAML: {problem}", mark.line + 1, mark.column + 1) from e
        raise DocumentError(f"invalid YAML: {problem}") from e
    except yaml.reader.ReaderError as e:  # its str() spans two lines; a problem is one line
        before = text[: e.position]
        line, col = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
        character = e.character if isinstance(e.character, int) else ord(e.character)
        raise DocumentError(f"invalid YAML: unacceptable character #x{character:04x}: {e.reason}", line, col) from e
    except yaml.YAMLError as e:
        raise DocumentError(f"invalid YAML: {e}".replace("\n", " ")) from e
    if node is None:
        return Document(file, None, None)
    builder = _Builder(file)
    value = builder.build(node)
    return Document(file, value, node, builder.warnings(node))


def load(root: Path, relative: str) -> Document:
    return parse(read_text(root, relative), relative)


def locate(node: yaml.Node | None, path: tuple[str | int, ...]) -> tuple[int, int] | None:
    """Address of the deepest node along `path` (for a missing key: the mapping that lacks it)."""
    return locate_best((node,), path)


def locate_best(nodes: tuple[yaml.Node | None, ...], path: tuple[str | int, ...]) -> tuple[int, int] | None:
    """Like `locate` over layered sources (a run over its file's defaults): the deepest match wins,
    the first layer on ties."""
    best: tuple[int, tuple[int, int]] | None = None
    for node in nodes:
        if node is None:
            continue
        depth = 0
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next(
                    (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                    None,
                )
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
            if child is None:
                break
            node, depth = child, depth + 1
        if best is None or depth > best[0]:
            best = (depth, _mark(node))
    return None if best is None else best[1]


def scalar_text(node: yaml.Node | None, path: tuple[str | int, ...]) -> str | None:
    """The source text of the scalar at `path`, or None when there is none."""
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
    return node.value if isinstance(node, yaml.ScalarNode) else None
