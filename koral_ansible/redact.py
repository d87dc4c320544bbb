"""Secret redaction: one place that knows which strings must never be shown or stored."""

from __future__ import annotations

from collections.abc import Iterable
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

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            if s in value:
                value = value.replace(s, MASK)
        return value

    def data(self, value: Any) -> Any:
        """Redact recursively inside dicts/lists (event data, error payloads)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
