"""One invocation's view of the user's repository: config, schema, desired runs, secrets.

This is where the loading stages are wired together, so every command loads, renders and validates the
same way (docs/validation.md: every command validates first). It knows nothing of the state or the plan.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from intuned_runs import heap
from intuned_runs import schema as schema_module
from intuned_runs.config import Config, Settings
from intuned_runs.desired import Desired, load
from intuned_runs.problems import utf8_text
from intuned_runs.redaction import Redactor
from intuned_runs.runs import Loader, Run
from intuned_runs.selection import EVERYTHING, Selection
from intuned_runs.templating import API_KEY_VARIABLE
from intuned_runs.validation import RequestChecker

# The shared states' credentials, masked like secrets wherever they might be echoed (docs/shared-state.md,
# Credentials).
STATE_CREDENTIALS = ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class Repository:
    """`selection`: with one, only the requests of planned runs are rendered and validated; every run's
    name, project, labels and trigger still are (docs/plan.md, Selection). `validate` passes none.
    `sends=False` (plan): nothing is sent, so runs keep no template for the real body (docs/performance.md, Memory)."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        selection: Selection | None = None,
        *,
        sends: bool = True,
    ) -> None:
        self.environ: Mapping[str, str] = dict(os.environ) if environ is None else environ
        self.config = Config(settings, self.environ)
        self.selection = selection if selection is not None else EVERYTHING
        self.sends = sends

    @cached_property
    def schema(self) -> dict[str, Any]:
        path = self.config.schema_path
        return schema_module.load(str(path) if path else None)

    @cached_property
    def schema_version(self) -> str:
        return schema_module.version(self.schema)

    @cached_property
    def checker(self) -> RequestChecker:
        return RequestChecker(self.schema, unknown_keys="warning" if self.config.unknown_keys == "warn" else "error")

    @cached_property
    def desired(self) -> Desired:
        with heap.loading():
            return load(self.config, self.checker, self.environ, lambda: self.loader)

    @cached_property
    def loader(self) -> Loader:
        wanted = None if self.selection.everything else self.selection.planned
        loader = Loader(self.config, self.checker, wanted)
        loader.templates = self.sends
        return loader

    def redactor(self) -> Redactor:
        """Values to mask: the API key and every variable a run reads through secret()."""
        names = {API_KEY_VARIABLE, *STATE_CREDENTIALS}
        with contextlib.suppress(Exception):
            names |= self.desired.secret_names
        values = [self.environ[n] for n in names if self.environ.get(n)]
        with contextlib.suppress(Exception):
            values += self.config.state_location.secrets  # a password in the state URL
        return Redactor(values)

    def real_request(self, run: Run) -> dict[str, Any]:
        """The body apply sends: the run's request rendered with the real secret values."""
        return self.loader.render_real(run)

    def undecodable_secrets(self, runs: list[Run]) -> list[str]:
        """Secrets whose bytes are not UTF-8 (they reach Python as surrogate escapes): no JSON body holds them."""
        values = {n: self.environ.get(n, "") for run in runs for n in run.secrets}
        return sorted(n for n, v in values.items() if not utf8_text(v))

    def missing_secrets(self, runs: list[Run]) -> list[str]:
        if self.config.settings.emulator:
            return []  # the emulator sends placeholder text for unset secrets (docs/apply.md, Emulator mode)
        return sorted({n for run in runs for n in run.secrets if not self.environ.get(n)})
