"""`intuned-runs watch [--apply]` (docs/watch.md): keep a directory planned, or applied, as it is edited.

The watcher is armed before the first plan, so edits made while a plan or apply runs are seen by the
next batch. Only changed files are re-read (their parsed, rendered and validated runs are kept per
file); a config change re-reads everything; environment variables are read once. Bad input prints
its problems and submits nothing until fixed; the watcher never dies on it.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intuned_runs import selection
from intuned_runs.apply import ApplyOptions, RunOutcome, Signals, run_apply
from intuned_runs.config import Config, Settings
from intuned_runs.desired import Desired, assemble, discover
from intuned_runs.errors import IntunedRunsError, ProblemsFound
from intuned_runs.plan import Plan, for_watch
from intuned_runs.problems import Problem
from intuned_runs.repository import Repository
from intuned_runs.runs import FileResult

_IGNORED_PARTS = {".git", "__pycache__", "node_modules"}


@dataclass
class WatchReport:
    """What the watcher tells the user; the CLI wires these to Output."""

    plan: Callable[[Plan, Plan | None], None]  # (new plan, previous plan or None at start)
    problems: Callable[[list[Problem]], None]
    outcome: Callable[[RunOutcome], None]
    message: Callable[[str], None]
    timing: Callable[[str], None] = lambda text: None


@dataclass
class WatchOptions:
    select: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
    apply: bool = False
    concurrency: int = 8
    lock_timeout: float = 0.0
    read_timeout: float = 60.0
    api_key: str = ""
    interactive: bool = False  # without a person at a TTY, max_submit guards every batch (docs/apply.md)
    max_submit: int | None = None  # None: the config's


@dataclass
class Watcher:
    settings: Settings
    environ: Mapping[str, str]
    options: WatchOptions
    report: WatchReport
    signals: Signals
    redactor: Any = None
    transport: Any = None
    repository: Repository = field(init=False)
    files: dict[str, FileResult] = field(default_factory=dict, init=False)
    submitted_once: set[str] = field(default_factory=set, init=False)
    previous: Plan | None = field(default=None, init=False)
    seen_state: tuple[str, int] | None = field(default=None, init=False)
    state: Any = field(default=None, init=False)
    memo: dict[str, Any] = field(default_factory=dict, init=False)  # PlannedRuns kept between batches

    # -- loading -----------------------------------------------------------------------------------

    def _reload_all(self) -> list[Problem]:
        """(Re)read config and every run file. Returns problems that stop the whole repository."""
        self.files = {}
        try:
            self.repository = Repository(self.settings, self.environ)
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
        try:
            if self.state is None:
                self.state = self.repository.load_state()
                self.seen_state = self._state_marker()
            plan = self._plan(desired)
        except IntunedRunsError as e:
            self.report.message(f"error: {e}")
            return
        self.report.plan(plan, self.previous)
        self.previous = plan
        # the watch figure of docs/performance.md: from receiving the batch to the end of the plan output.
        self.report.timing(f"planned in {(time.perf_counter() - started) * 1000:.1f} ms")
        if self.options.apply:
            self._apply(desired)

    def _plan(self, desired: Desired) -> Plan:
        plan = self.repository.plan(
            self.state, desired, select=self.options.select, force=self.options.force, memo=self.memo
        )
        return for_watch(plan, frozenset(self.submitted_once))

    def _apply(self, desired: Desired) -> None:
        options = ApplyOptions(
            select=self.options.select,
            force=self.options.force,
            concurrency=self.options.concurrency,
            interactive=self.options.interactive,
            max_submit=self.options.max_submit,
            lock_timeout=self.options.lock_timeout,
            read_timeout=self.options.read_timeout,
            command="intuned-runs watch --apply",
            watch_once=frozenset(self.submitted_once),
        )
        try:
            result = run_apply(
                self.repository,
                desired,
                options,
                api_key=self.options.api_key,
                confirm=lambda plan: True,
                signals=self.signals,
                on_outcome=self.report.outcome,
                redactor=self.redactor,
                transport=self.transport,
            )
        except IntunedRunsError as e:
            self.report.message(f"error: {e}")
            return
        forced = selection.parse(self.options.force)
        once = {
            r.key
            for r in result.plan.runs
            if r.run is not None and (r.run.trigger == "always" or selection.any_match(forced, r.key, r.run.labels))
        }
        self.submitted_once |= {o.key for o in result.outcomes if o.outcome == "submitted" and o.key in once}
        self.state = result.state
        self.seen_state = self._state_marker()
        if result.outcomes:
            s = result.summary
            self.report.message(
                f"Apply: {s['submitted']} submitted, {s['failed']} failed, {s['unknown']} unknown, "
                f"{s['skipped']} skipped."
            )
            self.previous = self._plan(desired)

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
        state_path = config.state_path
        touched = [p for p in paths if p == runs_dir or runs_dir in p.parents]
        state_changed = False
        if any(p == state_path for p in paths):
            try:
                fresh = self.repository.load_state()
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
        paths = [config.repository, config.runs_dir, config.state_path.parent]
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
