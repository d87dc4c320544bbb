"""The user's network rules: validation and conflict detection (pure; nothing talks to a cloud)."""

from __future__ import annotations

import pytest

from koral_ansible.errors import InputError
from koral_ansible.paths import Paths
from koral_ansible.rules import records, validate
from koral_ansible.rules.model import ALGORITHMS, FIREWALL, LB, PORT_FORWARD, Rule
from koral_ansible.rules.reserved import reserved_ports
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterRecord, NodeRecord, StateStore

MAX = 10


@pytest.fixture
def record(koral_home: Paths) -> ClusterRecord:
    store = StateStore(koral_home)
    store.add_cluster(
        validate_spec(
            {"name": "demo", "provider": "cloudstack", "zone": "z", "compute_offering": "m", "size": 2}
        )
    )
    for i, (name, role) in enumerate(
        [("demo-control-1", "control"), ("demo-node-1", "worker"), ("demo-node-2", "worker")]
    ):
        store.upsert_node("demo", NodeRecord(name=name, role=role, idx=i, ssh_port=2222 + i))
    return store.get_cluster("demo")


def _refused(fn, field: str, *words: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as err:
        fn()
    assert err.value.field == field, err.value.message
    assert err.value.exit_code == 2 and "\n" not in err.value.message
    for w in words:
        assert w in err.value.message
    return err.value.message


def test_reserved_ports_are_the_api_and_the_ssh_range_a_scale_up_would_take(record: ClusterRecord) -> None:
    # 3 nodes (idx 0..2) and 8 more workers up to max size 10: SSH 2222..2232, and 6443.
    assert [(r.start, r.end) for r in reserved_ports(record, MAX)] == [(2222, 2232), (6443, 6443)]
    assert [(r.start, r.end) for r in reserved_ports(record, 2)] == [(2222, 2224), (6443, 6443)]


@pytest.mark.parametrize(
    ("port", "field", "words"),
    [
        ("6443", "--port", ("6443/tcp", "API load balancer")),
        ("2232", "--port", ("2222-2232/tcp", "scale-up")),
        ("2200-2300", "--port", ("2222-2232",)),
        ("0", "--port", ("1-65535",)),
        ("70000", "--port", ("1-65535",)),
        ("90-80", "--port", ("START <= END",)),
        ("http", "--port", ("1-65535",)),
        (None, "--port", ("required",)),
    ],
)
def test_firewall_ports_are_checked(
    record: ClusterRecord, port: str | None, field: str, words: tuple[str, ...]
) -> None:
    _refused(
        lambda: validate.firewall_rule(record, [], proto="tcp", port=port, cidrs=[], max_size=MAX),
        field,
        *words,
    )


def test_udp_may_use_koral_s_tcp_ports_and_icmp_takes_no_port(record: ClusterRecord) -> None:
    rule = validate.firewall_rule(record, [], proto="udp", port="6443", cidrs=[], max_size=MAX)
    assert (rule.kind, rule.name, rule.protocol, rule.ports, rule.cidrs) == (
        FIREWALL,
        "fw-1",
        "udp",
        "6443",
        ("0.0.0.0/0",),
    )
    icmp = validate.firewall_rule(
        record, [rule], proto="icmp", port=None, cidrs=["192.0.2.0/24"], max_size=MAX
    )
    assert (icmp.name, icmp.start_port, icmp.cidrs) == ("fw-2", 0, ("192.0.2.0/24",))
    _refused(
        lambda: validate.firewall_rule(record, [], proto="icmp", port="80", cidrs=[], max_size=MAX),
        "--port",
        "icmp",
    )


def test_protocol_algorithm_and_cidrs_name_the_allowed_values(record: ClusterRecord) -> None:
    _refused(
        lambda: validate.firewall_rule(record, [], proto="sctp", port="80", cidrs=[], max_size=MAX),
        "--protocol",
        "tcp, udp, icmp",
    )
    _refused(
        lambda: validate.port_forward_rule(
            record,
            [],
            proto="icmp",
            public_port="80",
            private_port=None,
            node="demo-node-1",
            cidrs=[],
            max_size=MAX,
        ),
        "--protocol",
        "tcp, udp",
    )
    _refused(
        lambda: validate.lb_rule(
            record,
            [],
            name="web",
            proto="tcp",
            public_port="80",
            private_port=None,
            algo="random",
            members=[],
            cidrs=[],
            max_size=MAX,
        ),
        "--algorithm",
        ", ".join(ALGORITHMS),
    )
    for bad in ("10.0.0.1/8", "300.0.0.0/8", "example"):
        _refused(
            lambda bad=bad: validate.firewall_rule(
                record, [], proto="tcp", port="80", cidrs=[bad], max_size=MAX
            ),
            "--cidr",
            "IPv4 CIDRs",
        )
    rule = validate.firewall_rule(
        record, [], proto="TCP", port="80", cidrs=["192.0.2.0/24,198.51.100.0/24"], max_size=MAX
    )
    assert rule.cidrs == ("192.0.2.0/24", "198.51.100.0/24") and rule.protocol == "tcp"


def test_port_forward_needs_a_node_and_equal_ranges(record: ClusterRecord) -> None:
    def pf(**kw: object) -> Rule:
        args: dict[str, object] = {
            "proto": "tcp",
            "public_port": "8080-8081",
            "private_port": "80-81",
            "node": "demo-node-1",
            "cidrs": [],
            "max_size": MAX,
        }
        args.update(kw)
        return validate.port_forward_rule(record, [], **args)  # type: ignore[arg-type]

    rule = pf()
    assert (rule.kind, rule.ports, rule.private_ports, rule.nodes) == (
        PORT_FORWARD,
        "8080-8081",
        "80-81",
        ("demo-node-1",),
    )
    assert pf(private_port=None).private_ports == "8080-8081"
    _refused(lambda: pf(private_port="80"), "--private-port", "same size")
    _refused(lambda: pf(node="demo-node-9"), "--node", "demo-control-1, demo-node-1, demo-node-2")
    _refused(lambda: pf(node=None), "--node", "required")
    _refused(lambda: pf(public_port="2230", private_port=None), "--public-port", "2222-2232")


def test_lb_names_members_and_ports(record: ClusterRecord) -> None:
    def lb(existing: list[Rule] | None = None, **kw: object) -> Rule:
        args: dict[str, object] = {
            "name": "web",
            "proto": None,
            "public_port": "80",
            "private_port": "8080",
            "algo": None,
            "members": [],
            "cidrs": [],
            "max_size": MAX,
        }
        args.update(kw)
        return validate.lb_rule(record, existing or [], **args)  # type: ignore[arg-type]

    rule = lb()
    assert (rule.kind, rule.protocol, rule.algorithm, rule.nodes, rule.row()["nodes"]) == (
        LB,
        "tcp",
        "roundrobin",
        (),
        "workers",
    )
    _refused(lambda: lb(name="demo-api-lb"), "NAME", "taken")
    _refused(lambda: lb([rule], public_port="81"), "NAME", "taken")
    _refused(lambda: lb(name="Web!"), "NAME", "lower-case")
    _refused(lambda: lb(public_port="80-90"), "--public-port", "a port 1-65535")
    _refused(lambda: lb(members=["demo-node-7"]), "--member", "demo-node-1")
    assert lb(members=["demo-node-2"], algo="leastconn").nodes == ("demo-node-2",)


def test_conflicts_with_existing_rules(record: ClusterRecord) -> None:
    fw = validate.firewall_rule(
        record, [], proto="tcp", port="8000-8010", cidrs=["192.0.2.0/24"], max_size=MAX
    )
    pf = validate.port_forward_rule(
        record,
        [fw],
        proto="tcp",
        public_port="9000",
        private_port="80",
        node="demo-node-1",
        cidrs=["203.0.113.0/24"],
        max_size=MAX,
    )
    have = [fw, pf]
    # firewall vs firewall: overlapping ports and sources
    _refused(
        lambda: validate.firewall_rule(
            record, have, proto="tcp", port="8010", cidrs=["192.0.2.128/25"], max_size=MAX
        ),
        "--port",
        "fw-1",
        "8000-8010/tcp",
    )
    # other sources, other protocol: no conflict
    assert (
        validate.firewall_rule(
            record, have, proto="tcp", port="8010", cidrs=["198.51.100.0/24"], max_size=MAX
        ).name
        == "fw-2"
    )
    assert validate.firewall_rule(
        record, have, proto="udp", port="8010", cidrs=["192.0.2.0/24"], max_size=MAX
    )
    # port forwards and LB rules share the public ports, whatever their sources
    _refused(
        lambda: validate.lb_rule(
            record,
            have,
            name="web",
            proto="tcp",
            public_port="9000",
            private_port=None,
            algo=None,
            members=[],
            cidrs=["198.51.100.0/24"],
            max_size=MAX,
        ),
        "--public-port",
        "pf-1",
    )
    # a port forward opens the firewall for its sources: checked against firewall rules too
    _refused(
        lambda: validate.port_forward_rule(
            record,
            have,
            proto="tcp",
            public_port="8005",
            private_port=None,
            node="demo-node-2",
            cidrs=["192.0.2.0/24"],
            max_size=MAX,
        ),
        "--public-port",
        "fw-1",
    )


def test_rules_round_trip_through_the_state(record: ClusterRecord, koral_home: Paths) -> None:
    store = StateStore(koral_home)
    rule = validate.lb_rule(
        record,
        [],
        name="web",
        proto="udp",
        public_port="53",
        private_port="5353",
        algo="source",
        members=["demo-node-1"],
        cidrs=["192.0.2.0/24"],
        max_size=MAX,
    )
    records.save(store, "demo", rule)
    assert records.load(store, "demo") == [rule]
    store.forget_cluster("demo")
    assert store.network_rules("demo") == []


def test_local_rules_render_one_table_of_their_own(record: ClusterRecord) -> None:
    import shutil
    import subprocess
    from ipaddress import IPv4Address

    from koral_ansible.providers.local import nft
    from koral_ansible.rules import local

    nodes = [
        NodeRecord(name=n.name, role=n.role, idx=n.idx, private_ip=f"10.88.0.{n.idx + 10}")
        for n in record.nodes
    ]
    fw = validate.firewall_rule(record, [], proto="tcp", port="80", cidrs=["192.0.2.0/24"], max_size=MAX)
    fw2 = validate.firewall_rule(
        record, [fw], proto="tcp", port="80-81", cidrs=["198.51.100.0/24"], max_size=MAX
    )
    pf = validate.port_forward_rule(
        record,
        [fw, fw2],
        proto="tcp",
        public_port="8080-8081",
        private_port="80-81",
        node="demo-node-1",
        cidrs=[],
        max_size=MAX,
    )
    web = validate.lb_rule(
        record,
        [fw, fw2, pf],
        name="web",
        proto="udp",
        public_port="53",
        private_port="5353",
        algo="source",
        members=[],
        cidrs=[],
        max_size=MAX,
    )
    text = local.render("demo", IPv4Address("10.88.0.1"), [fw, fw2, pf, web], nodes)
    assert local.table_name("demo") == "koralrules_demo" != nft.table_name("demo")
    assert "ip daddr 10.88.0.1 tcp dport 80 ip saddr @src_0 accept" in text
    assert "ip daddr 10.88.0.1 tcp dport { 80-81, 8080-8081 } drop" in text  # merged, no overlap
    assert "ip daddr 10.88.0.1 tcp dport 8081 dnat to 10.88.0.11:81" in text
    assert "udp dport 53 dnat to jhash ip saddr mod 2 map { 0 : 10.88.0.11, 1 : 10.88.0.12 }:5353" in text
    rr = dataclasses_replace(web, algorithm="roundrobin", protocol="tcp")
    assert "dnat to numgen inc mod 2" in local.render("demo", IPv4Address("10.88.0.1"), [rr], nodes)
    _refused(
        lambda: local.check(dataclasses_replace(web, algorithm="leastconn")),
        "--algorithm",
        "roundrobin, source",
    )
    if shutil.which("nft") and os_is_root():
        proc = subprocess.run(
            ["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr


def dataclasses_replace(rule: Rule, **kw: object) -> Rule:
    import dataclasses

    return dataclasses.replace(rule, **kw)  # type: ignore[arg-type]


def os_is_root() -> bool:
    import os

    return os.geteuid() == 0


def test_remove_node_refuses_a_node_a_rule_names(record: ClusterRecord, koral_home: Paths) -> None:
    from koral_ansible import operations
    from koral_ansible.operations.context import Env

    store = StateStore(koral_home)
    pf = validate.port_forward_rule(record, [], proto="tcp", public_port="8080", private_port=None,
                                    node="demo-node-1", cidrs=[], max_size=MAX)  # fmt: skip
    records.save(store, "demo", pf)
    with pytest.raises(InputError) as err:
        operations.remove_node(Env(paths=koral_home, store=store), "demo", "demo-node-1")
    assert err.value.field == "NODE" and "port-forward pf-1" in err.value.message
    assert store.last_operation("demo") is None  # refused before anything ran


def test_scale_down_refuses_to_remove_a_node_a_rule_names(record: ClusterRecord, koral_home: Paths) -> None:
    from koral_ansible import operations
    from koral_ansible.operations.context import Env

    store = StateStore(koral_home)
    web = validate.lb_rule(record, [], name="web", proto="tcp", public_port="80", private_port=None,
                           algo=None, members=["demo-node-2"], cidrs=[], max_size=MAX)  # fmt: skip
    records.save(store, "demo", web)
    with pytest.raises(InputError) as err:
        operations.scale(Env(paths=koral_home, store=store), "demo", 1, max_size=MAX)
    assert (
        err.value.field == "--size" and "demo-node-2" in err.value.message and "lb web" in err.value.message
    )
    assert store.last_operation("demo") is None
