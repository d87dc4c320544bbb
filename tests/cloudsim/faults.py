"""Failure injection: make chosen calls of a command fail, hang, or answer a transient HTTP error."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from tests.cloudsim.errors import CS_CLOUD_RUNTIME, INTERNAL_ERROR, ApiError

Mode = Literal["error", "timeout", "http503"]


@dataclass(frozen=True)
class Fault:
    """Fail ``command``.

    - ``calls``: which calls (1-based, counted per command) fail; empty = every call.
    - ``mode``: ``error`` answers a CloudStack error (an async command's *job* fails);
      ``timeout`` never answers in time (a sync call hangs ``hang_seconds``; an async job stays
      pending forever); ``http503`` answers ``503 Service Unavailable`` with an HTML body, as a
      proxy in front of the management server does.
    """

    command: str
    mode: Mode = "error"
    calls: frozenset[int] = frozenset()
    errorcode: int = INTERNAL_ERROR
    cserrorcode: int = CS_CLOUD_RUNTIME
    errortext: str = ""
    hang_seconds: float = 30.0

    def error(self) -> ApiError:
        text = self.errortext or f"Injected failure of {self.command}"
        return ApiError(self.errorcode, text, self.cserrorcode)

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``command[:mode[:n,m,...]]``, e.g. ``deployVirtualMachine:error:2``."""
        parts = text.split(":")
        mode = parts[1] if len(parts) > 1 and parts[1] else "error"
        if mode not in ("error", "timeout", "http503"):
            raise ValueError(f"fault mode must be error, timeout or http503 (got {mode!r})")
        calls = frozenset(int(n) for n in parts[2].split(",") if n) if len(parts) > 2 else frozenset()
        return cls(command=parts[0], mode=mode, calls=calls)  # type: ignore[arg-type]


@dataclass
class Faults:
    """The active faults and the per-command call counters."""

    rules: list[Fault] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.rules.append(fault)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def hit(self, command: str) -> Fault | None:
        """Count one call of ``command``; return the fault that applies to it, if any."""
        key = command.lower()
        with self._lock:
            self.counts[key] += 1
            n = self.counts[key]
            for rule in self.rules:
                if rule.command.lower() == key and (not rule.calls or n in rule.calls):
                    return rule
        return None
