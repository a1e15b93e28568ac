"""The package's layout as docs/architecture.md states it: no import cycle, imports only point down the
layers, modules under 400 lines, no `# type: ignore` in the command handlers.

The import graph is built with `ast` from every import statement of the package, including those inside
functions and under `TYPE_CHECKING`, so a cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import PROJECT

PACKAGE = PROJECT / "intuned_runs"
ROOT = "intuned_runs"
SIDE = "side"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """The package's own modules that `path` imports, wherever the import statement is."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    return {m for m in found if m == ROOT or m.startswith(ROOT + ".")}


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def layers() -> dict[str, str]:
    """Module → layer, from the table under `## Layers` in docs/architecture.md."""
    text = (PROJECT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    patterns: list[tuple[str, str]] = []
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and (cells[0].isdigit() or cells[0] == SIDE):
            patterns += [(cells[0], name) for name in re.findall(r"`([\w.*]+)`", cells[1])]
    assert patterns, "docs/architecture.md has no layer table"
    assigned: dict[str, str] = {}
    for module in MODULES:
        short = module[len(ROOT) + 1 :] if module != ROOT else ROOT
        for layer, pattern in patterns:
            if pattern == short or (pattern.endswith(".*") and (short + ".").startswith(pattern[:-1])):
                assigned[module] = layer
                break
    return assigned


LAYERS = layers()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    # Guards of the checks below: imports inside functions and under TYPE_CHECKING are edges too.
    assert "intuned_runs.emulator.server" in GRAPH["intuned_runs.commands.common"]  # inside a function
    assert "intuned_runs.report.output" in GRAPH["intuned_runs.commands"]  # under TYPE_CHECKING
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_every_module_has_a_layer() -> None:
    assert sorted(set(MODULES) - set(LAYERS)) == []


def test_imports_only_point_down_the_layers() -> None:
    wrong = []
    for module, targets in sorted(GRAPH.items()):
        mine = LAYERS[module]
        for target in sorted(targets):
            theirs = LAYERS[target]
            if mine == SIDE:
                allowed = theirs == SIDE or int(theirs) >= 7
            elif theirs == SIDE:
                allowed = mine == "2"
            else:
                allowed = int(theirs) >= int(mine)
            if not allowed:
                wrong.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
    assert wrong == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_under_400_lines(name: str) -> None:
    assert len(MODULES[name].read_text(encoding="utf-8").splitlines()) <= 400


def test_no_type_ignore_in_the_command_handlers() -> None:
    ignored = [
        f"{path.name}:{number}"
        for path in sorted((PACKAGE / "commands").glob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "type: ignore" in line
    ]
    assert ignored == []


CITATION = re.compile(r"docs/([a-z-]+\.md)(?:, ([A-Z][A-Za-z ]+?))?(?=[);:.,]|$)")


def headings_of(document: Path) -> list[str]:
    return re.findall(r"^#+ (.+)$", document.read_text(encoding="utf-8"), flags=re.M) if document.exists() else []


def test_comments_cite_documents_and_sections_that_exist() -> None:
    # Code comments cite docs/FILE.md or docs/FILE.md, Section; each must exist in this repository.
    sources = [*PACKAGE.rglob("*.py"), *(PROJECT / "tests").rglob("*.py"), *(PROJECT / "bench").glob("*.py")]
    missing = []
    for path in sorted(sources):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for document, section in CITATION.findall(line):
                target = PROJECT / "docs" / document
                headings = headings_of(target)
                # "Sending and Outcomes" cites two sections; "Streams and colour" is one heading.
                parts = [section] if section in headings else section.split(" and ") if section else []
                if not target.exists() or any(part not in headings for part in parts):
                    missing.append(f"{path.relative_to(PROJECT)}:{number}: docs/{document}, {section}")
    assert missing == []
