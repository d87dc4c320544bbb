"""Each node's CPU, memory and disk use for the nodes tab, read from the node by
``koral_ansible.jobs.node_usage`` (per-node errors are values: the row shows them)."""

from __future__ import annotations

import importlib
from typing import Any

from koral_ansible.operations.context import Env

UNKNOWN = "—"


def _gib(n: Any) -> str:
    return f"{float(n) / 2**30:.1f}"


def _cells(u: Any) -> dict[str, str]:
    error = getattr(u, "error", "") or ""
    if error:
        return {"cpu": f"unavailable: {error}", "memory": UNKNOWN, "disk": UNKNOWN}
    cpu = f"{getattr(u, 'cpus', getattr(u, 'cpu_count', '?'))} CPU"
    pct = getattr(u, "cpu_percent", None)
    if pct is not None:
        cpu += f", {float(pct):.0f}%"
    mem_used, mem_total = getattr(u, "memory_used", None), getattr(u, "memory_total", None)
    disk_used, disk_total = getattr(u, "disk_used", None), getattr(u, "disk_total", None)
    return {
        "cpu": cpu,
        "memory": f"{_gib(mem_used)} / {_gib(mem_total)} GiB" if mem_total else UNKNOWN,
        "disk": f"{_gib(disk_used)} / {_gib(disk_total)} GiB" if disk_total else UNKNOWN,
    }


def with_usage(env: Env, cluster: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blank = {"cpu": UNKNOWN, "memory": UNKNOWN, "disk": UNKNOWN}
    read = getattr(importlib.import_module("koral_ansible.jobs"), "node_usage", None)
    found: dict[str, dict[str, str]] = {}
    if read is not None and rows:
        found = {str(getattr(u, "name", getattr(u, "node", ""))): _cells(u) for u in read(env, cluster)}
    return [{**row, **found.get(str(row["name"]), blank)} for row in rows]
