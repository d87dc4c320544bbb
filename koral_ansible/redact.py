"""Secret redaction: one place that knows which strings must never be shown or stored."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

MASK = "********"


class Redactor:
    """Replaces every known secret value (and its obvious encodings) with a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *values: str) -> None:
        for v in values:
            if v and len(v) >= 4:
                self._secrets.add(v)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def text(self, value: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            if s in value:
                value = value.replace(s, MASK)
        return value

    def scrub_tree(self, root: Path) -> int:
        """Rewrite every file under ``root`` that contains a secret; returns how many were."""
        if not self._secrets:
            return 0
        needles = [s.encode() for s in self._secrets]
        count = 0
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            raw = path.read_bytes()
            if any(n in raw for n in needles):
                path.write_text(self.text(raw.decode("utf-8", errors="replace")))
                count += 1
        return count

    def data(self, value: Any) -> Any:
        """Redact recursively inside dicts/lists (event data, error payloads)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
