"""Run files under `runs_dir` → the desired runs (SPEC §4): load, merge defaults, expand the matrix,
render (secrets as placeholders), validate. Every problem is collected with its address.

Results are kept per file so the watcher re-reads only the files that changed.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from intuned_runs import documents
from intuned_runs.config import Config, deep_merge
from intuned_runs.errors import ProblemsFound
from intuned_runs.fingerprint import fingerprint
from intuned_runs.problems import Problem, json_path
from intuned_runs.redaction import MIN_LENGTH
from intuned_runs.suggest import did_you_mean
from intuned_runs.templating import API_KEY_READ, API_KEY_VARIABLE, Renderer, TemplateError
from intuned_runs.validation import RequestChecker

FILE_KEYS = ("defaults", "moved", "runs")
RUN_KEYS = ("name", "project", "request", "labels", "trigger", "matrix")
TRIGGERS = ("on-change", "always", "manual")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # used with fullmatch: no trailing newline
MAX_COMBINATIONS = 10_000
_RUN_PREFIX = re.compile(r"^runs\[\d+\]\.")
_SECRET_REF = re.compile(r"""\bsecret\(\s*(['"])([^'"\\]+)\1\s*\)""")
# Headers that carry no credential: no literal-credential warning for them.
_PLAIN_HEADERS = {"content-type", "accept", "user-agent", "content-encoding", "accept-encoding", "x-source"}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    file: str
    line: int


@dataclass(frozen=True)
class Run:
    """One desired run. `request` is the redacted view (secrets as `(secret:NAME)` placeholders)."""

    key: str
    project: str
    name: str
    labels: Mapping[str, str]
    trigger: str
    source: Source
    request: dict[str, Any]
    secrets: frozenset[str]
    fingerprint: str  # of the redacted request, with defaults filled (SPEC §6)
    # What the real view is rendered from, only for the body apply sends.
    raw_request: Any = field(compare=False, repr=False)
    context: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Move:
    old: str
    new: str
    source: Source


@dataclass
class FileResult:
    file: str
    runs: list[Run] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    env_reads: frozenset[str] = frozenset()
    # Names written as secret('NAME') anywhere in the file, also in runs that failed to render: the
    # redactor must know them before any problem is printed (SPEC §4).
    secret_refs: frozenset[str] = frozenset()
    text: str = ""  # kept to address rare whole-repository problems


@dataclass(frozen=True)
class Desired:
    """Every run of the repository, in file order, and every problem found."""

    runs: tuple[Run, ...]
    moves: tuple[Move, ...]
    problems: tuple[Problem, ...]
    secret_names: frozenset[str]

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def discover(config: Config) -> list[str] | Problem:
    """Run files relative to the repository, in the order of their path parts by code point."""
    root = config.runs_dir
    message = None
    if not root.is_dir():
        message = f"runs_dir {config.relative(root)} does not exist: create it or set runs_dir in the config"
    elif not root.is_relative_to(config.repository):  # SPEC §4: nothing is read from outside the repository
        message = f"runs_dir {root} resolves outside the repository {config.repository}"
    if message is not None:
        # Addressed to the config's runs_dir key, or to the folder itself when there is no config file.
        where = config.file or str(config.values.get("runs_dir") or "runs.d")
        return Problem(where, None, None, "error", "runs_dir" if config.file else "", message)
    found: list[tuple[tuple[str, ...], str]] = []
    seen: set[str] = set()
    for directory, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:  # a link cycle
            dirnames.clear()
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.endswith((".yaml", ".yml")):
                path = Path(directory, name).relative_to(config.repository)
                found.append((path.parts, path.as_posix()))
    return [relative for _, relative in sorted(found)]


class Loader:
    """Turns run files into Runs with one renderer and one schema checker for the whole repository."""

    def __init__(self, config: Config, checker: RequestChecker) -> None:
        self.config = config
        self.checker = checker
        self.renderer: Renderer = config.renderer
        self.vars = config.vars
        self.default_project = config.default_project
        # The config's own env reads, checked against secret() names like a run file's (SPEC §4).
        self.config_result = FileResult(
            config.file or "intuned-runs.yaml",
            problems=list(config.warnings),
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
        result.text = text
        result.secret_refs = frozenset(m[2] for m in _SECRET_REF.finditer(text))
        # Load-time warnings are addressed from the file's top; runs are addressed from the run.
        result.problems += [replace(w, path=_RUN_PREFIX.sub("", w.path)) for w in document.warnings]
        self.renderer.env_reads = set()
        self.renderer.env.reads.clear()
        self._load_document(document, result)
        result.problems = list(dict.fromkeys(result.problems))  # a matrix repeats its problems
        # Static reads (also in branches not taken) and the names actually asked for (`env[vars.x]`).
        result.env_reads = frozenset(self.renderer.env_reads | self.renderer.env.reads)
        return result

    def _problem(
        self,
        result: FileResult,
        nodes: tuple[yaml.Node | None, ...],
        path: Path_,
        message: str,
        severity: str = "error",
        address: Path_ | None = None,
        shown: Path_ | None = None,
    ) -> None:
        line, col = documents.locate_best(nodes, path if address is None else address) or (None, None)
        result.problems.append(
            Problem(
                result.file,
                line,
                col,
                severity,  # type: ignore[arg-type]
                json_path(path if shown is None else shown),
                message,
            )
        )

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
                    result,
                    (node,),
                    (key,),
                    f"unknown top-level key '{key}'{did_you_mean(str(key), FILE_KEYS)}",
                )
        defaults = value.get("defaults") or {}
        defaults_node = _child(node, "defaults")
        if not isinstance(defaults, dict):
            self._problem(result, (node,), ("defaults",), "must be a mapping")
            defaults = {}
        for key in defaults:
            if key in ("name", "matrix"):
                self._problem(
                    result,
                    (defaults_node,),
                    (key,),
                    f"'{key}' may not be set in defaults",
                    shown=("defaults", key),
                )
            elif key not in RUN_KEYS:
                self._problem(
                    result,
                    (defaults_node,),
                    (key,),
                    f"unknown key '{key}'{did_you_mean(str(key), RUN_KEYS)}",
                    shown=("defaults", key),
                )
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
                self._problem(
                    result,
                    (item_node,),
                    (),
                    "must be {from: PROJECT/NAME, to: PROJECT/NAME}",
                    shown=("moved", index),
                )
                continue
            line = documents.locate(item_node, ()) or (0, 0)
            result.moves.append(Move(item["from"], item["to"], Source(result.file, line[0])))

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
        combinations: Iterable[dict[str, Any]] = [{}]
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
        combination: dict[str, Any],
        base: dict[str, Any],
        nodes: tuple[yaml.Node | None, ...],
        source: Source,
        result: FileResult,
    ) -> None:
        """Render one run in SPEC order (matrix → name → project → labels → trigger → request). A field
        that fails is reported and left out of `run.*`; the later fields are still checked, so one
        validate shows every problem of the run."""
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

        name = field("name", merged["name"], _check_name)
        project = field("project", merged.get("project", self.default_project), _check_project)
        labels = field("labels", merged.get("labels") or {}, _check_labels)
        trigger = field("trigger", merged.get("trigger", "on-change"), _check_trigger)
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
                f"{project}/{name}",
                project,
                name,
                labels,
                trigger,
                source,
                request,
                secrets,
                fingerprint(project, name, request, self.checker.schema),
                raw_request,
                context,
            )
        )

    # -- the repository ----------------------------------------------------------------------------

    def render_real(self, run: Run) -> dict[str, Any]:
        """The body apply sends: the same request rendered with the real secret values."""
        real = self.renderer.with_secrets()
        value = real.render(run.raw_request, run.context, secrets_allowed=True, path=("request",))
        assert isinstance(value, dict)
        return value


