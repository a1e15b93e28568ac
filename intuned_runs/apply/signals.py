"""What an apply's signal handlers tell its workers (docs/apply.md, Signals)."""

from __future__ import annotations

import threading

from msgspec import Struct, field


class Signals(Struct):
    """Set by the CLI's signal handlers (or a test): `stop` = no new submissions; `abandon` = stop
    waiting for in-flight requests and record them as unknown."""

    stop: threading.Event
    abandon: threading.Event
    sending: threading.Event = field(default_factory=threading.Event)  # set once submissions start

    @classmethod
    def new(cls) -> Signals:
        return cls(threading.Event(), threading.Event())

    @property
    def interrupted(self) -> bool:
        return self.stop.is_set() or self.abandon.is_set()
