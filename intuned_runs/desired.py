"""The desired runs of a repository: which run files there are, and what they add up to
(docs/configuration.md, docs/run-files.md).

`load` discovers the run files, has a `runs.Loader` read each one, and `assemble`s the results: run
keys unique across the repository, env/secret conflicts, short secrets. The watcher keeps per-file
results and calls `assemble` again after an edit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from msgspec import Struct

from intuned_runs import documents
from intuned_runs.config import Config
from intuned_runs.errors import ProblemsFound
from intuned_runs.problems import Problem, errors_in
from intuned_runs.redaction import MIN_LENGTH, unmaskable
from intuned_runs.runs import FileResult, Loader, Move, Run, Source, Unplanned
from intuned_runs.templating import API_KEY_READ, API_KEY_VARIABLE, secret_refs
from intuned_runs.validation import RequestChecker


class Desired(Struct, frozen=True):
    """Every run of the repository, in file order, and every problem found."""

    runs: tuple[Run, ...]
    moves: tuple[Move, ...]
    problems: tuple[Problem, ...]
    secret_names: frozenset[str]
    # Runs outside the selection: named and labelled, their request not rendered (docs/plan.md, Selection).
    unplanned: tuple[Unplanned, ...] = ()

    @property
    def ok(self) -> bool:
        return not errors_in(list(self.problems))


def discover(config: Config) -> list[str] | Problem:
    """Run files relative to the repository, in the order of their path parts by code point."""
    root = config.runs_dir
    message = None
    if not root.is_dir():
        message = f"runs_dir {config.relative(root)} does not exist: create it or set runs_dir in the config"
    elif not root.is_relative_to(config.repository):  # nothing is read from outside it (docs/configuration.md)
        message = f"runs_dir {root} resolves outside the repository {config.repository}"
    if message is not None:
        # Addressed to the config's runs_dir line, or to the folder itself when there is no config file.
        if config.file:
            return config.problem_at("runs_dir", message)
        return Problem(str(config.values.get("runs_dir") or "runs.d"), None, None, "error", "", message)
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


def assemble(config: Config, results: Iterable[FileResult], environ: Mapping[str, str]) -> Desired:
    """Join per-file results: unique keys across the repository, env/secret conflicts, short secrets. `environ`
    is the loader's `config.environ`, by which each result kept its file's text for these problems."""
    results = list(results)
    problems: list[Problem] = []
    runs: list[Run] = []
    unplanned: list[Unplanned] = []
    moves: list[Move] = []
    first: dict[str, Source] = {}
    for result in results:
        problems += result.problems
        moves += result.moves
        named: list[Run | Unplanned] = [*result.runs, *result.unplanned]
        for run in named:
            other = first.get(run.key)
            if other is not None:
                message = f"duplicate run key {run.key}: also defined at {other.file}:{other.line}"
                problems.append(Problem(run.source.file, run.source.line, 1, "error", "name", message))
                continue
            first[run.key] = run.source
            if isinstance(run, Run):
                runs.append(run)
            else:
                unplanned.append(run)
    problems += _check_moves(moves, {key for result in results for key in result.keys})
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
        if unmaskable(environ.get(name, "")):
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
    return Desired(tuple(runs), tuple(moves), tuple(problems), secret_names, tuple(unplanned))


def _check_moves(moves: list[Move], defined: set[str]) -> list[Problem]:
    """A move's `to` must be defined and its `from` gone (docs/run-files.md, moved); a `from` missing from
    the state is the plan's business (a no-op: already moved)."""
    problems = []
    for move in moves:
        file, line, col = move.source.file, move.source.line, move.col
        if move.new not in defined:
            message = f"'{move.new}' is not a defined run: 'to' names the run's new key (PROJECT/NAME)"
            problems.append(Problem(file, line, col, "error", f"moved[{move.index}].to", message))
        if move.old in defined:
            message = f"'{move.old}' is still defined: remove or rename that run, or drop this moved entry"
            problems.append(Problem(file, line, col, "error", f"moved[{move.index}].from", message))
    return problems


def _find_secret_ref(text: str, name: str) -> tuple[int | None, int | None]:
    for number, line in enumerate(text.splitlines(), 1):
        for match in secret_refs(line):
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
            names.update(m[2] for m in secret_refs(documents.read_text(config.repository, relative)))
        except documents.DocumentError:
            continue
    return frozenset(names)


def load(
    config: Config,
    checker: RequestChecker,
    environ: Mapping[str, str],
    make_loader: Callable[[], Loader] | None = None,
) -> Desired:
    try:
        files = discover(config)
        if isinstance(files, Problem):
            return Desired((), (), (files,), _referenced_secrets(config))
        # Making the loader renders the config's vars and default_project.
        loader = make_loader() if make_loader is not None else Loader(config, checker)
    except ProblemsFound as e:
        # A config template that fails (`{{ {}[env.TOKEN] }}`) may quote a secret's value: report it
        # like any problem, with the secret names known so the redactor masks them (docs/secrets.md).
        return Desired((), (), tuple(e.problems), _referenced_secrets(config))
    return assemble(config, [loader.config_result, *(loader.load_file(f) for f in files)], environ)
