"""The repository and its configuration `intuned-runs.yaml` (docs/configuration.md).

Layers, lowest first: config top level → selected environment → environment variables → flags.
Values are templates, rendered only when a command uses them (`workspace_id` may stay unset for plan).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from msgspec import Struct

from intuned_runs import documents
from intuned_runs.errors import ConfigError, ProblemsFound, UsageError
from intuned_runs.location import FileLocation, Location, LocationError, is_url, parse_location
from intuned_runs.problems import Problem
from intuned_runs.redaction import Redactor
from intuned_runs.suggest import did_you_mean
from intuned_runs.templating import Renderer, TemplateError
from intuned_runs.variables import parse_var

CONFIG_NAME = "intuned-runs.yaml"
DEFAULT_BASE_URL = "https://app.intuned.io/api/v1/workspace"
KEYS = (
    "workspace_id",
    "base_url",
    "runs_dir",
    "state",
    "schema",
    "default_project",
    "max_submit",
    "env_allow",
    "unknown_keys",
    "vars",
    "environments",
)
DEFAULTS: dict[str, Any] = {
    "base_url": DEFAULT_BASE_URL,
    "runs_dir": "runs.d",
    "state": ".intuned-runs/state.json",
    "schema": None,
    "default_project": None,
    "max_submit": 100,
    "env_allow": [],  # a run file in a pull request reads no CI variable (docs/configuration.md, env_allow)
    "unknown_keys": "error",  # a typo is never submitted on a billable run (docs/validation.md, Unknown keys)
    "vars": {},
}
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Settings(Struct, frozen=True):
    """What the global flags say; the CLI builds it, nothing else reads flags."""

    chdir: str | None = None
    config: str | None = None
    env: str | None = None
    vars: tuple[str, ...] = ()
    workspace_id: str | None = None
    base_url: str | None = None
    state: str | None = None  # --state: a path or URL (docs/shared-state.md)
    emulator: bool = False  # state under .intuned-runs/emulator/, never mixed with a real one


EMULATOR_WORKSPACE = "00000000-0000-0000-0000-000000000000"


def deep_merge(base: Any, over: Any) -> Any:
    """Maps merge recursively, `over` wins; lists and scalars replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return over


def absolute_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def find_repository(start: Path) -> tuple[Path, Path | None]:
    """Walk up from `start` to the first config file, stopping at the directory holding `.git`."""
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_NAME
        if os.path.lexists(candidate):  # a FIFO or device is an error of the loader, never "no config"
            return directory, candidate
        if (directory / ".git").exists():
            break
    return start, None


