"""`intuned-runs watch [--apply]` (docs/watch.md): keep a directory planned, or applied, as it is edited.

The watcher is armed before the first plan, so edits made while a plan or apply runs are seen by the
next batch. Only changed files are re-read (their parsed, rendered and validated runs are kept per
file); a config change re-reads everything; environment variables are read once. Bad input prints
its problems and submits nothing until fixed; the watcher never dies on it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from intuned_runs import heap
from intuned_runs.api.outcome import Outcome
from intuned_runs.apply.session import ApplyOptions, run_apply
from intuned_runs.apply.signals import Signals
from intuned_runs.config import Config, Settings
from intuned_runs.desired import Desired, assemble, discover
from intuned_runs.errors import IntunedRunsError, ProblemsFound
from intuned_runs.location import FileLocation
from intuned_runs.plan import Plan, after_apply, for_watch, plan_runs
from intuned_runs.problems import Problem
from intuned_runs.repository import Repository
from intuned_runs.runs import FileResult
from intuned_runs.state.backend import Backend
from intuned_runs.state.model import State

_IGNORED_PARTS = {".git", "__pycache__", "node_modules"}


class WatchReport(Struct):
    """What the watcher tells the user; the CLI wires these to Output."""

    plan: Callable[[Plan, Plan | None], None]  # (new plan, previous plan or None at start)
    problems: Callable[[list[Problem]], None]
    outcome: Callable[[Outcome], None]
    message: Callable[[str], None]
    timing: Callable[[str], None] = lambda text: None


class WatchOptions(Struct, frozen=True):
    """`apply`: apply each batch, with `session`'s options (its selection also limits the plan shown);
    without a person at a TTY (`session.interactive` False), max_submit guards every batch."""

    apply: bool = False
    api_key: str = ""
    session: ApplyOptions = field(default_factory=ApplyOptions)


class Watcher:
    """The watch loop's state between batches (docs/watch.md)."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        options: WatchOptions,
        report: WatchReport,
        signals: Signals,
        backend: Callable[[Repository], Backend],  # the state of a (re)loaded repository
        transport: Any = None,
    ) -> None:
        self.settings = settings
        self.environ = environ
        self.options = options
        self.report = report
        self.signals = signals
        self.backend = backend
        self.transport = transport
        self.repository: Repository
        self.store: Backend
        self.files: dict[str, FileResult] = {}
        self.submitted_once: set[str] = set()
        self.previous: Plan | None = None
        self.seen_state: tuple[str, int] | None = None
        self.state: State | None = None
        self.memo: dict[str, Any] = {}  # PlannedRuns kept between batches

    # -- loading -----------------------------------------------------------------------------------

    def _reload_all(self) -> list[Problem]:
        """(Re)read config and every run file. Returns problems that stop the whole repository."""
        self.files = {}
        try:
            self.repository = Repository(self.settings, self.environ, self.options.session.selection)
            self.store = self.backend(self.repository)
        except ProblemsFound as e:
            return list(e.problems)
        return self._rescan(set())

    def _rescan(self, changed: set[str]) -> list[Problem]:
        """Re-read the run files that changed, appeared or vanished."""
        if (
            changed
            and changed <= set(self.files)
            and all((self.repository.config.repository / f).is_file() for f in changed)
        ):
            loader = self.repository.loader  # edits of known files: no need to walk runs_dir again
            for relative in changed:
                self.files[relative] = loader.load_file(relative)
            return []
        try:
            found = discover(self.repository.config)
        except IntunedRunsError as e:
            return [Problem(self.repository.config.file or "intuned-runs.yaml", None, None, "error", "", str(e))]
        if isinstance(found, Problem):
            self.files = {}
            return [found]
        wanted = set(found)
        for gone in set(self.files) - wanted:
            del self.files[gone]
        loader = self.repository.loader
        for relative in found:
            if relative not in self.files or relative in changed:
                self.files[relative] = loader.load_file(relative)
        self.files = {relative: self.files[relative] for relative in found}  # keep discovery order
        return []

    def desired(self) -> Desired:
        return assemble(
            self.repository.config, [self.repository.loader.config_result, *self.files.values()], self.environ
        )

    # -- one round ---------------------------------------------------------------------------------

    def _state_marker(self) -> tuple[str, int] | None:
        return None if self.state is None else (self.state.lineage, self.state.serial)

    def _round(self, fatal: list[Problem], started: float | None = None) -> None:
        started = time.perf_counter() if started is None else started
        if fatal:
            self.report.problems(fatal)
            self.report.message("Waiting for a fix: nothing is submitted until the repository is valid.")
            return
        desired = self.desired()
        if desired.problems:
            self.report.problems(list(desired.problems))
        if not desired.ok:
            self.report.message("Waiting for a fix: nothing is submitted until the repository is valid.")
            return
        if self.options.apply:
            self._apply(desired, started)
            return
        try:
            plan = self._plan(desired)
        except IntunedRunsError as e:
            self.report.message(f"error: {e}")
            return
        self._show(plan, started)

    def _show(self, plan: Plan, started: float) -> None:
        self.report.plan(plan, self.previous)
        self.previous = plan
        # The watch figure of docs/performance.md: from receiving the batch to the end of the plan output.
        self.report.timing(f"planned in {(time.perf_counter() - started) * 1000:.1f} ms")

    def _plan(self, desired: Desired) -> Plan:
        """The plan of this batch without taking the lock (watch without --apply)."""
        if self.state is None:
            with heap.loading():
                self.state = self.store.load()
            self.seen_state = self._state_marker()
        session = self.options.session
        plan = plan_runs(desired, self.state, self.repository.schema, selection=session.selection, memo=self.memo)
        return for_watch(plan, frozenset(self.submitted_once))

    def _apply(self, desired: Desired, started: float) -> None:
        """One apply session per batch; its plan, made under the lock, is the one shown."""
        shown: list[Plan] = []

        def on_plan(plan: Plan) -> None:
            shown.append(plan)
            self._show(plan, started)

        options = replace(
            self.options.session, command="intuned-runs watch --apply", watch_once=frozenset(self.submitted_once)
        )
        try:
            result = run_apply(
                self.repository,
                self.store,
                desired,
                options,
                api_key=self.options.api_key,
                confirm=lambda plan: True,
                signals=self.signals,
                on_outcome=self.report.outcome,
                on_plan=on_plan,
                transport=self.transport,
            )
        except IntunedRunsError as e:
            if not shown:  # refused before planning (the lock is busy, say): still show what would change
                with contextlib.suppress(IntunedRunsError):
                    self._show(self._plan(desired), started)
            self.report.message(f"error: {e}")
            return
        chosen = options.selection
        once = {
            r.key
            for r in result.plan.runs
            if r.run is not None and (r.run.trigger == "always" or chosen.forced(r.key, r.run.labels))
        }
        self.submitted_once |= {o.key for o in result.outcomes if o.kind == "submitted" and o.key in once}
        self.state = result.state
        self.seen_state = self._state_marker()
        if result.outcomes:
            s = result.summary
            self.report.message(
                f"Apply: {s['submitted']} submitted, {s['failed']} failed, {s['unknown']} unknown, "
                f"{s['skipped']} skipped."
            )
            self.previous = after_apply(result.plan, {o.key: o.kind for o in result.outcomes})

    # -- batches -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._round(self._reload_all())
        # What was loaded stays for the session: keep the collector from scanning it on every batch.
        gc.freeze()

    def handle(self, changes: set[tuple[int, str]]) -> bool:
        """One batch of filesystem changes; returns False when nothing relevant changed."""
        received = time.perf_counter()
        config = self.repository.config if hasattr(self, "repository") else None
        paths = [Path(p) for _, p in changes if not (_IGNORED_PARTS & set(Path(p).parts))]
        config_path = config.path if config and config.path else None
        root = config.repository if config else Path(self.settings.chdir or ".").resolve()
        if any(p == config_path or (p.parent == root and p.name == "intuned-runs.yaml") for p in paths):
            self.state = None
            self._round(self._reload_all())
            return True
        if config is None:
            return False
        runs_dir = config.runs_dir
        location = config.state_location
        state_path = location.path if isinstance(location, FileLocation) else None  # a shared state is not watched
        touched = [p for p in paths if p == runs_dir or runs_dir in p.parents]
        state_changed = False
        if any(p == state_path for p in paths):
            try:
                fresh = self.store.load()
            except IntunedRunsError as e:
                self.report.message(f"error: {e}")
                return True
            if (fresh.lineage, fresh.serial) != self.seen_state:  # not our own write
                self.state, self.seen_state, state_changed = fresh, (fresh.lineage, fresh.serial), True
        if not touched and not state_changed:
            return False
        changed = {config.relative(p) for p in touched}
        self._round(self._rescan(changed), received)
        return True


