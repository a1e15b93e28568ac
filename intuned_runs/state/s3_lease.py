"""The S3 state's lock (docs/shared-state-s3.md, Locking): a lease object `KEY.lock`.

Created with `If-None-Match: *`, holding `{"pid", "host", "since", "command", "expires"}` with `expires`
LEASE seconds ahead on the server's clock (its `Date` header); renewed every LEASE/3 seconds with `If-Match`
by a background thread. Another process takes it over only once `expires` has passed, replacing it with
`If-Match` on the ETag it read, so of two processes taking over the same expired lease one wins.

A holder trusts its lease only until LEASE - MARGIN seconds after its last successful renewal began (by
its own monotonic clock): past that point another process may have taken over, so `check()` refuses to
let it journal new intents (it stops submitting) while outcomes of requests in flight are still recorded.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from intuned_runs.clock import timestamp
from intuned_runs.errors import LockHeld, StateError
from intuned_runs.state.lock import Holder
from intuned_runs.state.lock import _describe as describe
from intuned_runs.state.s3_objects import Conflict, Objects

LEASE_SECONDS = 60.0
# Tests (and only tests) shorten the lease to see a killed holder's lease expire (docs/shared-state-s3.md).
LEASE_VARIABLE = "INTUNED_RUNS_S3_LEASE_SECONDS"
POLL_INTERVAL = 0.5
_IN_PROCESS = threading.Lock()
_HELD: set[str] = set()  # the leases this process holds (s3://BUCKET/KEY.lock)


def lease_seconds() -> float:
    raw = os.environ.get(LEASE_VARIABLE)
    if not raw:
        return LEASE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise StateError(f"{LEASE_VARIABLE} must be a number of seconds, not {raw!r}") from None
    if not 1 <= seconds <= 3600:
        raise StateError(f"{LEASE_VARIABLE} must be between 1 and 3600 seconds, not {raw!r}")
    return seconds


def _parse_time(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


class Lease:
    """`lease.acquire(timeout)` … `lease.release()`; `check()` raises once the lease may be lost."""

    def __init__(
        self,
        objects: Objects,
        key: str,
        command: str,
        *,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._objects = objects
        self.key = key
        self.command = command
        self.seconds = seconds
        self.renew_every = seconds / 3
        self._margin = seconds / 6 + 0.5  # for a slow clock, and a request between renewal and `Date`
        self._clock = clock
        self._etag: str | None = None
        self._since = ""
        self._valid_until = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- taking it

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lease, polling up to `timeout` seconds; LockHeld names the holder."""
        deadline = self._clock() + timeout
        while True:
            holder = self._try()
            if holder is None:
                self._renewer = threading.Thread(target=self._renew_loop, name="s3-lease", daemon=True)
                self._renewer.start()
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                waited = f" (waited {timeout:g}s)" if timeout > 0 else ""
                raise LockHeld(
                    f"state is locked by {holder}{waited}; wait for it, use --lock-timeout DUR, or if no "
                    "such process exists run 'intuned-runs state unlock' (its lease also ends by itself "
                    "once it expires)"
                )
            time.sleep(min(POLL_INTERVAL, remaining))

    def _try(self) -> str | None:
        """Take the lease now, or describe who holds it."""
        with _IN_PROCESS:
            taken = self._take()
        if taken:
            return None
        current = self._objects.get(self.key)
        if current is None:
            return self._try()  # released in between
        info = _holder(current.body)
        expires = _parse_time(info.get("expires") if info is not None else None)
        now = current.server_time if current.server_time is not None else self._objects.server_now()
        if expires is None or now <= expires or self._objects.url(self.key) in _HELD:
            return describe(info)  # an unreadable lock object is never taken over
        with _IN_PROCESS:
            taken = self._take(current.etag)
        return None if taken else self._try()

    def _take(self, expired_etag: str | None = None) -> bool:
        """Create the lease (or replace the expired one with that ETag); the caller holds _IN_PROCESS.

        Two leases of one process hold the same pid, host and times, so the same body and ETag: the
        process's own register, not S3, tells them apart."""
        name = self._objects.url(self.key)
        if name in _HELD:
            return False
        started = self._clock()
        self._since = timestamp(datetime.fromtimestamp(self._objects.server_now(), timezone.utc))
        try:
            self._etag = self._objects.put(self.key, self._body(), if_match=expired_etag)
        except Conflict:
            return False
        self._valid_until = started + self.seconds - self._margin
        _HELD.add(name)
        return True

    def _body(self) -> bytes:
        # rounded up to whole seconds (the timestamp format), never down
        expires = datetime.fromtimestamp(math.ceil(self._objects.server_now() + self.seconds), timezone.utc)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": self._since,
            "command": self.command,
            "expires": timestamp(expires),
        }
        return json.dumps(info, sort_keys=True).encode("utf-8") + b"\n"

    # -- holding it

    def check(self) -> None:
        """Raise (StateError) when this process can no longer be sure it holds the lease."""
        if self._lost is None and self._clock() > self._valid_until:
            self._lost = "it could not be renewed in time"
        if self._lost is not None:
            raise StateError(
                f"lost the lock {self._objects.url(self.key)}: {self._lost}; stopped submitting (what was "
                "recorded is kept; runs without a recorded outcome read as unknown)"
            )

    def _renew_loop(self) -> None:
        wait = self.renew_every
        while not self._stop.wait(wait):
            started = self._clock()
            if started > self._valid_until:
                self._lost = "it could not be renewed in time"
                return
            try:
                self._etag = self._objects.put(self.key, self._body(), if_match=self._etag)
            except Conflict:
                self._lost = "another process replaced it (this one was too slow to renew it)"
                return
            except StateError:
                wait = min(1.0, self.renew_every)  # try again soon, until the lease runs out
                continue
            self._valid_until = started + self.seconds - self._margin
            wait = self.renew_every

    # -- letting it go

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self._etag is not None:
            with _IN_PROCESS:
                _HELD.discard(self._objects.url(self.key))
        if self._etag is None or self._lost is not None:
            return  # never held, or another process may hold it now
        with contextlib.suppress(Conflict, StateError):  # taken over, or unreachable: it expires by itself
            self._objects.delete(self.key, if_match=self._etag)
        self._etag = None


