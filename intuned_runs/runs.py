"""Run files under `runs_dir` → the desired runs (docs/run-files.md): load, merge defaults, expand the matrix,
render (secrets as placeholders), validate. Every problem is collected with its address.

Results are kept per file so the watcher re-reads only the files that changed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import Any

import yaml
from msgspec import Struct, field
from msgspec.structs import replace

from intuned_runs import documents
from intuned_runs.bounds import MAX_FILE
from intuned_runs.compact import EMPTY, Interner, from_json, to_json
from intuned_runs.config import Config, deep_merge
from intuned_runs.fingerprint import fingerprint
from intuned_runs.names import check_given_project, check_name, check_project
from intuned_runs.problems import Problem, Severity, json_path
from intuned_runs.redaction import unmaskable
from intuned_runs.suggest import did_you_mean
from intuned_runs.templating import Renderer, TemplateError, secret_refs
from intuned_runs.validation import RequestChecker, literal_credentials

FILE_KEYS = ("defaults", "moved", "runs")
RUN_KEYS = ("name", "project", "request", "labels", "trigger", "matrix")
TRIGGERS = ("on-change", "always", "manual")
MAX_COMBINATIONS = 10_000
_RUN_PREFIX = re.compile(r"^runs\[\d+\]\.")

Path_ = tuple[str | int, ...]


class Source(Struct, frozen=True, gc=False):
    file: str
    line: int


class Run(Struct, frozen=True, gc=False):
    """One desired run. `request` is the redacted view (secrets as `(secret:NAME)` placeholders)."""

    key: str
    project: str
    name: str
    labels: Mapping[str, str]
    trigger: str
    source: Source
    request: dict[str, Any]
    secrets: frozenset[str]
    fingerprint: str  # of the redacted request, with defaults filled (docs/plan.md)
    # For the body apply sends: the request as written, as JSON text, and the matrix (docs/performance.md, Memory).
    template: bytes = b"{}"
    matrix: Mapping[str, Any] = {}


class Move(Struct, frozen=True):
    old: str
    new: str
    source: Source
    col: int = 1
    index: int = 0  # in the file's `moved:` list


class Unplanned(Struct, frozen=True, gc=False):
    """A run outside the selection: its request is neither rendered nor validated (docs/plan.md, Selection)."""

    key: str
    labels: Mapping[str, str]
    source: Source


class FileResult(Struct):
    file: str
    runs: list[Run] = field(default_factory=list)
    unplanned: list[Unplanned] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # of every run whose name and project rendered (`moved:` checks)
    moves: list[Move] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    env_reads: frozenset[str] = frozenset()
    # Names written as secret('NAME') anywhere in the file, also in runs that failed to render: the
    # redactor must know them before any problem is printed (docs/secrets.md).
    secret_refs: frozenset[str] = frozenset()
    # Kept only where `desired.assemble` may address a problem in it (an env read, a secret too short to mask):
    # 5,000 files would keep 37 MB of text for nothing (docs/performance.md, Memory).
    text: str = ""


class Loader:
    """Turns run files into Runs with one renderer and one schema checker for the whole repository."""

    def __init__(
        self, config: Config, checker: RequestChecker, wanted: Callable[[str, Mapping[str, str]], bool] | None = None
    ) -> None:
        self.config = config
        self.checker = checker
        self.wanted = wanted  # (key, labels) -> in the planned set; None: every run
        self.renderer: Renderer = config.renderer
        self.vars = config.vars
        self.default_project = config.default_project
        self.compact, self.templates = Interner(), True  # templates: False when nothing is sent (plan)
        # The config's own env reads, checked against secret() names like a run file's (docs/secrets.md).
        self.config_result = FileResult(
            config.file or "intuned-runs.yaml",
            problems=[*config.warnings, *config.problems()],
            env_reads=frozenset(self.renderer.env_reads),
            text=config.path.read_text(encoding="utf-8", errors="replace") if config.path else "",
        )

    # -- one file ----------------------------------------------------------------------------------

    def load_file(self, relative: str) -> FileResult:
        result = FileResult(relative)
        try:
            text = documents.read_text(self.config.repository, relative)
            document = documents.parse(text, relative)
        except documents.DocumentError as e:
            result.problems.append(Problem(relative, e.line, e.col, "error", "", e.message))
            return result
        result.secret_refs = frozenset(m[2] for m in secret_refs(text))
        # Load-time warnings are addressed from the file's top; runs are addressed from the run.
        result.problems += [replace(w, path=_RUN_PREFIX.sub("", w.path)) for w in document.warnings]
        self.renderer.env_reads = set()
        self.renderer.env.reads.clear()
        self.renderer.start_file()
        self._load_document(document, result)
        result.problems = list(dict.fromkeys(result.problems))  # a matrix repeats its problems
        # Static reads (also in branches not taken) and the names actually asked for (`env[vars.x]`).
        result.env_reads = frozenset(self.renderer.env_reads | self.renderer.env.reads)
        environ = self.config.environ  # the one assemble is given
        if result.env_reads or any(unmaskable(environ.get(n, "")) for n in result.secret_refs):
            result.text = text
        return result

    def _problem(
        self,
        result: FileResult,
        nodes: tuple[yaml.Node | None, ...],
        path: Path_,
        message: str,
        severity: Severity = "error",
        address: Path_ | None = None,
        shown: Path_ | None = None,
    ) -> None:
        line, col = documents.locate_best(nodes, path if address is None else address) or (None, None)
        where = json_path(path if shown is None else shown)
        result.problems.append(Problem(result.file, line, col, severity, where, message))

    def _load_document(self, document: documents.Document, result: FileResult) -> None:
        value, node = document.value, document.node
        if value is None:
            return  # an empty run file is allowed
        if not isinstance(value, dict):
            self._problem(result, (node,), (), "a run file is a mapping with 'runs' (and optional 'defaults', 'moved')")
            return
        for key in value:
            if key not in FILE_KEYS:
                self._problem(
                    result, (node,), (key,), f"unknown top-level key '{key}'{did_you_mean(str(key), FILE_KEYS)}"
                )
        defaults = value.get("defaults") or {}
        defaults_node = _child(node, "defaults")
        if not isinstance(defaults, dict):
            self._problem(result, (node,), ("defaults",), "must be a mapping")
            defaults = {}
        for key in defaults:
            shown = ("defaults", key)
            if key in ("name", "matrix"):
                self._problem(result, (defaults_node,), (key,), f"'{key}' may not be set in defaults", shown=shown)
            elif key not in RUN_KEYS:
                message = f"unknown key '{key}'{did_you_mean(str(key), RUN_KEYS)}"
                self._problem(result, (defaults_node,), (key,), message, shown=shown)
        self._load_moves(value.get("moved"), _child(node, "moved"), result)
        runs = value.get("runs")
        runs_node = _child(node, "runs")
        if runs is None:
            return
        if not isinstance(runs, list):
            self._problem(result, (node,), ("runs",), "must be a list of runs")
            return
        for index, entry in enumerate(runs):
            entry_node = runs_node.value[index] if isinstance(runs_node, yaml.SequenceNode) else None
            if not isinstance(entry, dict):
                self._problem(result, (entry_node,), (), "a run must be a mapping", shown=("runs", index))
                continue
            self._load_entry(entry, entry_node, defaults, defaults_node, result)

    def _load_moves(self, moved: Any, node: yaml.Node | None, result: FileResult) -> None:
        if moved is None:
            return
        if not isinstance(moved, list):
            self._problem(result, (node,), (), "must be a list of {from, to}", shown=("moved",))
            return
        for index, item in enumerate(moved):
            item_node = node.value[index] if isinstance(node, yaml.SequenceNode) else None
            if (
                not isinstance(item, dict)
                or set(item) != {"from", "to"}
                or not all(isinstance(v, str) and v.count("/") == 1 for v in item.values())
            ):
                message = "must be {from: PROJECT/NAME, to: PROJECT/NAME}"
                self._problem(result, (item_node,), (), message, shown=("moved", index))
                continue
            line, col = documents.locate(item_node, ()) or (0, 1)
            result.moves.append(Move(item["from"], item["to"], Source(result.file, line), col, index))

    def _render(
        self,
        value: Any,
        context: Mapping[str, Any],
        result: FileResult,
        nodes: tuple[yaml.Node | None, ...],
        at: Path_,
        *,
        secrets: bool = False,
    ) -> tuple[bool, Any]:
        """Render a field, reporting every failing string in it (not only the first)."""
        errors: list[TemplateError] = []
        value = self.renderer.render(value, context, secrets_allowed=secrets, path=at, errors=errors)
        for error in errors:
            self._problem(result, nodes, error.path, error.message)
        return not errors, value

    def _load_entry(
        self,
        entry: dict[str, Any],
        node: yaml.Node | None,
        defaults: dict[str, Any],
        defaults_node: yaml.Node | None,
        result: FileResult,
    ) -> None:
        nodes = (node, defaults_node)
        bad = False
        for key in entry:
            if key not in RUN_KEYS:
                self._problem(result, nodes, (key,), f"unknown key '{key}'{did_you_mean(str(key), RUN_KEYS)}")
                bad = True
        merged = deep_merge(defaults, entry) if defaults else entry
        for key in ("name", "request"):
            if key not in merged:
                self._problem(result, nodes, (), f"run is missing required '{key}'", shown=(key,))
                bad = True
        if bad:
            return
        line = (documents.locate(node, ()) or (0, 0))[0]
        base: dict[str, Any] = {"vars": self.vars}
        combinations: Iterable[Mapping[str, Any]] = [{}]
        if "matrix" in merged:
            ok, matrix = self._render(merged["matrix"], {**base, "matrix": {}, "run": {}}, result, nodes, ("matrix",))
            if not ok:
                return
            expanded = self._expand(matrix, result, nodes)
            if expanded is None:
                return
            combinations = expanded
        for combination in combinations:
            self._load_run(merged, combination, base, nodes, Source(result.file, line), result)

    def _expand(
        self, matrix: Any, result: FileResult, nodes: tuple[yaml.Node | None, ...]
    ) -> list[dict[str, Any]] | None:
        if not isinstance(matrix, dict) or not matrix:
            self._problem(result, nodes, ("matrix",), "must be a mapping of names to lists of values")
            return None
        total = 1
        for key, values in matrix.items():
            if not isinstance(values, list) or not values or not all(not isinstance(v, list) for v in values):
                self._problem(result, nodes, ("matrix", key), "must be a non-empty list of scalars or maps")
                return None
            total *= len(values)
        if total > MAX_COMBINATIONS:
            self._problem(
                result,
                nodes,
                ("matrix",),
                f"{total} combinations is more than {MAX_COMBINATIONS}: split the run entry",
            )
            return None
        keys = list(matrix)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*matrix.values())]

    def _load_run(
        self,
        merged: dict[str, Any],
        combination: Mapping[str, Any],
        base: dict[str, Any],
        nodes: tuple[yaml.Node | None, ...],
        source: Source,
        result: FileResult,
    ) -> None:
        """Render one run in order (matrix → name → project → labels → trigger → request; see
        docs/templating.md, Render order). A field that fails is reported and left out of `run.*`; the later
        fields are still checked, so one validate shows every problem of the run."""
        if self.renderer.rendered > MAX_FILE:
            return  # past the file's limit, reported once where it was passed (docs/templating.md, Limits)
        run: dict[str, Any] = {}
        context = {**base, "matrix": combination, "run": run}
        ok = True

        def field(key: str, raw: Any, check: Callable[[Any], str | None], **kwargs: Any) -> Any:
            nonlocal ok
            rendered, value = self._render(raw, context, result, nodes, (key,), **kwargs)
            problem = check(value) if rendered else None
            if problem is not None:
                self._problem(result, nodes, (key,) if key in merged else (), problem, shown=(key,))
            if rendered and problem is None:
                run[key] = value
                return value
            ok = False
            return None

        name = field("name", merged["name"], check_name)
        check = check_given_project if "project" in merged else check_project
        project = field("project", merged.get("project", self.default_project), check)
        labels = field("labels", merged.get("labels") or {}, _check_labels)
        trigger = field("trigger", merged.get("trigger", "on-change"), _check_trigger)
        key = f"{project}/{name}"
        if name is not None and project is not None:
            result.keys.append(key)
        if ok and self.wanted is not None and not self.wanted(key, labels):
            result.unplanned.append(Unplanned(key, labels, source))
            return
        raw_request = merged["request"]
        self.renderer.secrets_used = set()
        rendered, request = self._render(raw_request, context, result, nodes, ("request",), secrets=True)
        secrets = frozenset(self.renderer.secrets_used)
        if rendered:
            for finding in self.checker.check(request):
                ok &= finding.severity != "error"
                self._problem(result, nodes, finding.path, finding.message, finding.severity, address=finding.address)
        for path, message in literal_credentials(raw_request):
            self._problem(result, nodes, path, message, "warning")
        if not (ok and rendered):
            return
        result.runs.append(
            Run(
                key,
                self.compact.string(project),
                name,
                self.compact.value(labels),
                trigger,
                source,
                self.compact.value(request),
                self.compact.names(secrets),
                fingerprint(project, name, request, self.checker.schema),
                to_json(raw_request) if self.templates else b"",
                combination or EMPTY,
            )
        )

    # -- the repository ----------------------------------------------------------------------------

    @cached_property
    def _real(self) -> Renderer:
        return self.renderer.with_secrets(fill_unset=self.config.settings.emulator)

    def render_real(self, run: Run) -> dict[str, Any]:
        """The body apply sends: the same request rendered with the real secret values, in the same context."""
        self._real.start_file()
        fields = {"name": run.name, "project": run.project, "labels": run.labels, "trigger": run.trigger}
        context = {"vars": self.vars, "matrix": run.matrix, "run": fields}
        assert run.template, "a Repository(sends=False) renders no real body"
        value = self._real.render(from_json(run.template), context, secrets_allowed=True, path=("request",))
        assert isinstance(value, dict)
        return value


def _check_labels(labels: Any) -> str | None:
    if isinstance(labels, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return None
    return "must map strings to strings (quote numbers)"


def _check_trigger(trigger: Any) -> str | None:
    return None if trigger in TRIGGERS else f"must be one of {', '.join(TRIGGERS)}"


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                child: yaml.Node = value_node
                return child
    return None
