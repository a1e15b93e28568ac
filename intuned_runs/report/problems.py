"""Problems as text, JSON or GitHub annotations (docs/validation.md, Output formats)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from intuned_runs import FORMAT_VERSION
from intuned_runs.problems import Problem
from intuned_runs.report.style import PLAIN, Palette


def resolve_format(fmt: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if fmt == "auto":
        return "github" if env.get("GITHUB_ACTIONS") == "true" else "text"
    return fmt


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(problem: Problem) -> str:
    props = [f"file={_escape_property(problem.file)}"]
    if problem.line is not None:
        props += [f"line={problem.line}", f"col={problem.col or 1}"]
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    return f"::{problem.severity} {','.join(props)}::{_escape_data(message)}"


def text_line(problem: Problem, paint: Palette = PLAIN) -> str:
    """`FILE:LINE:COL: error: PATH: MESSAGE`, the severity coloured when `paint` is enabled."""
    line = problem.as_text()
    if not paint.enabled:
        return line
    head, sep, tail = line.partition(f": {problem.severity}: ")
    return f"{head}: {paint.severity(problem.severity)}: {tail}" if sep else line


def problems_text(problems: list[Problem], fmt: str, paint: Palette = PLAIN) -> list[str]:
    """Lines for the problems in the given format (`text`, `github`); json is one document."""
    if fmt == "json":
        return [
            json.dumps(
                {"format_version": FORMAT_VERSION, "problems": [p.as_dict() for p in problems]},
                indent=2,
                ensure_ascii=False,
            )
        ]
    if fmt == "github":
        return [github_line(p) for p in problems]
    return [text_line(p, paint) for p in problems]
