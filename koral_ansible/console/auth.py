"""The console's login token and its sessions.

The token is generated at first start (``<home>/console/token``, 0600) and printed once. A session
is a signed cookie ``ISSUED.NONCE.MAC`` whose MAC is an HMAC-SHA256 keyed by the token, so
replacing the token (``--rotate-token``) ends every existing session at once, and nothing about a
session needs to be stored. A running console follows the file (:class:`TokenFile`): a rotation
while it runs ends the old sessions at their next request, not at the console's next start.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from koral_ansible.paths import Paths, write_private

COOKIE = "koral_session"
SESSION_SECONDS = 12 * 3600


def token_path(paths: Paths) -> Path:
    return paths.home / "console" / "token"


def load_or_create_token(paths: Paths, rotate: bool = False) -> tuple[str, bool]:
    """The login token and whether it was generated now (first start or ``rotate``)."""
    path = token_path(paths)
    if not rotate and path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text, False
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token, True


class TokenFile:
    """The login token as its file holds it now. ``current()`` costs one ``stat`` per request and
    re-reads the file only when its identity changed (device, inode, mtime, size: a rotation writes
    a new file and renames it over the old one). A file that is gone or empty keeps the last token
    (the console stays usable; only a new token replaces one)."""

    def __init__(self, path: Path, token: str) -> None:
        self.path = path
        self._seen: tuple[tuple[int, int, int, int] | None, str] = (self._stamp(), token)

    def _stamp(self) -> tuple[int, int, int, int] | None:
        return file_stamp(self.path)

    def current(self) -> str:
        stamp = self._stamp()
        seen_stamp, token = self._seen
        if stamp is None or stamp == seen_stamp:
            return token
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return token
        if text:
            token = text
        self._seen = (stamp, token)  # one assignment: pool threads read a consistent pair
        return token


def file_stamp(path: Path) -> tuple[int, int, int, int] | None:
    """A file's identity (device, inode, mtime, size), None when it is not there: what a console
    compares to re-read a file shared with other processes only when it changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def _mac(token: str, purpose: str, value: str) -> str:
    return hmac.new(token.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    sid: str

    def csrf_token(self, token: str) -> str:
        """The CSRF token of this session (a form's hidden field, the script's X-CSRF-Token)."""
        return _mac(token, "csrf", self.sid)


def token_matches(token: str, given: str) -> bool:
    return hmac.compare_digest(token.encode(), given.strip().encode())


def new_session_cookie(token: str, now: float | None = None) -> str:
    sid = f"{int(now if now is not None else time.time())}.{secrets.token_urlsafe(16)}"
    return f"{sid}.{_mac(token, 'session', sid)}"


def session_of(token: str, cookie: str | None, now: float | None = None) -> Session | None:
    """The session a cookie carries, None when absent, forged, signed by an old token or expired."""
    if not cookie or cookie.count(".") != 2:
        return None
    issued, nonce, mac = cookie.split(".")
    sid = f"{issued}.{nonce}"
    if not hmac.compare_digest(mac.encode(), _mac(token, "session", sid).encode()):
        return None
    if not issued.isdigit() or (now if now is not None else time.time()) - int(issued) > SESSION_SECONDS:
        return None
    return Session(sid)
