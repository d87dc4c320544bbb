"""CLI input -> a :class:`~koral_ansible.rules.model.Rule`, or an InputError (exit 2) naming the
field and the allowed values. Pure: reads the cluster record and its rules, changes nothing."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from koral_ansible.errors import InputError
from koral_ansible.providers.cloudstack.plan import lb_name
from koral_ansible.rules.model import (
    ALGORITHMS,
    DEFAULT_CIDRS,
    FIREWALL,
    LB,
    NAME_PREFIX,
    PORT_FORWARD,
    PROTOCOLS,
    Rule,
)
from koral_ansible.rules.reserved import RESERVED_PROTOCOL, reserved_ports
from koral_ansible.state import ClusterRecord

LB_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PORT_RANGE_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


def port_range(value: str | None, field: str, single: bool = False) -> tuple[int, int]:
    """``80`` or ``8000-8010`` -> (start, end), 1..65535, start <= end."""
    allowed = "a port 1-65535" if single else "a port or range START-END, 1-65535"
    if value is None or value == "":
        raise InputError(field, f"required: {allowed}")
    m = PORT_RANGE_RE.match(value.strip())
    if not m or (single and m.group(2)):
        raise InputError(field, f"must be {allowed} (got {value!r})")
    start, end = int(m.group(1)), int(m.group(2) or m.group(1))
    if not (1 <= start <= 65535 and 1 <= end <= 65535):
        raise InputError(field, f"must be {allowed} (got {value!r})")
    if end < start:
        raise InputError(field, f"must be {allowed} with START <= END (got {value!r})")
    return start, end


def cidr_list(values: Sequence[str], field: str = "--cidr") -> tuple[str, ...]:
    if not values:
        return DEFAULT_CIDRS
    out = []
    for raw in values:
        for c in (x.strip() for x in raw.split(",")):
            try:
                out.append(str(ipaddress.IPv4Network(c, strict=True)))
            except ValueError:
                raise InputError(
                    field, f"must be IPv4 CIDRs like 203.0.113.0/24 with no host bits set (got {c!r})"
                ) from None
    return tuple(dict.fromkeys(out))


def protocol(kind: str, value: str | None) -> str:
    allowed = PROTOCOLS[kind]
    proto = (value or "tcp").lower()
    if proto not in allowed:
        raise InputError("--protocol", f"must be one of {', '.join(allowed)} (got {value!r})")
    return proto


def algorithm(value: str | None) -> str:
    algo = (value or ALGORITHMS[0]).lower()
    if algo not in ALGORITHMS:
        raise InputError("--algorithm", f"must be one of {', '.join(ALGORITHMS)} (got {value!r})")
    return algo


def nodes(record: ClusterRecord, names: Sequence[str], field: str = "--node") -> tuple[str, ...]:
    known = [n.name for n in record.nodes]
    for name in names:
        if name not in known:
            raise InputError(
                field, f"must be a node of {record.name}: {', '.join(known) or 'none'} (got {name!r})"
            )
    return tuple(dict.fromkeys(names))


def next_name(kind: str, existing: Sequence[Rule]) -> str:
    prefix = NAME_PREFIX[kind]
    used = {r.name for r in existing}
    i = 1
    while f"{prefix}-{i}" in used:
        i += 1
    return f"{prefix}-{i}"


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return not (a[1] < b[0] or a[0] > b[1])


def _cidrs_overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    return any(ipaddress.IPv4Network(x).overlaps(ipaddress.IPv4Network(y)) for x in a for y in b)


def check_conflicts(rule: Rule, record: ClusterRecord, existing: Sequence[Rule], max_size: int) -> None:
    """Refuse a rule whose public ports collide with koral's own or with a recorded rule.

    Mirrors CloudStack's FirewallManagerImpl.detectRulesConflict: port forwards and LB rules share
    the public port space per protocol; firewall rules conflict on protocol, ports and sources. A
    port forward or LB rule also opens the firewall for its CIDRs (openfirewall), so it is checked
    against firewall rules too.
    """
    field = "--port" if rule.kind == FIREWALL else "--public-port"
    mine = (rule.start_port, rule.end_port)
    if rule.protocol == RESERVED_PROTOCOL:
        for res in reserved_ports(record, max_size):
            if _overlap(mine, (res.start, res.end)):
                raise InputError(
                    field,
                    f"{rule.ports}/tcp overlaps {_label(res.start, res.end)}/tcp, {res.what}; "
                    f"choose a port outside {_label(res.start, res.end)}",
                )
    if rule.protocol == "icmp":
        clash = [
            r
            for r in existing
            if r.kind == FIREWALL and r.protocol == "icmp" and set(r.cidrs) & set(rule.cidrs)
        ]
        if clash:
            raise InputError(
                "--cidr", f"an icmp firewall rule for these sources exists already: {clash[0].name}"
            )
        return
    for other in existing:
        if other.protocol != rule.protocol or not _overlap(mine, (other.start_port, other.end_port)):
            continue
        forwards = rule.kind != FIREWALL and other.kind != FIREWALL
        walls = (rule.kind == FIREWALL or other.kind == FIREWALL) and _cidrs_overlap(rule.cidrs, other.cidrs)
        if forwards or walls:
            raise InputError(
                field,
                f"{rule.ports}/{rule.protocol} overlaps {other.kind} rule {other.name} "
                f"({other.ports}/{other.protocol}); choose other ports or delete {other.name}",
            )


def _label(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}-{b}"


def firewall_rule(
    record: ClusterRecord,
    existing: Sequence[Rule],
    *,
    proto: str | None,
    port: str | None,
    cidrs: Sequence[str],
    max_size: int,
) -> Rule:
    p = protocol(FIREWALL, proto)
    if p == "icmp":
        if port:
            raise InputError("--port", "not allowed with --protocol icmp (allowed with tcp, udp)")
        start, end = 0, 0
    else:
        start, end = port_range(port, "--port")
    rule = Rule(FIREWALL, next_name(FIREWALL, existing), p, start, end, cidr_list(cidrs))
    check_conflicts(rule, record, existing, max_size)
    return rule


def port_forward_rule(
    record: ClusterRecord,
    existing: Sequence[Rule],
    *,
    proto: str | None,
    public_port: str | None,
    private_port: str | None,
    node: str | None,
    cidrs: Sequence[str],
    max_size: int,
) -> Rule:
    p = protocol(PORT_FORWARD, proto)
    start, end = port_range(public_port, "--public-port")
    pstart, pend = port_range(private_port, "--private-port") if private_port else (start, end)
    if pend - pstart != end - start:
        raise InputError(
            "--private-port",
            f"must be a range of the same size as --public-port {_label(start, end)} "
            f"({end - start + 1} port(s); got {_label(pstart, pend)})",
        )
    if not node:
        raise InputError(
            "--node", f"required: one node of {record.name}: {', '.join(n.name for n in record.nodes)}"
        )
    target = nodes(record, [node])
    rule = Rule(
        PORT_FORWARD, next_name(PORT_FORWARD, existing), p, start, end, cidr_list(cidrs), pstart, pend, target
    )
    check_conflicts(rule, record, existing, max_size)
    return rule


def lb_rule(
    record: ClusterRecord,
    existing: Sequence[Rule],
    *,
    name: str,
    proto: str | None,
    public_port: str | None,
    private_port: str | None,
    algo: str | None,
    members: Sequence[str],
    cidrs: Sequence[str],
    max_size: int,
) -> Rule:
    if not LB_NAME_RE.match(name):
        raise InputError("NAME", f"must be 1-63 lower-case letters, digits and '-' (got {name!r})")
    if name == lb_name(record.name) or name in {r.name for r in existing}:
        raise InputError(
            "NAME",
            f"{name!r} is taken; choose a name other than {lb_name(record.name)!r} and "
            f"{', '.join(repr(r.name) for r in existing) or 'none'}",
        )
    p = protocol(LB, proto)
    pub, _ = port_range(public_port, "--public-port", single=True)
    priv, _ = port_range(private_port, "--private-port", single=True) if private_port else (pub, pub)
    rule = Rule(
        LB,
        name,
        p,
        pub,
        pub,
        cidr_list(cidrs),
        priv,
        priv,
        nodes(record, members, "--member"),
        algorithm(algo),
    )
    check_conflicts(rule, record, existing, max_size)
    return rule
