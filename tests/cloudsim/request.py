"""A parsed API request: parameter access with CloudStack's validation errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.cloudsim.errors import bad_id, invalid_value, missing_param
from tests.cloudsim.model import Account, Record

_MAP_KEY = re.compile(r"^([a-z]+)\[(\d+)\]\.([a-z]+)$")


@dataclass
class Request:
    command: str  # as the client spelled it
    params: dict[str, str]  # parameter names lower-cased
    account: Account

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name)
        return default if value is None or value == "" else value

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise missing_param(self.command, name)
        return value

    def integer(self, name: str, default: int | None = None, required: bool = False) -> int | None:
        raw = self.require(name) if required else self.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise invalid_value(f"Unable to translate and set value {raw} for parameter {name}") from None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        return raw.lower() == "true"

    def entity(self, table: dict[str, Record], name: str, required: bool = True) -> Record | None:
        raw = self.require(name) if required else self.get(name)
        if raw is None:
            return None
        rec = table.get(raw)
        if rec is None:
            raise bad_id(self.command, name, raw)
        return rec

    def ids(self, name: str) -> list[str]:
        raw = self.get(name)
        return [x.strip() for x in raw.split(",") if x.strip()] if raw else []

    def maps(self, name: str) -> list[dict[str, str]]:
        """``name[0].key=a&name[0].value=b`` -> ``[{"key": "a", "value": "b"}]`` (index order)."""
        found: dict[int, dict[str, str]] = {}
        for key, value in self.params.items():
            m = _MAP_KEY.match(key)
            if m and m.group(1) == name:
                found.setdefault(int(m.group(2)), {})[m.group(3)] = value
        return [found[i] for i in sorted(found)]


def tags_match(record: Record, wanted: list[dict[str, Any]]) -> bool:
    have = {(t["key"], t["value"]) for t in record.get("tags", [])}
    return all((w.get("key"), w.get("value")) in have for w in wanted)