def force_unlock(objects: Objects, key: str) -> str | None:
    """`state unlock`: remove the lease object; returns the holder it named, or None when there was none.

    Refused (LockHeld) while the lease is live and its holder a running process on this machine; a holder
    elsewhere cannot be checked, so the user's word that it is dead is taken."""
    current = objects.get(key)
    if current is None:
        return None
    info = _holder(current.body)
    expires = _parse_time(info.get("expires") if info is not None else None)
    now = current.server_time if current.server_time is not None else objects.server_now()
    live = expires is not None and now <= expires
    if live and info is not None and info.get("host") == socket.gethostname() and _running(info.get("pid")):
        raise LockHeld(
            f"state is locked by {describe(info)}, a running process: stop it (the lock is freed when it "
            "exits) instead of unlocking"
        )
    objects.delete(key)
    return describe(info)


def live_holder(objects: Objects, key: str) -> Holder | None:
    """Who holds the lease now, without taking it (plan's in-progress runs); None when nobody does or the
    lease has expired (docs/plan.md, Blocked and in-progress runs)."""
    current = objects.get(key)
    if current is None:
        return None
    info = _holder(current.body)
    expires = _parse_time(info.get("expires") if info is not None else None)
    now = current.server_time if current.server_time is not None else objects.server_now()
    if info is None or expires is None or now > expires:
        return None
    if info.get("host") == socket.gethostname() and not _running(info.get("pid")):
        return None  # a holder on this machine that died (SIGKILL) before its lease ran out
    return Holder.from_json(info)


def _running(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(body: bytes) -> dict[str, object] | None:
    try:
        raw = json.loads(body)
    except ValueError:
        return None
    return raw if isinstance(raw, dict) else None
