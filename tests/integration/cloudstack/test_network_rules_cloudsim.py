"""The user's network rules against the test cloud: add, list, delete through koral-play; kept and
re-applied when koral changes its own rules (scale, node replacement); removed by delete."""

from __future__ import annotations

import json
from typing import Any

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.rules import ops
from koral_ansible.state import ClusterState
from tests.cloudsim import CloudSim
from tests.integration.cloudstack.helpers import Harness, harness


@pytest.fixture
def running(cloudsim: CloudSim, koral_home: Paths, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """A provisioned 1 control + 2 worker cluster, Running; the rules' provider is the harness's."""
    h = harness(cloudsim, koral_home, control_nodes=1, size=2)
    h.provider.provision(h.spec)
    h.store.set_state("demo", ClusterState.RUNNING)
    monkeypatch.setattr(ops, "provider_for", lambda *_a, **_k: h.provider)
    return h


def _play(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(root, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _user_fw(sim: CloudSim) -> list[tuple[Any, ...]]:
    ports = {2222, 6443}
    return sorted(
        (r["protocol"], r["startport"], r["endport"], r["cidrlist"], bool(r.get("_related")))
        for r in sim.cloud.firewall_rules.values()
        if r["startport"] not in ports
    )


def test_rules_add_list_show_delete(running: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    sim, store = running.sim, running.store
    nodes = {n.name: n.provider_id for n in store.nodes("demo")}
    assert _play(capsys, "firewall", "add", "demo", "--port", "80", "--cidr", "192.0.2.0/24")[0] == 0
    assert _play(capsys, "firewall", "add", "demo", "--protocol", "icmp")[0] == 0
    code, _, err = _play(
        capsys,
        "port-forward",
        "add",
        "demo",
        "--public-port",
        "8080",
        "--private-port",
        "80",
        "--node",
        "demo-node-1",
        "--cidr",
        "203.0.113.0/24",
    )
    assert code == 0 and "port-forward rule pf-1 added" in err
    assert (
        _play(
            capsys,
            "lb",
            "add",
            "demo",
            "web",
            "--public-port",
            "443",
            "--private-port",
            "8443",
            "--algorithm",
            "leastconn",
        )[0]
        == 0
    )

    # The cloud: the firewall rules, the port forward (with its own firewall rule), the LB on workers.
    assert _user_fw(sim) == [
        ("icmp", 0, 0, "0.0.0.0/0", False),
        ("tcp", 80, 80, "192.0.2.0/24", False),
        ("tcp", 443, 443, "0.0.0.0/0", True),
        ("tcp", 8080, 8080, "203.0.113.0/24", True),
    ]
    (pf,) = [r for r in sim.cloud.pf_rules.values() if r["publicport"] == "8080"]
    assert (pf["privateport"], pf["virtualmachineid"]) == ("80", nodes["demo-node-1"])
    (lb,) = [r for r in sim.cloud.lb_rules.values() if r["name"] == "web"]
    assert (lb["algorithm"], lb["publicport"], lb["privateport"]) == ("leastconn", "443", "8443")
    assert sorted(lb["_vms"]) == sorted([nodes["demo-node-1"], nodes["demo-node-2"]])

    # list: a kubectl-style table; show -o json carries the rules
    code, out, _ = _play(capsys, "firewall", "list", "demo")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "NAME",
        "KIND",
        "PROTOCOL",
        "PUBLIC",
        "PORT",
        "PRIVATE",
        "PORT",
        "NODES",
        "ALGORITHM",
        "CIDRS",
    ]
    assert [ln.split()[:4] for ln in lines[1:]] == [
        ["fw-1", "firewall", "tcp", "80"],
        ["fw-2", "firewall", "icmp", "<none>"],
    ]
    code, out, _ = _play(capsys, "show", "demo")
    assert code == 0 and "pf-1   port-forward   tcp" in out and "web    lb" in out
    code, out, _ = _play(capsys, "show", "demo", "-o", "json")
    shown = json.loads(out)["network_rules"]
    assert [r["name"] for r in shown] == ["fw-1", "fw-2", "pf-1", "web"]

    # refusals: exit 2, one line naming the field, nothing changed in the cloud or the state
    before = sim.counts(), store.network_rules("demo"), len(sim.calls)
    for args, field in [
        (("firewall", "add", "demo", "--port", "6443"), "--port"),
        (("port-forward", "add", "demo", "--public-port", "2230", "--node", "demo-node-1"), "--public-port"),
        (("port-forward", "add", "demo", "--public-port", "443", "--node", "demo-node-1"), "--public-port"),
        (("lb", "add", "demo", "web", "--public-port", "8443"), "NAME"),
        (("lb", "add", "demo", "api", "--public-port", "81", "--algorithm", "random"), "--algorithm"),
        (("firewall", "delete", "demo", "fw-9"), "RULE"),
    ]:
        code, _, err = _play(capsys, *args)
        assert code == 2 and err.startswith(f"error: {field}: ") and err.count("\n") == 1, (args, err)
    assert (sim.counts(), store.network_rules("demo"), len(sim.calls)) == before

    # delete: gone from the cloud and the state
    code, _, err = _play(capsys, "firewall", "delete", "demo", "fw-1")
    assert code == 0 and "fw-1 deleted" in err
    assert ("tcp", 80, 80, "192.0.2.0/24", False) not in _user_fw(sim)
    assert _play(capsys, "port-forward", "delete", "demo", "pf-1")[0] == 0
    assert not [r for r in sim.cloud.pf_rules.values() if r["publicport"] == "8080"]
    assert ("tcp", 8080, 8080, "203.0.113.0/24", True) not in _user_fw(sim)
    assert [r["name"] for r in store.network_rules("demo")] == ["fw-2", "web"]


def test_rules_survive_koral_s_own_updates_and_follow_the_nodes(running: Harness, koral_home: Paths) -> None:
    h, sim = running, running.sim
    env = Env(paths=koral_home, store=h.store, quiet=True)
    from koral_ansible.rules import validate

    ops.add(
        env,
        "demo",
        lambda rec, have: validate.port_forward_rule(
            rec,
            have,
            proto="tcp",
            public_port="8080",
            private_port="80",
            node="demo-node-2",
            cidrs=[],
            max_size=10,
        ),
    )
    ops.add(
        env,
        "demo",
        lambda rec, have: validate.lb_rule(
            rec,
            have,
            name="web",
            proto="tcp",
            public_port="80",
            private_port=None,
            algo=None,
            members=[],
            cidrs=[],
            max_size=10,
        ),
    )
    ops.add(
        env,
        "demo",
        lambda rec, have: validate.firewall_rule(
            rec, have, proto="udp", port="5000-5010", cidrs=[], max_size=10
        ),
    )

    def web() -> dict[str, Any]:
        return next(r for r in sim.cloud.lb_rules.values() if r["name"] == "web")

    def pf() -> list[dict[str, Any]]:
        return [r for r in sim.cloud.pf_rules.values() if r["publicport"] == "8080"]

    # scale up: koral publishes SSH 2225 for the new worker; the user's rules stay, the LB grows
    h.provider.add_workers(h.spec, 1)
    vms = {n.name: n.provider_id for n in h.store.nodes("demo")}
    assert sorted(web()["_vms"]) == sorted(vms[n] for n in ("demo-node-1", "demo-node-2", "demo-node-3"))
    assert [p["virtualmachineid"] for p in pf()] == [vms["demo-node-2"]]
    assert any(r["protocol"] == "udp" and r["startport"] == 5000 for r in sim.cloud.firewall_rules.values())
    assert any(int(r["publicport"]) == 2225 for r in sim.cloud.pf_rules.values())

    # node replacement: demo-node-2's VM is gone (its port forward with it); a create re-run
    # deploys it again and the port forward follows the new VM
    h.provider.client.run("destroyVirtualMachine", "lose demo-node-2", id=vms["demo-node-2"], expunge=True)
    assert pf() == []
    h.provider.provision(h.spec)
    new = {n.name: n.provider_id for n in h.store.nodes("demo")}["demo-node-2"]
    assert new != vms["demo-node-2"] and [p["virtualmachineid"] for p in pf()] == [new]
    assert new in web()["_vms"]

    # scale down: the removed worker leaves the LB, the rest stays
    h.provider.remove_node(h.spec, next(n for n in h.store.nodes("demo") if n.name == "demo-node-3"))
    assert vms["demo-node-3"] not in web()["_vms"] and len(web()["_vms"]) == 2

    # delete of the cluster removes the user's rules with everything else
    h.provider.destroy(h.spec)
    sim.wait_idle()
    assert sim.counts()["load_balancer_rules"] == 0 and sim.counts()["firewall_rules"] == 0
    assert h.store.resources("demo") == []


def test_a_lost_vm_takes_its_port_forward_s_firewall_rule(running: Harness) -> None:
    """CloudStack removes a port forward's own firewall rule with it when the VM goes (the related
    rule's foreign key cascades); a new port forward for the same port is then accepted."""
    h, sim = running, running.sim
    vm = next(n.provider_id for n in h.store.nodes("demo") if n.name == "demo-node-1")
    ip = next(iter(sim.cloud.public_ips))
    h.provider.client.run(
        "createPortForwardingRule",
        "pf",
        ipaddressid=ip,
        protocol="tcp",
        publicport=9000,
        privateport=80,
        virtualmachineid=vm,
        openfirewall=True,
    )
    assert any(r["startport"] == 9000 for r in sim.cloud.firewall_rules.values())
    h.provider.client.run("destroyVirtualMachine", "lose demo-node-1", id=vm, expunge=True)
    assert not any(r["startport"] == 9000 for r in sim.cloud.firewall_rules.values())