def _check_name(name: Any) -> str | None:
    if isinstance(name, str) and NAME.fullmatch(name):
        return None
    return (
        f"invalid run name {name!r}: use letters, digits, '.', '_' and '-' "
        "(starting with a letter or digit, at most 128)"
    )


def _check_project(project: Any) -> str | None:
    if not isinstance(project, str) or not project:
        return "run has no project: set 'project' (or default_project in the config)"
    if "/" in project or not project.isprintable():
        return f"project name {project!r} may not contain '/' or control characters"
    return None


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


def literal_credentials(raw: Any) -> list[tuple[Path_, str]]:
    """Literal credentials in a run's request (SPEC §4): they belong in secret()."""
    if not isinstance(raw, dict):
        return []
    suspects: list[tuple[Path_, Any]] = []
    sink = raw.get("sink")
    if isinstance(sink, dict):
        for key in ("secretAccessKey", "accessKeyId"):
            if key in sink:
                suspects.append((("request", "sink", key), sink[key]))
        headers = sink.get("headers")
        if isinstance(headers, dict):
            suspects += [
                (("request", "sink", "headers", k), v)
                for k, v in headers.items()
                if str(k).lower() not in _PLAIN_HEADERS
            ]
    auth = raw.get("authSession")
    if isinstance(auth, dict) and isinstance(auth.get("runtimeInput"), dict):
        suspects += [(("request", "authSession", "runtimeInput", k), v) for k, v in auth["runtimeInput"].items()]
    found = [
        (path, "looks like a literal credential: use {{ secret('NAME') }} and set NAME in the environment")
        for path, value in suspects
        if isinstance(value, str) and value and "secret(" not in value
    ]
    for path, proxy in (
        (("request", "proxy"), raw.get("proxy")),
        (("request", "authSession", "proxy"), auth.get("proxy") if isinstance(auth, dict) else None),
    ):
        if isinstance(proxy, str) and "secret(" not in proxy and "{{" not in proxy:
            try:
                password = urlsplit(proxy).password
            except ValueError:
                password = None
            if password:
                found.append((path, "proxy URL holds a literal password: use {{ secret('NAME') }} for the URL"))
    return found


