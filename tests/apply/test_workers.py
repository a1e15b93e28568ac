"""The apply engine in isolation (`apply.submit_all`): a fake client and a fake journal injected."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from intuned_runs.api.outcome import Outcome
from intuned_runs.apply.signals import Signals
from intuned_runs.apply.workers import Submission, submit_all
from intuned_runs.errors import StateError
from intuned_runs.state.journal import FailedRecord, IntentRecord, Record, SubmittedRecord


class FakeJournal:
    def __init__(self, fail_on_durable: int | None = None) -> None:
        self.records: list[Record] = []
        self.durable_calls = 0
        self.fail_on_durable = fail_on_durable
        self.lock = threading.Lock()

    def append(self, record: Record) -> None:
        with self.lock:
            self.records.append(record)

    def append_durable(self, *records: Record) -> None:
        with self.lock:
            self.durable_calls += 1
            if self.fail_on_durable is not None and self.durable_calls >= self.fail_on_durable:
                raise StateError("cannot write journal state.json.journal: No space left on device")
            self.records.extend(records)


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def start(self, project: str, body: dict[str, Any], should_stop: Any = None) -> Outcome:
        with self.lock:
            self.sent.append(body["n"])
            return Outcome("submitted", run_id=f"ru_{body['n']}", status="pending")


def submissions(n: int) -> list[Submission]:
    return [Submission(f"p/r{i}", "p", f"sha256:{i}", {"api": "a"}, {"n": i}) for i in range(n)]


def run(journal: FakeJournal, client: FakeClient, n: int, concurrency: int) -> list[Outcome]:
    return submit_all(
        submissions(n),
        client,
        journal,
        concurrency=concurrency,
        now=lambda: "2026-11-28T00:00:00Z",
        signals=Signals.new(),
        on_outcome=lambda outcome: None,
    )


def test_every_run_is_sent_once_with_its_intent_durable_before_it() -> None:
    journal, client = FakeJournal(), FakeClient()
    outcomes = run(journal, client, 100, 8)
    assert sorted(client.sent) == list(range(100))
    assert [o.kind for o in outcomes] == ["submitted"] * 100
    intents = [r.key for r in journal.records if isinstance(r, IntentRecord)]
    submitted = [r.key for r in journal.records if isinstance(r, SubmittedRecord)]
    assert sorted(intents) == sorted(submitted) == sorted(f"p/r{i}" for i in range(100))
    for key in submitted:  # an outcome never precedes its intent
        assert journal.records.index(
            next(r for r in journal.records if isinstance(r, IntentRecord) and r.key == key)
        ) < (journal.records.index(next(r for r in journal.records if isinstance(r, SubmittedRecord) and r.key == key)))
    # Intents are made durable in batches, far fewer fsyncs than runs (docs/apply.md allows 2 x concurrency
    # false unknowns: in flight plus at most `concurrency` journaled ahead).
    assert journal.durable_calls < 100 // 2


def test_a_journal_that_cannot_be_written_stops_the_apply_instead_of_hanging() -> None:
    journal, client = FakeJournal(fail_on_durable=3), FakeClient()
    with pytest.raises(StateError, match="No space left on device"):
        run(journal, client, 200, 4)
    durable_intents = {r.key for r in journal.records if isinstance(r, IntentRecord)}
    # Nothing was sent without a durable intent.
    assert {f"p/r{n}" for n in client.sent} <= durable_intents
    assert not any(isinstance(r, FailedRecord) and r.key not in durable_intents for r in journal.records)
