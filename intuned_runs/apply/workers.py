"""The worker pool of an apply (docs/apply.md, Sending and Crash safety): submit planned runs with bounded
concurrency, an intent made durable before each request and the outcome recorded after it, so a process
killed at any instant never leads to a run submitted twice.

Concurrency lives here and retries in `api.client.Client` only; `concurrency=1` runs the same code.
Worker threads share one httpx client (one connection pool): measured here, threads sustain more
requests per second than an AsyncClient.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from msgspec import Struct
from msgspec.structs import replace

from intuned_runs.api.outcome import Outcome
from intuned_runs.apply.signals import Signals
from intuned_runs.state.backend import Journal
from intuned_runs.state.journal import (
    FailedRecord,
    ForgetRecord,
    IntentRecord,
    MoveRecord,
    SubmittedRecord,
    UnknownRecord,
    WorkspaceRecord,
)

# The outcome of a request abandoned by a second Ctrl-C: it was sent, so the server may have started it.
ABANDONED = "interrupted"
# This many runs in a row that could not connect, after their retries: the server is unreachable, so the
# remaining runs are not sent (docs/apply.md, Unreachable server). A wrong URL costs seconds, not minutes.
UNREACHABLE_AFTER = 3
TAKE_EVERY = 0.02  # seconds between two batches of outcomes reported (live progress)


class Submission(Struct, frozen=True):
    """One run to send: its key and project, the redacted request (for the state), the real body (as a dict,
    or encoded: `api.client.encode_body`)."""

    key: str
    project: str
    fingerprint: str
    request: dict[str, Any]
    body: dict[str, Any] | bytes


class Starter(Protocol):
    def start(self, project: str, body: dict[str, Any] | bytes, should_stop: Callable[[], bool] = ...) -> Outcome: ...


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
    on_outcome: Callable[[Outcome], None],
    target: str = "the server",
) -> list[Outcome]:
    """Submit every run; returns one outcome per submission, in submission order. `target`: the base URL,
    for the message of runs not sent once it is known to be unreachable."""
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(submissions)):
        pending.put(index)
    done: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()
    in_flight: dict[int, Submission] = {}
    guard = threading.Lock()
    halted = threading.Event()  # a 401/403: the key or workspace is wrong for every run
    unreachable = threading.Event()  # UNREACHABLE_AFTER runs in a row could not connect
    streak = 0  # runs in a row that could not connect (under `guard`)
    # Intents are made durable in batches of `concurrency`, one fsync each: at most `concurrency`
    # intents whose request was never sent (plus those in flight) can show up as false unknowns
    # after a crash, the 2 × concurrency docs/apply.md (Crash safety) allows. submissions[:journaled] have their intent.
    journaled = 0
    intents = threading.Lock()
    settled: set[int] = set()  # every index gets exactly one outcome, recorded once (under `guard`)

    def should_stop() -> bool:
        return signals.stop.is_set() or halted.is_set() or unreachable.is_set()

    def skip_reason() -> str:
        if unreachable.is_set():
            return f"not sent: cannot reach {target}"
        if halted.is_set():
            return "not sent: authentication failed for an earlier run"
        return "not sent: interrupted"

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

    def not_sent(index: int, item: Submission, reason: str) -> Outcome:
        """Settle a run that was never sent (caller holds `intents` and `guard`): its intent, if any,
        is cancelled."""
        settled.add(index)
        if index < journaled:
            journal.append(FailedRecord(item.key, now()))
        return Outcome("skipped", message=reason, key=item.key)

    failures: list[BaseException] = []  # a journal that cannot be written stops the apply

    def work() -> None:
        try:
            send_all()
        except Exception as e:
            failures.append(e)
            signals.stop.set()  # the others send nothing more; what is in flight finishes

    def send_all() -> None:
        nonlocal streak
        while True:
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            item = submissions[index]
            if should_stop():
                with intents, guard:  # the lock order of the abandon path: intents, then guard
                    if index not in settled:
                        done.put((index, not_sent(index, item, skip_reason())))
                continue
            ensure_intent(index)
            with guard:
                if index in settled or signals.abandon.is_set():
                    continue  # the main thread settles what was never sent
                in_flight[index] = item
            try:
                outcome = replace(client.start(item.project, item.body, should_stop), key=item.key)
            except Exception as e:
                outcome = Outcome("unknown", message=f"unexpected error: {type(e).__name__}", key=item.key)
            with guard:
                in_flight.pop(index, None)
                if index in settled:
                    continue  # abandoned: already recorded as unknown
                settled.add(index)
                if outcome.kind == "skipped" and unreachable.is_set():  # stopped between its retries
                    outcome = replace(outcome, message=skip_reason())
                streak = streak + 1 if outcome.unreachable else 0
                if streak >= UNREACHABLE_AFTER:
                    unreachable.set()
            # Settled, so recorded by this thread alone: outside `guard`, whose other waiters would
            # otherwise queue behind this write (and behind this thread winning the GIL back after it).
            _record(journal, item, outcome, now())
            if outcome.stops_all:
                halted.set()
            done.put((index, outcome))

    signals.sending.set()
    # Everything alive now (modules, plan, bodies) outlives the sending: frozen, the collector's passes skip
    # it instead of walking it again while the senders wait for the interpreter lock (docs/performance.md).
    gc.freeze()
    workers = [
        threading.Thread(target=work, name=f"submit-{n}", daemon=True)
        for n in range(max(1, min(concurrency, len(submissions))))
    ]
    for worker in workers:
        worker.start()
    outcomes: dict[int, Outcome] = {}

    def take() -> None:
        """Report what the workers settled since the last call."""
        while True:
            try:
                index, outcome = done.get_nowait()
            except queue.Empty:
                return
            if index not in outcomes:
                outcomes[index] = outcome
                on_outcome(outcome)

    while len(outcomes) < len(submissions):
        if signals.abandon.is_set():
            take()  # what finished before the abandon is reported before the runs it abandons
            with intents, guard:
                for index, item in enumerate(submissions):
                    if index in settled:
                        continue
                    if index in in_flight:  # sent, no answer yet: the server may have started it
                        settled.add(index)
                        journal.append_durable(UnknownRecord(item.key, ABANDONED, now()))
                        outcomes[index] = Outcome("unknown", message=ABANDONED, key=item.key)
                        on_outcome(outcomes[index])
                    else:
                        outcomes[index] = not_sent(index, item, ABANDONED)
                in_flight.clear()
            # The rest were settled by workers before the abandon; each is on its way (recorded
            # outside `guard`, then queued), unless the journal failed.
            while len(outcomes) < len(submissions):
                take()
                if failures:
                    raise failures[0]
                time.sleep(TAKE_EVERY)
            break
        if failures and not any(w.is_alive() for w in workers):
            take()
            raise failures[0]  # nothing more will come; the runs without an outcome stay as intents
        # Outcomes are taken in batches: waking this thread for each one would take the interpreter
        # lock from the senders a thousand times a second (docs/performance.md). A sleep, not
        # `abandon.wait`: the SIGINT handler sets `abandon` in this thread, and an Event's lock is not
        # reentrant.
        time.sleep(TAKE_EVERY)
        take()
    return [outcomes[i] for i in range(len(submissions))]


def _record(journal: Journal, item: Submission, outcome: Outcome, at: str) -> None:
    if outcome.kind == "submitted":
        assert outcome.run_id is not None
        journal.append(SubmittedRecord(item.key, outcome.run_id, outcome.status, at))
    elif outcome.kind == "unknown":
        journal.append_durable(UnknownRecord(item.key, outcome.message or "unknown", at))
    else:  # failed, or skipped between retries: the server surely started nothing
        journal.append(FailedRecord(item.key, at))