def watched_roots(watcher: Watcher) -> list[Path]:
    """The repository (config, runs_dir, state), plus the folders of a config or state kept outside it."""
    start = Path(watcher.settings.chdir or os.getcwd()).resolve()
    try:
        config = Config(watcher.settings, watcher.environ)
        location = config.state_location
        paths = [config.repository, config.runs_dir]
        if isinstance(location, FileLocation):
            paths.append(location.path.parent)
        if config.path is not None:
            paths.append(config.path.parent)
    except IntunedRunsError:
        return [start]  # the watcher reports the problem; the folder is still watched for the fix
    roots: list[Path] = []
    for path in sorted({p for p in paths if p.is_dir()}, key=lambda p: len(p.parts)):
        if not any(path == root or root in path.parents for root in roots):
            roots.append(path)
    return roots or [start]


def run_watch(watcher: Watcher, stop: Any, *, poll: bool | None = None) -> None:
    """Arm the filesystem watch, plan (and apply) once, then once per batch until `stop` is set."""
    from watchfiles import Change, DefaultFilter
    from watchfiles._rust_notify import RustNotify  # armed on construction, unlike watchfiles.watch()

    force_polling = poll if poll is not None else bool(os.environ.get("WATCHFILES_FORCE_POLLING"))
    keep = DefaultFilter()
    with RustNotify([str(p) for p in watched_roots(watcher)], False, force_polling, 50, True, True) as notify:
        watcher.start()
        while not stop.is_set():
            raw = notify.watch(50, 10, 500, stop)
            if isinstance(raw, str):  # "stop", "signal" or "timeout"
                if raw == "timeout":
                    continue
                break
            changes = {(int(change), path) for change, path in raw if keep(Change(change), path)}
            if changes:
                watcher.handle(changes)