class Config:
    """The resolved configuration of one invocation; raises ProblemsFound/ConfigError when invalid."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        cwd = Path(settings.chdir).resolve() if settings.chdir else Path.cwd()
        if settings.chdir and not cwd.is_dir():
            raise UsageError(f"-C {settings.chdir}: no such directory")
        self.path: Path | None
        if settings.config:
            path = cwd / settings.config
            if not os.path.lexists(path):
                raise UsageError(f"--config {settings.config}: no such file")
            with contextlib.suppress(RuntimeError):  # a symlink loop (Python < 3.13): the loader reports it
                path = path.resolve()
            self.repository, self.path = path.parent, path
        else:
            self.repository, self.path = find_repository(cwd)
        self.file = self.path.name if self.path else None
        self.env_name = settings.env or self.environ.get("INTUNED_RUNS_ENV") or None
        self._document = self._load()
        self.warnings: list[Problem] = self._document.warnings if self._document else []
        self._layers = self._select_layers()
        self.values: dict[str, Any] = {}
        for layer in self._layers:
            self.values = deep_merge(self.values, layer[1])

    # -- loading -----------------------------------------------------------------------------------

    def _problem(self, path: tuple[str | int, ...], message: str) -> Problem:
        where = documents.locate(self._document.node if self._document else None, path) or (None, None)
        return Problem(self.file or CONFIG_NAME, where[0], where[1], "error", ".".join(map(str, path)), message)

    def _load(self) -> documents.Document | None:
        if self.path is None:
            return None
        try:
            document = documents.load(self.path.parent, self.path.name)
        except documents.DocumentError as e:
            raise ProblemsFound([Problem(self.path.name, e.line, e.col, "error", "", e.message)]) from e
        if document.value is None:
            document.value = {}
        if not isinstance(document.value, dict):
            line, col = documents.locate(document.node, ()) or (None, None)
            raise ProblemsFound(
                [Problem(self.path.name, line, col, "error", "", "the config must be a mapping of keys")]
            )
        return document

    def problem_at(self, key: str, message: str) -> Problem:
        """A problem addressed to the config line that set `key` (the layer that set it last)."""
        return self._problem(self._origin(key), message)

    def _check_keys(self, values: dict[str, Any], prefix: tuple[str, ...], allowed: tuple[str, ...]) -> list[Problem]:
        problems = []
        for key in values:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed)
                problems.append(self._problem((*prefix, key), f"unknown key {key!r}{hint}"))
        return problems

    def _select_layers(self) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        top: dict[str, Any] = dict(self._document.value) if self._document else {}
        problems = self._check_keys(top, (), KEYS)
        environments = top.pop("environments", None) or {}
        if not isinstance(environments, dict):
            problems.append(self._problem(("environments",), "must be a mapping of environment names"))
            environments = {}
        for name, layer in environments.items():
            if not isinstance(layer, dict):
                problems.append(self._problem(("environments", name), "must be a mapping of config keys"))
            else:
                allowed = tuple(k for k in KEYS if k != "environments")
                problems += self._check_keys(layer, ("environments", name), allowed)
        if problems:
            raise ProblemsFound(problems)
        layers: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), DEFAULTS), ((), top)]
        if self.env_name is not None:
            if self.env_name not in environments:
                known = ", ".join(environments) or "none are defined"
                hint = did_you_mean(self.env_name, environments)
                where = "<flag --env>" if self.settings.env else "<env INTUNED_RUNS_ENV>"
                message = f"unknown environment {self.env_name!r} (known: {known}){hint}"
                raise ProblemsFound([Problem(where, None, None, "error", "", message)])
            layers.append((("environments", self.env_name), environments[self.env_name]))
        return layers

    def _origin(self, key: str) -> tuple[str, ...]:
        """The document path of the layer that set `key` last (for error addresses)."""
        for prefix, layer in reversed(self._layers):
            if key in layer:
                return (*prefix, key)
        return (key,)

    # -- rendered values ---------------------------------------------------------------------------

    def _render(self, key: str, context: Mapping[str, Any] | None = None) -> Any:
        value = self.values.get(key)
        try:
            return self.renderer.render(value, {"vars": self.vars} if context is None else context)
        except TemplateError as e:
            # The config renders before the run files tell which variables are secrets, so a message
            # quoting a value read through env (`{{ {}[env.TOKEN] }}`) is masked here (docs/secrets.md).
            read = self.renderer.env.reads | self.renderer.env_reads
            message = Redactor(self.environ[n] for n in read if self.environ.get(n))(e.message)
            raise ProblemsFound([self._problem((*self._origin(key), *e.path), message)]) from e

    def _string(self, key: str, *, optional: bool = False) -> str | None:
        value = self._render(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise ProblemsFound([self._problem(self._origin(key), "must be a non-empty string")])
        return value

    @cached_property
    def env_allow(self) -> tuple[str, ...]:
        value = self.values.get("env_allow")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProblemsFound([self._problem(self._origin("env_allow"), "must be a list of name globs")])
        return tuple(value)

    @cached_property
    def unknown_keys(self) -> str:
        value = self._render("unknown_keys")
        if value not in ("error", "warn"):
            raise ProblemsFound([self._problem(self._origin("unknown_keys"), "must be error or warn")])
        return str(value)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.environ, self.env_allow)

    @cached_property
    def vars(self) -> dict[str, Any]:
        raw = self.values.get("vars")
        if not isinstance(raw, dict):
            raise ProblemsFound([self._problem(self._origin("vars"), "must be a mapping")])
        rendered: dict[str, Any] = self._render("vars", {})  # vars see env, not themselves
        for text in self.settings.vars:
            keys, value = parse_var(text)
            target = rendered
            for part in keys[:-1]:
                if not isinstance(target.get(part), dict):
                    target[part] = {}
                target = target[part]
            target[keys[-1]] = value
        return rendered

    def _path(self, key: str) -> Path:
        value = self._string(key)
        assert value is not None
        return (self.repository / value).resolve()

    @cached_property
    def runs_dir(self) -> Path:
        return self._path("runs_dir")

    @cached_property
    def state_location(self) -> Location:
        """Where the state lives: `--state`, the environment's `state`, else the top level's
        (docs/configuration.md, Environments; docs/shared-state.md, URLs)."""
        if self.settings.emulator:
            name = f"{self.env_name}.json" if self.env_name else "state.json"
            path = (self.repository / ".intuned-runs" / "emulator" / name).resolve()
            return FileLocation(path, self.relative(path))
        if self.settings.state:
            try:
                return parse_location(self.settings.state, self.repository)
            except LocationError as e:
                raise UsageError(f"--state: {e}") from None
        if self.env_name is not None and "state" not in self._layers[-1][1]:
            top = self._layers[1][1].get("state")
            if isinstance(top, str) and is_url(top):
                # Two environments must never share one shared state by accident.
                raise ConfigError(
                    f"environment {self.env_name} needs its own state: set environments.{self.env_name}.state"
                )
            path = (self.repository / ".intuned-runs" / f"{self.env_name}.json").resolve()
            return FileLocation(path, self.relative(path))
        value = self._string("state")
        assert value is not None
        try:
            return parse_location(value, self.repository)
        except LocationError as e:
            raise ProblemsFound([self._problem(self._origin("state"), str(e))]) from None

    @property
    def state_path(self) -> Path:
        """The state file's path (file states only: the watcher watches it)."""
        location = self.state_location
        if not isinstance(location, FileLocation):
            raise ConfigError(f"state {location.display} is not a file")
        return location.path

    @cached_property
    def schema_path(self) -> Path | None:
        value = self._string("schema", optional=True)
        return (self.repository / value).resolve() if value else None

    @cached_property
    def default_project(self) -> str | None:
        value = self._string("default_project", optional=True)
        if value is not None and "/" in value:
            raise ProblemsFound([self._problem(self._origin("default_project"), "a project name has no '/'")])
        return value

    @cached_property
    def max_submit(self) -> int:
        value = self._render("max_submit")
        if type(value) is not int or value < 0:
            raise ProblemsFound([self._problem(self._origin("max_submit"), "must be a non-negative integer")])
        return value

    @cached_property
    def base_url(self) -> str:
        if self.settings.base_url:
            return self.settings.base_url
        if self.environ.get("INTUNED_BASE_URL"):
            return self.environ["INTUNED_BASE_URL"]
        value = self._string("base_url")
        assert value is not None
        return value

    @cached_property
    def workspace_id(self) -> str | None:
        """The workspace, or None when unset; a malformed or conflicting one is an error."""
        from_env = self.environ.get("INTUNED_WORKSPACE_ID") or None
        # The conflict check needs the environment's value only when the flag does not decide anyway.
        if self.env_name is not None and "workspace_id" in self._layers[-1][1] and not self.settings.workspace_id:
            configured = self._string("workspace_id", optional=True)
            if from_env and configured and from_env != configured:
                raise ConfigError(
                    f"environment {self.env_name!r} sets workspace_id {configured} but INTUNED_WORKSPACE_ID is "
                    f"{from_env}: unset INTUNED_WORKSPACE_ID or pass --workspace-id"
                )
        value = self.settings.workspace_id or from_env
        if value is None and self.values.get("workspace_id") is not None:
            value = self._string("workspace_id", optional=True)
        if value is not None and not UUID.match(value):
            message = f"workspace_id {value!r} is not a UUID (find the workspace ID in Intuned's settings)"
            raise ProblemsFound([self._at_source("workspace_id", message)])
        return value

    def _at_source(self, key: str, message: str) -> Problem:
        """Addressed where the value came from: its flag, its environment variable, or the config line."""
        flag, variable = getattr(self.settings, key), f"INTUNED_{key.upper()}"
        if flag or self.environ.get(variable):
            where = f"<flag --{key.replace('_', '-')}>" if flag else f"<env {variable}>"
            return Problem(where, None, None, "error", "", message)
        return self._problem(self._origin(key), message)

    def problems(self) -> list[Problem]:
        """validate's checks of the config itself (docs/validation.md, Config checks). A value whose
        template needs an unset variable is left to the command that uses it, as workspace_id is."""
        problems: list[Problem] = []
        try:
            _ = self.workspace_id
        except ProblemsFound as e:  # a variable env_allow refuses is an error now, an unset one later
            problems += [p for p in e.problems if "is not set" not in p.message]
        try:
            if not absolute_url(self.base_url):
                problems.append(self._at_source("base_url", f"base_url {self.base_url!r} is not an absolute URL"))
        except ProblemsFound as e:
            problems += [p for p in e.problems if "is not set" not in p.message]
        return problems

    def workspace_if_known(self) -> str | None:
        """The workspace, or None when it is unset or does not render: plan runs without one (apply
        reports it). The --env / INTUNED_WORKSPACE_ID conflict (a ConfigError) is never silent."""
        try:
            return self.workspace_id
        except ProblemsFound:
            return None

    def require_workspace_id(self) -> str:
        try:
            value = self.workspace_id
        except ProblemsFound as e:
            # A template that renders nothing (docs/configuration.md's own `{{ env.INTUNED_WORKSPACE_ID }}` with the
            # variable unset) means the same as no workspace_id at all; any other problem (not a UUID, a
            # variable env_allow does not admit) is shown as it is.
            if not all(" is not set: " in p.message for p in e.problems):
                raise
            value = None
        if value is None:
            raise ConfigError("workspace_id is not set: use the config, INTUNED_WORKSPACE_ID or --workspace-id")
        return value

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.repository).as_posix()
        except ValueError:
            return str(path)
