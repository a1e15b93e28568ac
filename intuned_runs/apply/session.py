"""One apply, start to end (docs/apply.md): lock, plan against the folded state, check the guards,
confirm, submit, fold, unlock. `watch --apply` runs one session per batch, with the same options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgspec import Struct

from intuned_runs.api.client import Client, encode_body
from intuned_runs.api.outcome import Outcome
from intuned_runs.apply import guards
from intuned_runs.apply.signals import Signals
from intuned_runs.apply.workers import Submission, record_housekeeping, submit_all
from intuned_runs.desired import Desired
from intuned_runs.plan import Plan, for_watch, plan_runs
from intuned_runs.planfile import SavedPlan, check_fresh, restrict
from intuned_runs.repository import Repository
from intuned_runs.selection import Selection
from intuned_runs.state.backend import Backend
from intuned_runs.state.model import State

OUTCOME_KINDS = ("submitted", "failed", "unknown", "skipped")


class ApplyOptions(Struct, frozen=True):
    select: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    retry_unknown: bool = False
    concurrency: int = 8
    max_submit: int | None = None  # None: the config's
    interactive: bool = False  # a person is there (TTY): max_submit does not apply
    lock_timeout: float = 0.0
    read_timeout: float = 60.0
    command: str = "intuned-runs apply"
    saved: SavedPlan | None = None  # submit exactly its runs
    # watch: runs already submitted once this session (always / --run); forgets are never applied
    watch_once: frozenset[str] | None = None

    @property
    def selection(self) -> Selection:
        """The planned set: a saved plan's own runs, else --select, --run and --exclude (docs/plan.md)."""
        if self.saved is not None:
            return Selection(keys=self.saved.planned)
        return Selection.of(self.select, self.force, self.exclude)


class ApplyResult(Struct, frozen=True):
    plan: Plan
    outcomes: tuple[Outcome, ...]
    forgotten: tuple[str, ...]
    state: State  # after the fold
    workspace_id: str
    confirmed: bool = True

    @property
    def summary(self) -> dict[str, int]:
        count = {kind: sum(1 for o in self.outcomes if o.kind == kind) for kind in OUTCOME_KINDS}
        return {**count, "forgotten": len(self.forgotten), "blocked": len(self.plan.blocked)}

    @property
    def ok(self) -> bool:
        return all(o.kind == "submitted" for o in self.outcomes) and not self.plan.blocked


def run_apply(
    repository: Repository,
    backend: Backend,
    desired: Desired,
    options: ApplyOptions,
    *,
    api_key: str,
    confirm: Callable[[Plan], bool],
    signals: Signals,
    on_outcome: Callable[[Outcome], None],
    on_plan: Callable[[Plan], None] = lambda plan: None,
    log: Callable[[str], None] | None = None,
    timing: Callable[[str], None] | None = None,
    transport: Any = None,
) -> ApplyResult:
    """Every guard refuses before anything is sent. Raises Refused, StalePlan, LockHeld."""
    config = repository.config
    workspace, base_url = guards.target(config, api_key)
    watching = options.watch_once is not None
    with backend.lock(options.command, options.lock_timeout):
        state = backend.fold()
        plan = plan_runs(
            desired,
            state,
            repository.schema,
            selection=options.selection,
            retry_unknown=options.retry_unknown,
        )
        if options.saved is not None:  # a saved plan names its own staleness first (docs/plan.md, Saved plans)
            fingerprints = {r.key: r.fingerprint for r in plan.runs if r.run is not None}
            check_fresh(options.saved, state, fingerprints, workspace, backend.display)
            plan = restrict(plan, options.saved)
        guards.same_workspace(state, workspace, backend.display)
        if options.watch_once is not None:
            plan = for_watch(plan, options.watch_once)
        on_plan(plan)
        submit = plan.to_submit
        sending = [r.run for r in submit if r.run is not None]
        guards.secrets_set(repository.missing_secrets(sending))
        guards.secrets_decodable(repository.undecodable_secrets(sending))
        limit = config.max_submit if options.max_submit is None else options.max_submit
        guards.within_max_submit(len(submit), limit, interactive=options.interactive)
        if not (submit or (plan.to_forget and not watching) or plan.moves):
            if state.workspace_id is None and not watching:
                # The first apply records the workspace even with nothing to send (docs/apply.md,
                # Workspace), so a later apply to another workspace is refused.
                with backend.journal(state) as journal:
                    record_housekeeping(journal, now=backend.now(), workspace=workspace, moves=(), forget=())
                state = backend.fold()
            return ApplyResult(plan, (), (), state, workspace)
        if not confirm(plan):
            return ApplyResult(plan, (), (), state, workspace, confirmed=False)
        submissions = [
            Submission(r.key, r.project, r.fingerprint, r.run.request, encode_body(repository.real_request(r.run)))
            for r in submit
            if r.run is not None
        ]
        forget = () if watching else tuple(r.key for r in plan.to_forget)
        outcomes: list[Outcome] = []
        with backend.journal(state) as journal:
            record_housekeeping(
                journal,
                now=backend.now(),
                workspace=workspace if state.workspace_id is None else None,
                moves=plan.moves,
                forget=forget,
            )
            if submissions:
                with Client(
                    base_url,
                    workspace,
                    api_key,
                    concurrency=options.concurrency,
                    read_timeout=options.read_timeout,
                    redactor=repository.redactor(),
                    log=log,
                    timing=timing,
                    transport=transport,
                ) as client:
                    outcomes = submit_all(
                        submissions,
                        client,
                        journal,
                        concurrency=options.concurrency,
                        now=backend.now,
                        signals=signals,
                        on_outcome=on_outcome,
                        target=base_url,
                    )
        del submissions  # 100,000 encoded bodies need not outlive the sending (docs/performance.md, Memory)
        state = backend.fold()
        return ApplyResult(plan, tuple(outcomes), forget, state, workspace)
