"""Sign-in attempts are limited: after ``LIMIT`` wrong tokens from one client address within
``WINDOW`` seconds, that address is answered 429 (with Retry-After) until the window has passed.

The token has 256 bits, so this does not make guessing it harder in any useful sense; it keeps a
script hammering the login form from filling the console's log and its CPU, and it is what an
operator's security review asks for. The count is in memory: a restarted console starts afresh.
"""

from __future__ import annotations

import threading
import time
from collections import deque

LIMIT = 5
WINDOW = 60.0


class LoginThrottle:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try again; 0 when it may now."""
        t = now if now is not None else time.monotonic()
        with self._lock:
            times = self._recent(client, t)
            if len(times) < self.limit:
                return 0
            return max(1, int(times[0] + self.window - t + 0.999))

    def failed(self, client: str, now: float | None = None) -> None:
        t = now if now is not None else time.monotonic()
        with self._lock:
            self._recent(client, t).append(t)
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]
