"""Pure planning: Koral's cloud layout for a cluster, and what to change to reach it.

Nothing here talks to the cloud; the provider feeds it what exists and applies the result.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from koral_ansible.providers.base import API_PORT, SSH_BASE_PORT, node_name

TAG_CLUSTER = "koral-cluster"
TAG_ROLE = "koral-role"
TAG_INDEX = "koral-index"

# Resource kinds recorded in the state store, in the order destroy removes them.
# (user_*: the user's network rules, koral_ansible/rules/cloudstack.py RESOURCE_KIND.)
DESTROY_ORDER = (
    "user_lb_rule",
    "user_port_forward",
    "user_firewall_rule",
    "lb_rule",
    "port_forward",
    "firewall_rule",
    "vm",
    "public_ip",
    "ssh_keypair",
    "network",
)


@dataclass(frozen=True)
class Slot:
    """One node of the layout: its name, role, position (ssh port = 2222 + idx)."""

    name: str
    role: str  # control | worker
    idx: int

    @property
    def ssh_port(self) -> int:
        return SSH_BASE_PORT + self.idx


@dataclass(frozen=True)
class PortRange:
    start: int
    end: int
    cidrs: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.start}-{self.end}" if self.start != self.end else str(self.start)


@dataclass(frozen=True)
class Forward:
    public_port: int
    node: str
    private_port: int = 22


def network_name(cluster: str) -> str:
    return f"{cluster}-network"


def network_text(cluster: str) -> str:
    """displaytext of an auto-created network (how a run finds one an interrupted run created)."""
    return f"Koral cluster {cluster}"


def lb_name(cluster: str) -> str:
    return f"{cluster}-api-lb"


def keypair_name(cluster: str) -> str:
    return f"koral-{cluster}"


def layout(cluster: str, control_nodes: int, workers: int) -> list[Slot]:
    """Control plane first (idx 0..c-1), then workers."""
    slots = [Slot(node_name(cluster, "control", i + 1), "control", i) for i in range(control_nodes)]
    slots += [Slot(node_name(cluster, "worker", i + 1), "worker", control_nodes + i) for i in range(workers)]
    return slots


def more_workers(cluster: str, existing: Sequence[Slot], count: int) -> list[Slot]:
    """``count`` new workers after the existing nodes: next free index and next worker number."""
    next_idx = max((s.idx for s in existing), default=-1) + 1
    numbers = [int(s.name.rsplit("-", 1)[1]) for s in existing if s.role == "worker"]
    first = max(numbers, default=0) + 1
    return [Slot(node_name(cluster, "worker", first + i), "worker", next_idx + i) for i in range(count)]


def ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    """Contiguous runs of ports: [2222, 2223, 2225] -> [(2222, 2223), (2225, 2225)]."""
    out: list[tuple[int, int]] = []
    for p in sorted(set(ports)):
        if out and p == out[-1][1] + 1:
            out[-1] = (out[-1][0], p)
        else:
            out.append((p, p))
    return out


def firewall_plan(slots: Sequence[Slot], allowed_cidrs: Sequence[str], api: bool = True) -> list[PortRange]:
    """6443 (unless an external LB serves the API) and the SSH ports of every node."""
    cidrs = tuple(sorted(allowed_cidrs))
    out = [PortRange(API_PORT, API_PORT, cidrs)] if api else []
    out += [PortRange(a, b, cidrs) for a, b in ranges(s.ssh_port for s in slots)]
    return out


def forward_plan(slots: Sequence[Slot]) -> list[Forward]:
    return [Forward(s.ssh_port, s.name) for s in sorted(slots, key=lambda s: s.idx)]


@dataclass(frozen=True)
class Diff:
    keep: tuple[str, ...]  # ids of existing objects that match
    create: tuple[object, ...]  # wanted objects that are missing
    delete: tuple[str, ...]  # ids of owned objects that are no longer wanted


def diff_firewall(
    wanted: Sequence[PortRange], existing: Sequence[dict[str, object]], owned: set[str]
) -> Diff:
    """Match firewall rules on (tcp, start, end, cidr set); only owned rules are ever deleted."""

    def key(r: dict[str, object]) -> tuple[int, int, tuple[str, ...]]:
        cidrs = tuple(sorted(c for c in str(r.get("cidrlist", "")).split(",") if c))
        return int(str(r.get("startport", 0))), int(str(r.get("endport", 0))), cidrs

    have = {key(r): str(r["id"]) for r in existing if str(r.get("protocol", "")).lower() == "tcp"}
    keep, create = [], []
    for w in wanted:
        rid = have.get((w.start, w.end, w.cidrs))
        if rid:
            keep.append(rid)
        else:
            create.append(w)
    delete = [str(r["id"]) for r in existing if str(r["id"]) in owned and str(r["id"]) not in keep]
    return Diff(tuple(keep), tuple(create), tuple(delete))


def diff_forwards(
    wanted: Sequence[Forward], existing: Sequence[dict[str, object]], vm_ids: dict[str, str], owned: set[str]
) -> Diff:
    """Match port forwards on (public port, VM, private port)."""
    have = {
        (int(str(r["publicport"])), str(r["virtualmachineid"]), int(str(r["privateport"]))): str(r["id"])
        for r in existing
    }
    keep, create = [], []
    for w in wanted:
        rid = have.get((w.public_port, vm_ids.get(w.node, ""), w.private_port))
        if rid:
            keep.append(rid)
        else:
            create.append(w)
    delete = [str(r["id"]) for r in existing if str(r["id"]) in owned and str(r["id"]) not in keep]
    # A stale rule holding a wanted public port must go even if it is not ours to reuse.
    return Diff(tuple(keep), tuple(create), tuple(delete))


def destroy_order(kinds: Iterable[str]) -> list[str]:
    """Kinds in the order they must be removed (unknown kinds last)."""
    rank = {k: i for i, k in enumerate(DESTROY_ORDER)}
    return sorted(set(kinds), key=lambda k: (rank.get(k, len(rank)), k))


def userdata(hostname: str, ssh_public_key: str) -> str:
    """Base64 cloud-config: host name and koral's key for root (the SSH user of every play)."""
    lines = [
        "#cloud-config",
        f"hostname: {hostname}",
        "disable_root: false",
        "ssh_pwauth: false",
        "ssh_authorized_keys:",
        f"  - {ssh_public_key.strip()}",
    ]
    return base64.b64encode(("\n".join(lines) + "\n").encode()).decode()


def check_size(requested: int, limit: int) -> str | None:
    """Problem text when the worker count exceeds cloud.kubernetes.cluster.max.size."""
    if not 1 <= requested <= limit:
        return f"must be an integer from 1 to {limit} (cloud.kubernetes.cluster.max.size)"
    return None


def offering_ok(cpu: int, memory: int) -> bool:
    return cpu >= 2 and memory >= 2048
