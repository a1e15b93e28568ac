"""Files the tool writes: whole writes, fsync, and atomic replacement (temp file, fsync, rename).

Every file the tool replaces (the state, a saved plan, the pulled schema) goes through `write_atomic`, so a
reader never sees half a file and a crash leaves the old one (docs/apply.md, Crash safety).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | Iterable[bytes], *, fsync: bool = True) -> None:
    """Replace `path` with `data` (bytes, or pieces of them written in turn, so a large file is never whole
    in memory): a temp file in the same directory, fsync, rename, fsync the directory.

    Raises OSError (the temp file is removed); the caller words it."""
    directory = path.parent
    temp = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            for piece in [data] if isinstance(data, bytes) else data:
                write_all(fd, piece)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        if fsync:
            fsync_dir(directory)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
