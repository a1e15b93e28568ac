"""The apply engine (docs/apply.md): submit planned runs with bounded concurrency, an intent journaled
(fsync'ed) before each request and the outcome after it, so a process killed at any instant never
leads to a run submitted twice.

Concurrency and retries live here and in `api.Client` only; `concurrency=1` runs the same code.
Worker threads share one httpx client (one connection pool): measured here, threads sustain
more requests per second than an AsyncClient.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from intuned_runs.journal import (
    FailedRecord,
    ForgetRecord,
    IntentRecord,
    MoveRecord,
    Record,
    SubmittedRecord,
    UnknownRecord,
    WorkspaceRecord,
)

if TYPE_CHECKING:
    from intuned_runs.desired import Desired
    from intuned_runs.plan import Plan, PlannedRun
    from intuned_runs.planfile import SavedPlan
    from intuned_runs.repository import Repository
    from intuned_runs.state import State

OutcomeKind = Literal["submitted", "failed", "unknown", "skipped"]
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Submission:
    """One run to send: its key and project, the redacted request (for the state), the real body."""

    key: str
    project: str
    fingerprint: str
    request: dict[str, Any]
    body: dict[str, Any]


@dataclass(frozen=True)
class RunOutcome:
    key: str
    outcome: OutcomeKind
    run_id: str | None = None
    status: str | None = None
    http_status: int | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        error = None
        if self.outcome != "submitted" and (self.message or self.http_status):
            error = {"http_status": self.http_status, "message": self.message}
        return {"key": self.key, "outcome": self.outcome, "run_id": self.run_id, "status": self.status, "error": error}


class Journal(Protocol):
    def append(self, record: Record) -> None: ...
    def append_durable(self, *records: Record) -> None: ...


class Starter(Protocol):
    def start(self, project: str, body: dict[str, Any], should_stop: Callable[[], bool] = ...) -> Any: ...


@dataclass
class Signals:
    """Set by the CLI's signal handlers (or a test): `stop` = no new submissions; `abandon` = stop
    waiting for in-flight requests and record them as unknown."""

    stop: threading.Event
    abandon: threading.Event
    sending: threading.Event = field(default_factory=threading.Event)  # set once submissions start

    @classmethod
    def new(cls) -> Signals:
        return cls(threading.Event(), threading.Event())


def record_housekeeping(
    journal: Journal, *, now: str, workspace: str | None, moves: Iterable[tuple[str, str]], forget: Iterable[str]
) -> None:
    """What an apply records besides submissions: the workspace (first apply), moves, forgets."""
    if workspace is not None:
        journal.append_durable(WorkspaceRecord(workspace))
    for old, new in moves:
        journal.append(MoveRecord(old, new, now))
    for key in forget:
        journal.append(ForgetRecord(key, now))


def submit_all(
    submissions: Sequence[Submission],
    client: Starter,
    journal: Journal,
    *,
    concurrency: int,
    now: Callable[[], str],
    signals: Signals,
    on_outcome: Callable[[RunOutcome], None],
) -> list[RunOutcome]:
    """Submit every run; returns one outcome per submission, in submission order."""
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(submissions)):
        pending.put(index)
    done: queue.SimpleQueue[tuple[int, RunOutcome]] = queue.SimpleQueue()
    in_flight: dict[int, Submission] = {}
    guard = threading.Lock()
    halted = threading.Event()  # a 401/403: the key or workspace is wrong for every run
    # Intents are made durable in batches of `concurrency`, one fsync each: at most `concurrency`
    # intents whose request was never sent (plus those in flight) can show up as false unknowns
    # after a crash, the 2 × concurrency docs/apply.md (Crash safety) allows. submissions[:journaled] have their intent.
    journaled = 0
    intents = threading.Lock()
    settled: set[int] = set()  # every index gets exactly one outcome, recorded once (under `guard`)

    def should_stop() -> bool:
        return signals.stop.is_set() or halted.is_set()

    half = max(1, concurrency // 2)

    def extend(count: int) -> None:
        """Make the next `count` intents durable (caller holds `intents`)."""
        nonlocal journaled
        end = min(len(submissions), journaled + count)
        at = now()
        journal.append_durable(*(IntentRecord(s.key, s.fingerprint, s.request, at) for s in submissions[journaled:end]))
        journaled = end

    def ensure_intent(index: int) -> None:
        if index < journaled:  # durable already (`journaled` only grows)
            # Keep a batch ahead, written by one worker while the others send: no stall on fsync. Never
            # more than `concurrency` intents wait unsent, so a crash leaves at most 2 x concurrency
            # false unknowns with those in flight (docs/apply.md).
            if journaled - index <= half and journaled < len(submissions) and intents.acquire(blocking=False):
                try:
                    extend(half)
                finally:
                    intents.release()
            return
        with intents:
            if index >= journaled:
                extend(max(index + 1 - journaled, concurrency))

    def not_sent(index: int, item: Submission, reason: str) -> RunOutcome:
        """Settle a run that was never sent (caller holds `intents` and `guard`): its intent, if any,
        is cancelled."""
        settled.add(index)
        if index < journaled:
            journal.append(FailedRecord(item.key, now()))
        return RunOutcome(item.key, "skipped", message=reason)

    failures: list[BaseException] = []  # a journal that cannot be written stops the apply

    def work() -> None:
        try:
            send_all()
        except Exception as e:
            failures.append(e)
            signals.stop.set()  # the others send nothing more; what is in flight finishes
            done.put((-1, RunOutcome("", "skipped")))  # wake the main thread

    def send_all() -> None:
        while True:
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            item = submissions[index]
            if should_stop():
                with intents, guard:  # the lock order of the abandon path: intents, then guard
                    if index not in settled:
                        done.put((index, not_sent(index, item, _skip_reason(halted))))
                continue
            ensure_intent(index)
            with guard:
                if index in settled or signals.abandon.is_set():
                    continue  # the main thread settles what was never sent
                in_flight[index] = item
            try:
                result = client.start(item.project, item.body, should_stop)
                outcome = RunOutcome(
                    item.key, result.kind, result.run_id, result.status, result.http_status, result.message
                )
            except Exception as e:
                outcome = RunOutcome(item.key, "unknown", message=f"unexpected error: {type(e).__name__}")
            with guard:
                in_flight.pop(index, None)
                if index in settled:
                    continue  # abandoned: already recorded as unknown
                settled.add(index)
                _record(journal, item, outcome, now())
            if outcome.outcome == "failed" and outcome.http_status in (401, 403):
                halted.set()
            done.put((index, outcome))

    signals.sending.set()
    workers = [
        threading.Thread(target=work, name=f"submit-{n}", daemon=True)
        for n in range(max(1, min(concurrency, len(submissions))))
    ]
    for worker in workers:
        worker.start()
    outcomes: dict[int, RunOutcome] = {}
    while len(outcomes) < len(submissions):
        if signals.abandon.is_set():
            with intents, guard:
                for index, item in enumerate(submissions):
                    if index in settled:
                        continue
                    if index in in_flight:  # sent, no answer yet: the server may have started it
                        settled.add(index)
                        journal.append_durable(UnknownRecord(item.key, INTERRUPTED, now()))
                        outcomes[index] = RunOutcome(item.key, "unknown", message=INTERRUPTED)
                        on_outcome(outcomes[index])
                    else:
                        outcomes[index] = not_sent(index, item, INTERRUPTED)
                in_flight.clear()
            while True:  # outcomes the workers settled before the abandon
                try:
                    index, outcome = done.get_nowait()
                except queue.Empty:
                    break
                if index not in outcomes:
                    outcomes[index] = outcome
                    on_outcome(outcome)
            break
        if failures and not any(w.is_alive() for w in workers):
            raise failures[0]  # nothing more will come; the runs without an outcome stay as intents
        try:
            index, outcome = done.get(timeout=0.1)
        except queue.Empty:
            continue
        if index >= 0 and index not in outcomes:
            outcomes[index] = outcome
            on_outcome(outcome)
    return [outcomes[i] for i in range(len(submissions))]


def _skip_reason(halted: threading.Event) -> str:
    return "not sent: authentication failed for an earlier run" if halted.is_set() else "not sent: interrupted"


def _record(journal: Journal, item: Submission, outcome: RunOutcome, at: str) -> None:
    if outcome.outcome == "submitted":
        assert outcome.run_id is not None
        journal.append(SubmittedRecord(item.key, outcome.run_id, outcome.status, at))
    elif outcome.outcome == "unknown":
        journal.append_durable(UnknownRecord(item.key, outcome.message or "unknown", at))
    else:  # failed, or skipped between retries: the server surely started nothing
        journal.append(FailedRecord(item.key, at))


# -- one apply, start to end -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyOptions:
    select: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
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


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    outcomes: tuple[RunOutcome, ...]
    forgotten: tuple[str, ...]
    state: State  # after the fold
    workspace_id: str
    confirmed: bool = True

    @property
    def summary(self) -> dict[str, int]:
        count = {
            k: sum(1 for o in self.outcomes if o.outcome == k) for k in ("submitted", "failed", "unknown", "skipped")
        }
        return {**count, "forgotten": len(self.forgotten), "blocked": len(self.plan.blocked)}

    @property
    def ok(self) -> bool:
        return all(o.outcome == "submitted" for o in self.outcomes) and not self.plan.blocked


def run_apply(
    repository: Repository,
    desired: Desired,
    options: ApplyOptions,
    *,
    api_key: str,
    confirm: Callable[[Any], bool],
    signals: Signals,
    on_outcome: Callable[[RunOutcome], None],
    on_plan: Callable[[Any], None] = lambda plan: None,
    log: Callable[[str], None] | None = None,
    timing: Callable[[str], None] | None = None,
    transport: Any = None,
    redactor: Any = None,
) -> ApplyResult:
    """Lock, plan against the folded state, check the guards, confirm, submit, fold, unlock.

    Every guard refuses before anything is sent (docs/apply.md). Raises Refused, StalePlan, LockHeld.
    """
    from intuned_runs.api import Client, check_base_url
    from intuned_runs.errors import Refused
    from intuned_runs.locking import StateLock
    from intuned_runs.plan import Plan, for_watch

    config = repository.config
    workspace = config.require_workspace_id()
    base_url = check_base_url(config.base_url)
    if not api_key:
        raise Refused("INTUNED_API_KEY is not set: export the workspace's API key (it is never read from a file)")
    lock = StateLock(config.state_path, options.command).acquire(options.lock_timeout)
    try:
        store = repository.store(redactor)
        store.ensure_gitignore()  # the lock file exists now: keep it (and the journal) out of git
        state = store.fold(upgrade=repository.upgrade)
        plan: Plan = repository.plan(
            state, desired, select=options.select, force=options.force, retry_unknown=options.retry_unknown
        )
        if options.saved is not None:  # a saved plan names its own staleness first (docs/plan.md)
            from intuned_runs.planfile import check_fresh

            fingerprints = {r.key: r.fingerprint for r in plan.runs if r.run is not None}
            check_fresh(options.saved, state, fingerprints, workspace, config.relative(config.state_path))
            plan = Plan(tuple(_from_saved(r, options.saved) for r in plan.runs), plan.moves)
        if state.workspace_id is not None and state.workspace_id != workspace:
            raise Refused(
                f"the state {config.relative(config.state_path)} belongs to workspace {state.workspace_id}, "
                f"not {workspace}: use the right --env or state file"
            )
        if options.watch_once is not None:
            plan = for_watch(plan, options.watch_once)
        on_plan(plan)
        submit = plan.to_submit
        missing = repository.missing_secrets([r.run for r in submit if r.run is not None])
        if missing:
            raise Refused(f"secrets not set: {', '.join(missing)} (needed by runs to submit): export them and retry")
        limit = config.max_submit if options.max_submit is None else options.max_submit
        if not options.interactive and len(submit) > limit:  # saved plans too: CI's plan --out + apply FILE
            raise Refused(
                f"the plan submits {len(submit)} runs, more than max_submit {limit}: check the state is the "
                f"right one, then pass --max-submit {len(submit)} (or set max_submit in the config)"
            )
        if not (submit or (plan.to_forget and options.watch_once is None) or plan.moves):
            if state.workspace_id is None and options.watch_once is None:
                # The first apply records the workspace even with nothing to send (docs/apply.md), so a later
                # apply to another workspace is refused.
                with store.journal(state) as journal:
                    record_housekeeping(journal, now=store.now(), workspace=workspace, moves=(), forget=())
                state = store.fold()
            return ApplyResult(plan, (), (), state, workspace)
        if not confirm(plan):
            return ApplyResult(plan, (), (), state, workspace, confirmed=False)
        submissions = [
            Submission(r.key, r.project, r.fingerprint, dict(r.request), repository.real_request(r.run))
            for r in submit
            if r.run is not None
        ]
        forget = tuple(r.key for r in plan.to_forget) if options.watch_once is None else ()
        with store.journal(state) as journal:
            record_housekeeping(
                journal,
                now=store.now(),
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
                        now=store.now,
                        signals=signals,
                        on_outcome=on_outcome,
                    )
            else:
                outcomes = []
        state = store.fold()
        return ApplyResult(plan, tuple(outcomes), forget, state, workspace)
    finally:
        lock.release()


def _from_saved(run: PlannedRun, saved: SavedPlan) -> PlannedRun:
    """Exactly the saved plan's runs: its submits and forgets; everything else unchanged."""
    from dataclasses import replace

    from intuned_runs.plan import FORGET, SUBMIT, UNCHANGED

    if run.key in saved.submit:
        return replace(run, action=SUBMIT, reason=saved.reasons.get(run.key, run.reason))
    if run.key in saved.forget:
        return replace(run, action=FORGET, reason="removed")
    if run.action in (SUBMIT, FORGET):
        return replace(run, action=UNCHANGED, reason="not in the saved plan")
    return run
