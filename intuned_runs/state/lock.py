"""The file state's lock (docs/apply.md, Locking): one writer per state, freed by the kernel when its holder dies.

`fcntl.flock` on `STATE.lock`; the holder writes `{"pid", "host", "since", "command"}` into the file so a
second process can name it. On a filesystem without flock the lock is the file's existence instead
(created exclusively, removed on release), which a dead holder leaves behind: `state unlock`
(`force_unlock`) exists for that case.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType

from msgspec import Struct

from intuned_runs.clock import timestamp, utc_now
from intuned_runs.errors import LockHeld, StateError

POLL_INTERVAL = 0.1
# flock errors that mean "this filesystem cannot lock", as opposed to "someone holds it".
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}

Flock = Callable[[int, int], None]


class Holder(Struct, frozen=True):
    """Who holds a state's lock, as it recorded itself (any backend's lock names its holder this way)."""

    pid: object
    host: object
    since: object
    command: object

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Holder:
        return cls(raw.get("pid", "?"), raw.get("host", "?"), raw.get("since", "?"), raw.get("command", "?"))


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


class StateLock:
    """`with StateLock(state_path, "intuned-runs apply").acquire(timeout):` or `acquire()`/`release()`."""

    def __init__(
        self,
        path: Path,
        command: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utc_now,
        flock: Flock = fcntl.flock,
    ) -> None:
        self.path = lock_path(Path(path))
        self.command = command
        self._clock = clock
        self._sleep = sleep
        self._now = now
        self._flock = flock
        self._fd = -1
        self._exclusive_file = False  # True when held by existence (no flock on this filesystem)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self, timeout: float = 0) -> StateLock:
        """Take the lock, polling every 0.1 s up to `timeout` seconds; LockHeld names the holder."""
        if self.held:
            raise RuntimeError("StateLock.acquire() called twice")
        deadline = self._clock() + timeout
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                holder = self._try()
            except OSError as e:
                raise StateError(f"cannot lock {self.path}: {e.strerror}") from e
            if holder is None:
                return self
            remaining = deadline - self._clock()
            if remaining <= 0:
                waited = f" (waited {timeout:g}s)" if timeout > 0 else ""
                raise LockHeld(
                    f"state is locked by {holder}{waited}; wait for it, use --lock-timeout DUR, or if no "
                    "such process exists run 'intuned-runs state unlock'"
                )
            self._sleep(min(POLL_INTERVAL, remaining))

    def release(self) -> None:
        if not self.held:
            return
        fd, self._fd = self._fd, -1
        try:
            if self._exclusive_file:
                self.path.unlink(missing_ok=True)
            else:
                # Clear the holder while still holding: the next reader must not name a finished process.
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> StateLock:
        if not self.held:
            self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _try(self) -> str | None:
        """Take the lock now, or return a description of who holds it."""
        created = True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            created = False
            try:
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                return self._try()  # removed in between (a release without flock, or an unlock)
        try:
            self._flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            return holder
        except OSError as e:
            if e.errno not in _UNSUPPORTED:
                os.close(fd)
                raise
            if not created:  # no flock here: the file's existence is the lock
                holder = _describe(_read_holder(fd))
                os.close(fd)
                return holder
            self._exclusive_file = True
        else:
            self._exclusive_file = False
            if not _same_file(fd, self.path):
                # The file was unlinked between our open and flock: our lock guards nothing, go again.
                os.close(fd)
                return self._try()
        import socket  # only by the lock's holder: a plan takes no lock (docs/performance.md)

        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": timestamp(self._now()),
            "command": self.command,
        }
        data = json.dumps(info, sort_keys=True).encode("utf-8") + b"\n"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return None


def force_unlock(state_path: Path) -> str | None:
    """Remove the lock file (`state unlock`) and return the holder it named, or None.

    Refuses (LockHeld) when flock shows a live holder: removing the file would let a second process
    lock a new file while the first still writes, and the kernel frees the lock the moment it exits.
    """
    path = lock_path(Path(state_path))
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"cannot open {path}: {e.strerror}") from e
    try:
        holder = _read_holder(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(
                f"state is locked by {_describe(holder)}, a running process: stop it (the lock is freed "
                "when it exits) instead of unlocking"
            ) from None
        except OSError as e:
            if e.errno not in _UNSUPPORTED:
                raise
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return None if holder is None else _describe(holder)


def live_holder(state_path: Path) -> Holder | None:
    """Who holds the lock right now, without taking it, for plan, which takes no lock; None when nobody does
    (docs/plan.md, Blocked and in-progress runs).

    A released lock's file is empty, so only a named holder is probed, with a shared flock that fails while
    the holder lives and would succeed (and is dropped at once) once the kernel freed a dead one's lock.
    """
    try:
        fd = os.open(lock_path(Path(state_path)), os.O_RDONLY)
    except OSError:  # no lock file: nobody ever locked this state here
        return None
    try:
        raw = _read_holder(fd)
        if raw is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Holder.from_json(raw)
        except OSError as e:
            # no flock on this filesystem: the file's existence is the lock
            return Holder.from_json(raw) if e.errno in _UNSUPPORTED else None
        return None  # a dead holder's name: the kernel has freed its lock
    finally:
        os.close(fd)  # drops the shared lock, if taken


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _read_holder(fd: int) -> dict[str, object] | None:
    try:
        raw = json.loads(os.pread(fd, 65536, 0))
    except ValueError:  # empty (released, or a holder between flock and writing its name) or damaged
        return None
    return raw if isinstance(raw, dict) else None


def _describe(raw: dict[str, object] | None) -> str:
    if raw is None:
        return "another process (it has not recorded its name)"
    holder = Holder.from_json(raw)
    return f"pid {holder.pid} on host {holder.host} since {holder.since} ({holder.command})"
