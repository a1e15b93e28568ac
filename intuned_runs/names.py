"""Run and project names (docs/run-files.md, Run keys): after rendering, each is one URL path segment.

The pattern keeps `.` and `..` out: the client percent-encodes a project into the start URL, and an
HTTP client resolves dot segments, so `..` would POST to another endpoint than the one meant.
"""

from __future__ import annotations

import json
import re
from typing import Any

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # used with fullmatch: no trailing newline
_KINDS = {bool: "boolean", int: "integer", float: "number", list: "list", dict: "mapping", type(None): "null"}


def check_name(name: Any, what: str = "name") -> str | None:
    """None for a valid name, else the message (`name must be a string, got integer 10`)."""
    if not isinstance(name, str):
        kind = _KINDS.get(type(name), type(name).__name__)
        shown = f" {json.dumps(name)}" if kind in ("boolean", "integer", "number") else ""
        return f"{what} must be a string, got {kind}{shown}"
    if NAME.fullmatch(name):
        return None
    return (
        f"invalid {'run' if what == 'name' else what} name {name!r}: use letters, digits, '.', '_' and '-' "
        "(starting with a letter or digit, at most 128)"
    )


def check_given_project(project: Any) -> str | None:
    """A `project` the run (or its defaults) writes: one that renders to null says so (docs/run-files.md)."""
    return "project must be a string, got null" if project is None else check_project(project)


def check_project(project: Any) -> str | None:
    if project is None or project == "":
        return "run has no project: set 'project' (or default_project in the config)"
    if isinstance(project, str) and ("/" in project or not project.isprintable()):
        return f"project name {project!r} may not contain '/' or control characters"
    return check_name(project, "project")
