"""Advisory file locks that say who holds them.

``held_lock(path, holder)`` takes an exclusive ``flock`` without waiting, writes ``holder`` into
the file for whoever is refused, and returns the current holder's text through ``BusyLock``
otherwise. The kernel drops the lock when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class BusyLock(Exception):
    """The lock is held; ``holder`` is what the holder wrote (may be empty)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def held_lock(path: Path, holder: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise BusyLock(os.pread(fd, 4096, 0).decode(errors="replace").strip()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder_of(path: Path) -> str | None:
    """Who holds the lock at ``path`` right now (its text, maybe empty), None when nobody does.

    Read from the kernel's lock table (``/proc/locks``; proc(5)) by the file's device and inode,
    without taking the lock: a look that took it, even shared and briefly, could make a starting
    CLI command fail as busy.
    """
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii") as fh:
            table = fh.read()
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # "->" marks a waiter, not a holder
        if fields[5] == ident:
            try:
                with open(path, encoding="utf-8", errors="replace") as lock:
                    return lock.read(4096).strip()
            except OSError:
                return ""
    return None
