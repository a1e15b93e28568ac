"""The exit codes and the one exception tree of intuned-runs. Every message reads well without a traceback.

    EXIT_OK 0, EXIT_ERROR 1 (any error, usage errors included), EXIT_CHANGES 2 (only with
    --detailed-exitcode), EXIT_INTERRUPTED 130 (docs/cli.md, Exit codes)

    IntunedRunsError            anything the user can fix; the CLI prints it and exits 1
    ├── UsageError              a flag, selector or argument that makes no sense
    ├── ConfigError             intuned-runs.yaml or an environment variable is wrong
    ├── ProblemsFound           validation found errors; carries every Problem (collect, then fail)
    ├── SchemaError             an OpenAPI document or pulled schema that cannot be used
    ├── StateError              a state file or journal that cannot be trusted
    │   └── LockHeld            another process holds the state lock
    ├── StalePlan               a saved plan no longer matches the files or the state
    ├── Refused                 apply refuses before sending anything (a guard of docs/apply.md)
    ├── ApiError                an HTTP call failed (status, server message), already redacted
    └── Interrupted             SIGINT/SIGTERM before anything was sent; the CLI exits 130

Foreign exceptions (yaml, jinja2, jsonschema, httpx) are translated where they enter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from intuned_runs.problems import Problem

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130


class IntunedRunsError(Exception):
    """Base class: `str(error)` is the whole user-facing message."""


class UsageError(IntunedRunsError):
    pass


class ConfigError(IntunedRunsError):
    pass


class ProblemsFound(IntunedRunsError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        errors = sum(1 for p in self.problems if p.severity == "error")
        super().__init__(f"{errors} error(s) found")


class SchemaError(IntunedRunsError):
    pass


class StateError(IntunedRunsError):
    pass


class LockHeld(StateError):
    pass


class StalePlan(IntunedRunsError):
    def __init__(self, cause: str) -> None:
        super().__init__(f"Saved plan is stale: {cause}")


class Refused(IntunedRunsError):
    pass


class ApiError(IntunedRunsError):
    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class Interrupted(IntunedRunsError):
    pass
