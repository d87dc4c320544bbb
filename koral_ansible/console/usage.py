"""Each node's CPU, memory and disk use for the nodes tab, read from the node by
:func:`koral_ansible.jobs.node_usage` (a node that could not be read shows why)."""

from __future__ import annotations

from typing import Any

from koral_ansible.jobs import NodeUsage, node_usage
from koral_ansible.operations.context import Env

UNKNOWN = "—"


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f}"


def cells(u: NodeUsage) -> dict[str, str]:
    if u.error:
        return {"cpu": f"unavailable: {u.error}", "memory": UNKNOWN, "disk": UNKNOWN}
    return {
        "cpu": f"{u.cpus} CPU, {u.cpu_percent:.0f}% busy, load {u.load1:.2f}",
        "memory": f"{_gib(u.memory_used)} / {_gib(u.memory_total)} GiB" if u.memory_total else UNKNOWN,
        "disk": f"{_gib(u.disk_used)} / {_gib(u.disk_total)} GiB" if u.disk_total else UNKNOWN,
    }


def with_usage(env: Env, cluster: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blank = {"cpu": UNKNOWN, "memory": UNKNOWN, "disk": UNKNOWN}
    found = {u.name: cells(u) for u in node_usage(env, cluster)} if rows else {}
    return [{**row, **found.get(str(row["name"]), blank)} for row in rows]