def assemble(config: Config, results: Iterable[FileResult], environ: Mapping[str, str]) -> Desired:
    """Join per-file results: unique keys across the repository, env/secret conflicts, short secrets."""
    results = list(results)
    problems: list[Problem] = []
    runs: list[Run] = []
    moves: list[Move] = []
    first: dict[str, Run] = {}
    for result in results:
        problems += result.problems
        moves += result.moves
        for run in result.runs:
            other = first.get(run.key)
            if other is not None:
                problems.append(
                    Problem(
                        run.source.file,
                        run.source.line,
                        1,
                        "error",
                        "name",
                        f"duplicate run key {run.key}: also defined at {other.source.file}:{other.source.line}",
                    )
                )
                continue
            first[run.key] = run
            runs.append(run)
    secret_names = frozenset(name for run in runs for name in run.secrets).union(
        *(result.secret_refs for result in results)
    )
    for result in results:
        for name in sorted(result.env_reads & (secret_names | {API_KEY_VARIABLE})):
            if name == API_KEY_VARIABLE:
                message = API_KEY_READ
                if any(p.message == message for p in result.problems):
                    continue  # already reported where the template was rendered
            else:
                message = (
                    f"env.{name} reads a variable that is used through secret(): "
                    f"use {{{{ secret('{name}') }}}} inside request instead"
                )
            line, col = _find_env_read(result.text, name)
            problems.append(Problem(result.file, line, col, "error", "", message))
    for name in sorted(secret_names):
        value = environ.get(name, "")
        if value and len(value) < MIN_LENGTH:
            user = next((r for r in runs if name in r.secrets), None)
            if user is not None:
                where: tuple[str, int | None, int | None, str] = (user.source.file, user.source.line, 1, "request")
            else:  # used only by runs that failed: point at the text
                result = next(r for r in results if name in r.secret_refs)
                where = (result.file, *_find_secret_ref(result.text, name), "")
            problems.append(
                Problem(
                    *where[:3],
                    "warning",
                    where[3],
                    f"secret {name} is shorter than {MIN_LENGTH} characters, so output redaction cannot mask it",
                )
            )
    return Desired(tuple(runs), tuple(moves), tuple(problems), secret_names)


def _find_secret_ref(text: str, name: str) -> tuple[int | None, int | None]:
    for number, line in enumerate(text.splitlines(), 1):
        for match in _SECRET_REF.finditer(line):
            if match[2] == name:
                return number, match.start() + 1
    return None, None


def _find_env_read(text: str, name: str) -> tuple[int | None, int | None]:
    pattern = re.compile(r"env\s*(?:\.\s*" + re.escape(name) + r"\b|\[\s*['\"]" + re.escape(name) + r"['\"]\s*\])")
    for number, line in enumerate(text.splitlines(), 1):
        match = pattern.search(line)
        if match:
            return number, match.start() + 1
    return None, None


def _referenced_secrets(config: Config) -> frozenset[str]:
    """Names written as secret('NAME') in the run files, read without rendering anything."""
    try:
        files = discover(config)
    except ProblemsFound:
        return frozenset()
    names: set[str] = set()
    for relative in files if isinstance(files, list) else ():
        try:
            names.update(m[2] for m in _SECRET_REF.finditer(documents.read_text(config.repository, relative)))
        except documents.DocumentError:
            continue
    return frozenset(names)


def load(config: Config, checker: RequestChecker, environ: Mapping[str, str]) -> Desired:
    try:
        files = discover(config)
        if isinstance(files, Problem):
            return Desired((), (), (files,), _referenced_secrets(config))
        loader = Loader(config, checker)  # renders the config's vars and default_project
    except ProblemsFound as e:
        # A config template that fails (`{{ {}[env.TOKEN] }}`) may quote a secret's value: report it
        # like any problem, with the secret names known so the redactor masks them (SPEC §4).
        return Desired((), (), tuple(e.problems), _referenced_secrets(config))
    return assemble(config, [loader.config_result, *(loader.load_file(f) for f in files)], environ)
