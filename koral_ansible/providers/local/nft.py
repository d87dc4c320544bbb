"""Port forwards and the firewall of a cluster: one nftables table, replaced atomically.

``table ip koral_<cluster>`` holds, for the cluster's public IP (the bridge gateway):

- DNAT ``public_ip:2222+i -> node_i:22`` for traffic arriving from elsewhere (prerouting)
  and for traffic the host itself sends (output);
- masquerade of DNAT'd traffic between nodes of the cluster (hairpin: a node reaching
  another node, or itself, through the public IP);
- a filter (prerouting, before DNAT) dropping packets to ``public_ip`` on the SSH ports and
  6443 whose source is not in ``spec.allowed_cidrs``. The cluster's own node subnet is
  always allowed (nodes reach the API through the public IP). Traffic the host itself
  originates never crosses prerouting, so the host is always allowed: it is the "cloud"
  operator here, like CloudStack's management plane.

:func:`render` is pure; :func:`apply` loads the text with ``nft -f`` in one transaction.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from koral_ansible.errors import OperationError

SSH_PORT = 22
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def table_name(cluster: str) -> str:
    return "koral_" + cluster.replace("-", "_")


@dataclass(frozen=True)
class Forward:
    """``public_ip:port`` -> ``node_ip:22``."""

    port: int
    node_ip: IPv4Address


def allowed_networks(allowed_cidrs: Iterable[str], node_subnet: IPv4Network) -> list[IPv4Network]:
    """Allowed sources, always including the node subnet, merged so nft sees no overlapping intervals."""
    nets = [IPv4Network(c, strict=False) for c in allowed_cidrs]
    return list(ipaddress.collapse_addresses([*nets, node_subnet]))


@dataclass(frozen=True)
class Dnat:
    """``public_ip:port`` -> ``target_ip:target_port`` (TCP)."""

    public_ip: IPv4Address
    port: int
    target_ip: IPv4Address
    target_port: int = SSH_PORT


@dataclass(frozen=True)
class Guard:
    """Drop TCP packets to ``public_ip`` on ``ports`` whose source is not in ``allowed`` (before DNAT)."""

    public_ip: IPv4Address
    ports: tuple[int, ...]
    allowed: tuple[IPv4Network, ...]


def render(
    cluster: str,
    public_ip: IPv4Address,
    node_subnet: IPv4Network,
    forwards: Sequence[Forward],
    allowed_cidrs: Iterable[str],
    api_port: int = 6443,
) -> str:
    """The nft script replacing the cluster's table (create-if-missing, delete, recreate)."""
    ports = (*sorted(f.port for f in forwards), api_port)
    return render_table(
        table_name(cluster),
        f"port forwards and firewall of cluster {cluster}",
        [Dnat(public_ip, f.port, f.node_ip) for f in forwards],
        [Guard(public_ip, ports, tuple(allowed_networks(allowed_cidrs, node_subnet)))],
        [node_subnet],
    )


def render_table(
    table: str,
    title: str,
    dnats: Sequence[Dnat],
    guards: Sequence[Guard],
    hairpin_subnets: Sequence[IPv4Network],
) -> str:
    """The nft script replacing ``table``: guards (filter, prerouting), DNAT for traffic arriving
    and for traffic the host sends, and masquerade of DNAT'd traffic inside each hairpin subnet (pure).
    The first guard's source set is ``allowed_sources``, the next ones ``allowed_sources_<i>``."""
    fwd = sorted(dnats, key=lambda d: (int(d.public_ip), d.port))
    dnat = [
        f"    ip daddr {d.public_ip} tcp dport {d.port} dnat to {d.target_ip}:{d.target_port}" for d in fwd
    ]
    sets: list[str] = []
    drops: list[str] = []
    for i, guard in enumerate(guards):
        name = "allowed_sources" if i == 0 else f"allowed_sources_{i}"
        allowed = ", ".join(str(n) for n in ipaddress.collapse_addresses(guard.allowed))
        sets += [
            f"  set {name} {{",
            "    type ipv4_addr; flags interval;",
            *([f"    elements = {{ {allowed} }}"] if allowed else []),
            "  }",
        ]
        ports = ", ".join(str(p) for p in guard.ports)
        drops.append(f"    ip daddr {guard.public_ip} tcp dport {{ {ports} }} ip saddr != @{name} drop")
    hairpin = [f"    ip saddr {s} ip daddr {s} ct status dnat masquerade" for s in hairpin_subnets]
    lines = [
        f"# koral-ansible: {title} (generated, do not edit)",
        *drop_table_lines(table),
        f"table ip {table} {{",
        *sets,
        "  chain firewall {",
        "    type filter hook prerouting priority -150; policy accept;",
        *drops,
        "  }",
        "  chain forward_in {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        *dnat,
        "  }",
        "  chain forward_local {",
        "    type nat hook output priority -100; policy accept;",
        *dnat,
        "  }",
        "  chain hairpin {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        *hairpin,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def drop_table_lines(table: str) -> list[str]:
    """Declare the table, then delete it: the start of a script replacing it in one transaction, or
    the whole of one removing it whether or not it exists. Every koral table uses these lines."""
    return [f"table ip {table} {{}}", f"delete table ip {table}"]


def render_delete(cluster: str) -> str:
    """Remove the table if present (idempotent)."""
    return "\n".join(drop_table_lines(table_name(cluster))) + "\n"


def _nft(script: str) -> None:
    try:
        proc = subprocess.run(
            ["nft", "-f", "-"], input=script, capture_output=True, text=True, check=False, timeout=30
        )
    except FileNotFoundError:
        raise OperationError("nft is not installed (apt-get install nftables)") from None
    if proc.returncode != 0:
        raise OperationError(f"nft -f failed: {proc.stderr.strip().splitlines()[-1:] or ['?']}")


def apply(script: str, save_to: Path | None = None) -> None:
    """Enable forwarding and load ``script`` atomically (optionally keep a copy for inspection)."""
    enable_forwarding()
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        save_to.write_text(script)
    _nft(script)


def delete(cluster: str) -> None:
    _nft(render_delete(cluster))


def table_exists(cluster: str) -> bool:
    proc = subprocess.run(
        ["nft", "list", "table", "ip", table_name(cluster)], capture_output=True, check=False, timeout=30
    )
    return proc.returncode == 0


def enable_forwarding() -> None:
    """net.ipv4.ip_forward=1 (needed for DNAT to the nodes; netavark also sets it)."""
    try:
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD.write_text("1\n")
    except OSError as exc:
        raise OperationError(f"cannot enable net.ipv4.ip_forward: {exc.strerror}") from None
