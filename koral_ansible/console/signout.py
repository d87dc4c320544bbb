"""Sessions ended by signing out, so a copy of the cookie is refused too.

A session cookie is signed, not stored (:mod:`koral_ansible.console.auth`): clearing it in the
browser that signed out leaves any copy of it valid until it expires. Signing out therefore
writes the session's id to ``<home>/console/signed-out`` (0600; one ``ISSUED.NONCE`` a line, kept
only while such a session could still be valid), and the guard refuses the ids listed there. The
file is shared by every console process of the home and read again only when it changes, as the
token file is.
"""

from __future__ import annotations

import time
from pathlib import Path

from koral_ansible.console import auth
from koral_ansible.paths import Paths, write_private


def signed_out_path(paths: Paths) -> Path:
    return paths.home / "console" / "signed-out"


def _issued(sid: str) -> int:
    head = sid.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


class SignedOut:
    """The ids of sessions that signed out and have not expired yet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[tuple[int, int, int, int] | None, frozenset[str]] = (None, frozenset())

    def current(self) -> frozenset[str]:
        stamp = auth.file_stamp(self.path)
        seen_stamp, ids = self._seen
        if stamp == seen_stamp:
            return ids
        try:
            ids = frozenset(
                ln.strip() for ln in self.path.read_text(encoding="utf-8").splitlines() if ln.strip()
            )
        except OSError:
            ids = frozenset()
        self._seen = (stamp, ids)  # one assignment: pool threads read a consistent pair
        return ids

    def __contains__(self, sid: str) -> bool:
        return sid in self.current()

    def add(self, sid: str, now: float | None = None) -> None:
        """Record ``sid`` as signed out; ids whose sessions expired anyway are dropped."""
        t = now if now is not None else time.time()
        live = {s for s in self.current() if t - _issued(s) <= auth.SESSION_SECONDS}
        write_private(self.path, "".join(f"{s}\n" for s in sorted(live | {sid})))
