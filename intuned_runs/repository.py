"""One invocation's view of the user's repository: config, schema, desired runs, secrets.

This is where the pipeline's first stages are wired together, so every command loads, renders and
validates the same way (docs/validation.md: every command validates first).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from intuned_runs import schema as schema_module
from intuned_runs.config import Config, Settings
from intuned_runs.desired import Desired, load
from intuned_runs.redaction import Redactor
from intuned_runs.runs import Loader, Run
from intuned_runs.state import State
from intuned_runs.store import StateStore
from intuned_runs.templating import API_KEY_VARIABLE

if TYPE_CHECKING:
    from intuned_runs.plan import Plan


class Repository:
    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.environ: Mapping[str, str] = dict(os.environ) if environ is None else environ
        self.config = Config(settings, self.environ)

    @cached_property
    def schema(self) -> dict[str, Any]:
        path = self.config.schema_path
        return schema_module.load(str(path) if path else None)

    @cached_property
    def checker(self) -> Any:
        from intuned_runs.validation import RequestChecker

        return RequestChecker(self.schema)

    @cached_property
    def desired(self) -> Desired:
        with _loading():
            return load(self.config, self.checker, self.environ, lambda: self.loader)

    @cached_property
    def loader(self) -> Loader:
        return Loader(self.config, self.checker)

    def redactor(self) -> Redactor:
        """Values to mask: the API key and every variable a run reads through secret()."""
        names = {API_KEY_VARIABLE}
        with contextlib.suppress(Exception):
            names |= self.desired.secret_names
        return Redactor(self.environ[n] for n in names if self.environ.get(n))

    def real_request(self, run: Run) -> dict[str, Any]:
        return self.loader.render_real(run)

    def missing_secrets(self, runs: list[Run]) -> list[str]:
        if self.config.settings.emulator:
            return []  # the emulator sends placeholder text for unset secrets (docs/apply.md)
        return sorted({n for run in runs for n in run.secrets if not self.environ.get(n)})

    # -- state and plan --------------------------------------------------------------------------------

    @cached_property
    def schema_version(self) -> str:
        return schema_module.version(self.schema)

    def fingerprint(self, project: str, name: str, request: Any) -> str:
        from intuned_runs.fingerprint import fingerprint

        return fingerprint(project, name, request, self.schema)

    def changes(self, before: Any, after: Any) -> list[dict[str, Any]]:
        from intuned_runs.fingerprint import changes

        return changes(before, after, self.schema)

    def store(self, redactor: Redactor | None = None) -> StateStore:
        from intuned_runs.fingerprint import FINGERPRINT_VERSION

        return StateStore(
            self.config.state_path,
            display=self.config.relative(self.config.state_path),
            redactor=redactor,
            fingerprint_version=FINGERPRINT_VERSION,
            schema_version=self.schema_version,
        )

    def upgrade(self, state: State) -> State:
        """Recompute stored fingerprints when the rules or the schema changed (never mass 'changed')."""
        from intuned_runs.fingerprint import FINGERPRINT_VERSION

        if state.fingerprint_version == FINGERPRINT_VERSION and state.schema_version == self.schema_version:
            return state

        def refingerprint(key: str, request: dict[str, Any]) -> str:
            project, _, name = key.partition("/")
            return self.fingerprint(project, name, request)

        return state.with_fingerprints(refingerprint, FINGERPRINT_VERSION, self.schema_version)

    def load_state(self) -> State:
        with _loading():
            return self.upgrade(self.store().load())

    def plan(
        self,
        state: State,
        desired: Desired,
        *,
        select: tuple[str, ...] = (),
        force: tuple[str, ...] = (),
        retry_unknown: bool = False,
        memo: dict[str, Any] | None = None,
    ) -> Plan:
        from intuned_runs import selection
        from intuned_runs.plan import make_plan

        return make_plan(
            desired.runs,
            state,
            self.fingerprint,
            moves=desired.moves,
            select=selection.parse(select),
            force=selection.parse(force),
            retry_unknown=retry_unknown,
            changes=self.changes,
            memo=memo,
        )


@contextmanager
def _loading() -> Iterator[None]:
    """Load without the cyclic garbage collector, then freeze what was loaded.

    Loading builds hundreds of thousands of long-lived objects and creates almost no cycles; each full
    collection would walk all of them again (measured: a quarter of a 10,000-run plan, docs/performance.md).
    Reference counting still frees everything that is not in a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
