"""The user's network rules on local nodes: one nftables table per cluster, replaced atomically.

``table ip koralrules_<cluster>`` (never ``koral_<cluster>``, koral's own port forwards and
firewall, nor ``koral_lb_<cluster>``, the LoadBalancer Services': a ``koral_`` name always has
``_`` where this one has ``r``), for the cluster's public IP (the bridge gateway):

- ``firewall`` (filter, prerouting): each rule accepts its sources on its ports, then every port a
  rule names is dropped for everyone else (so rules on one port with different sources add up,
  as CloudStack's firewall rules do); port forwards and LB rules admit their own sources, as
  CloudStack's ``openfirewall`` does;
- ``forward_in`` / ``forward_local`` (nat, prerouting and output): port forwards DNAT to their
  node, LB rules spread connections over their members with ``numgen inc`` (roundrobin) or
  ``jhash ip saddr`` (source); the hairpin masquerade of koral's own table covers them too.

:func:`render` is pure; :func:`apply` loads it with ``nft -f`` (providers/local/nft.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address
from pathlib import Path

from koral_ansible.errors import InputError
from koral_ansible.providers.local import nft
from koral_ansible.rules.model import FIREWALL, LB, PORT_FORWARD, Rule
from koral_ansible.state import NodeRecord

# What nftables can spread connections with (leastconn needs connection counts it does not keep).
LOCAL_ALGORITHMS = {"roundrobin": "numgen inc", "source": "jhash ip saddr"}
CONFIG_NAME = "rules.nftables.conf"


def table_name(cluster: str) -> str:
    return "koralrules_" + cluster.replace("-", "_")


def check(rule: Rule) -> None:
    """What local nodes refuse beyond the common validation (exit 2, before anything changes)."""
    if rule.kind == LB and rule.algorithm not in LOCAL_ALGORITHMS:
        raise InputError(
            "--algorithm",
            f"must be one of {', '.join(LOCAL_ALGORITHMS)} on local nodes (got {rule.algorithm!r})",
        )


def _merged(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _ports(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}-{b}"


def _match(public_ip: IPv4Address, rule: Rule) -> str:
    if rule.protocol == "icmp":
        return f"ip daddr {public_ip} meta l4proto icmp"
    return f"ip daddr {public_ip} {rule.protocol} dport {rule.ports}"


def _targets(rule: Rule, nodes: Sequence[NodeRecord]) -> list[IPv4Address]:
    by_name = {n.name: n for n in nodes}
    if rule.nodes:
        chosen = [by_name[n] for n in rule.nodes if n in by_name]
    else:
        chosen = [n for n in nodes if not n.is_control]
    return [IPv4Address(n.private_ip) for n in sorted(chosen, key=lambda n: n.idx) if n.private_ip]


def _dnat(public_ip: IPv4Address, rule: Rule, nodes: Sequence[NodeRecord]) -> list[str]:
    targets = _targets(rule, nodes)
    if not targets:
        return []
    if rule.kind == PORT_FORWARD:
        ip = targets[0]
        if rule.private_start == rule.start_port:
            return [f"{_match(public_ip, rule)} dnat to {ip}"]
        offset = rule.private_start - rule.start_port
        return [
            f"ip daddr {public_ip} {rule.protocol} dport {p} dnat to {ip}:{p + offset}"
            for p in range(rule.start_port, rule.end_port + 1)
        ]
    spread = LOCAL_ALGORITHMS.get(rule.algorithm, LOCAL_ALGORITHMS["roundrobin"])
    members = ", ".join(f"{i} : {ip}" for i, ip in enumerate(targets))
    where = f"{spread} mod {len(targets)} map {{ {members} }}:{rule.private_start}"
    return [f"{_match(public_ip, rule)} dnat to {where}"]


def render(cluster: str, public_ip: IPv4Address, rules: Sequence[Rule], nodes: Sequence[NodeRecord]) -> str:
    table = table_name(cluster)
    sets: list[str] = []
    accepts: list[str] = []
    for i, rule in enumerate(rules):
        sets += [
            f"  set src_{i} {{",
            "    type ipv4_addr; flags interval;",
            f"    elements = {{ {', '.join(rule.cidrs)} }}",
            "  }",
        ]
        accepts.append(f"    {_match(public_ip, rule)} ip saddr @src_{i} accept  # {rule.kind} {rule.name}")
    drops = []
    for proto in ("tcp", "udp"):
        spans = _merged([(r.start_port, r.end_port) for r in rules if r.protocol == proto])
        if spans:
            drops.append(
                f"    ip daddr {public_ip} {proto} dport {{ {', '.join(_ports(*s) for s in spans)} }} drop"
            )
    if any(r.protocol == "icmp" for r in rules):
        drops.append(f"    ip daddr {public_ip} meta l4proto icmp drop")
    dnat = [f"    {line}" for r in rules if r.kind != FIREWALL for line in _dnat(public_ip, r, nodes)]
    lines = [
        f"# koral-ansible: network rules of cluster {cluster} (generated, do not edit)",
        *nft.drop_table_lines(table),
        f"table ip {table} {{",
        *sets,
        "  chain firewall {",
        "    type filter hook prerouting priority -140; policy accept;",
        *accepts,
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
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_delete(cluster: str) -> str:
    return "\n".join(nft.drop_table_lines(table_name(cluster))) + "\n"


def apply(
    cluster: str, public_ip: IPv4Address, rules: Sequence[Rule], nodes: Sequence[NodeRecord], save_dir: Path
) -> None:
    """Replace the cluster's rules table (or remove it when there are no rules)."""
    if not rules:
        nft.apply(render_delete(cluster))
        (save_dir / CONFIG_NAME).unlink(missing_ok=True)
        return
    nft.apply(render(cluster, public_ip, rules, nodes), save_to=save_dir / CONFIG_NAME)
