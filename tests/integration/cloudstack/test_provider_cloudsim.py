"""CloudStackProvider against the test cloud (loopback HTTP, in-memory VMs)."""

from __future__ import annotations

import time

import pytest

from koral_ansible.errors import InputError, OperationError
from koral_ansible.paths import Paths
from tests.cloudsim import CloudSim
from tests.integration.cloudstack.helpers import config_for, harness

EMPTY = {
    "networks": 0,
    "public_ips": 0,
    "vms": 0,
    "firewall_rules": 0,
    "port_forwarding_rules": 0,
    "load_balancer_rules": 0,
}


def _recorded_ids(h, kind: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.rid for r in h.store.resources("demo", kind)}


def _cloud_ids(sim: CloudSim) -> dict[str, set[str]]:
    c = sim.cloud
    return {
        "network": set(c.networks),
        "public_ip": set(c.public_ips),
        "vm": set(c.vms),
        "firewall_rule": set(c.firewall_rules),
        "port_forward": set(c.pf_rules),
        "lb_rule": set(c.lb_rules),
    }


def _assert_all_recorded(h, sim: CloudSim) -> None:  # type: ignore[no-untyped-def]
    for kind, ids in _cloud_ids(sim).items():
        assert ids <= _recorded_ids(h, kind), f"{kind} created but not recorded"


@pytest.mark.parametrize(("control", "workers"), [(1, 2), (3, 2)])
def test_create_and_destroy(cloudsim: CloudSim, koral_home: Paths, control: int, workers: int) -> None:
    h = harness(cloudsim, koral_home, control_nodes=control, size=workers)
    h.provider.validate(h.spec)
    assert cloudsim.counts() == EMPTY  # validate creates nothing
    ep = h.provider.provision(h.spec)
    n = control + workers
    c = cloudsim.cloud
    assert len(c.networks) == 1 and len(c.vms) == n
    net = next(iter(c.networks.values()))
    assert net["networkofferingname"] == "DefaultNetworkOfferingforKubernetesService"
    ip = next(iter(c.public_ips.values()))
    assert ip["issourcenat"] and ep.public_ip == ip["ipaddress"]
    assert ep.control_plane_endpoint == f"{ip['ipaddress']}:6443"
    nodes = h.store.nodes("demo")
    assert [x.name for x in nodes][:control] == [f"demo-control-{i + 1}" for i in range(control)]
    assert [(x.idx, x.ssh_port, x.ssh_host, x.state) for x in nodes] == [
        (i, 2222 + i, ip["ipaddress"], "Running") for i in range(n)
    ]
    assert all(x.private_ip.startswith("10.1.") and x.provider_id in c.vms for x in nodes)
    # port forwards: public 2222+i -> VM i :22
    pf = {int(r["publicport"]): (r["virtualmachinename"], r["privateport"]) for r in c.pf_rules.values()}
    assert pf == {2222 + x.idx: (x.name, "22") for x in nodes}
    # firewall: 6443 and 2222..2222+n-1 from the allowed CIDRs
    fw = sorted((r["startport"], r["endport"], r["cidrlist"]) for r in c.firewall_rules.values())
    assert fw == [(2222, 2222 + n - 1, "0.0.0.0/0"), (6443, 6443, "0.0.0.0/0")]
    (lb,) = c.lb_rules.values()
    assert (lb["name"], lb["algorithm"], lb["publicport"], lb["privateport"]) == (
        "demo-api-lb",
        "roundrobin",
        "6443",
        "6443",
    )
    assert sorted(lb["_vms"]) == sorted(x.provider_id for x in nodes if x.is_control)
    # VMs: template, offering, disk, user data with koral's key, tags
    vm = c.vms[nodes[0].provider_id]
    assert vm["_rootdisksize"] == 8 and "ssh_authorized_keys" in vm["_userdata"]
    assert {t["key"]: t["value"] for t in vm["tags"]} == {"koral-cluster": "demo", "koral-role": "control"}
    _assert_all_recorded(h, cloudsim)
    stored = h.store.get_cluster("demo").endpoint
    assert stored["public_ip"] == ep.public_ip

    # re-running create reuses everything
    calls = len(cloudsim.calls)
    h.provider.provision(h.spec)
    created = [x for x in cloudsim.calls[calls:] if x.startswith(("create", "deploy", "associate", "assign"))]
    assert created == []
    assert len(c.vms) == n and len(c.pf_rules) == n

    h.provider.destroy(h.spec)
    cloudsim.wait_idle()
    assert cloudsim.counts() == EMPTY
    assert not c.keypairs
    assert h.store.resources("demo") == []
    h.provider.destroy(h.spec)  # idempotent


def test_deployments_are_concurrent(cloudsim: CloudSim, koral_home: Paths) -> None:
    cloudsim.set_latency(0.4, "deployVirtualMachine")
    h = harness(cloudsim, koral_home, control_nodes=1, size=4)
    t0 = time.monotonic()
    h.provider.provision(h.spec)
    # five 0.4 s deployments one after another would take 2 s
    assert time.monotonic() - t0 < 1.6


def test_allowed_cidrs_and_external_lb(cloudsim: CloudSim, koral_home: Paths) -> None:
    h = harness(
        cloudsim,
        koral_home,
        control_nodes=3,
        size=1,
        allowed_cidrs=["192.0.2.0/24", "198.51.100.0/24"],
        external_lb_ip="192.0.2.50",
    )
    ep = h.provider.provision(h.spec)
    c = cloudsim.cloud
    assert not c.lb_rules
    assert ep.control_plane_endpoint == "192.0.2.50:6443"
    fw = [(r["startport"], r["endport"], r["cidrlist"]) for r in c.firewall_rules.values()]
    assert fw == [(2222, 2225, "192.0.2.0/24,198.51.100.0/24")]


@pytest.mark.parametrize(
    ("command", "calls", "expect"),
    [
        ("deployVirtualMachine", [2], "VM deployment"),
        ("createLoadBalancerRule", [], "load balancer demo-api-lb"),
        ("createPortForwardingRule", [3], "port forward 2224"),
    ],
)
def test_failure_is_clear_and_nothing_leaks(
    cloudsim: CloudSim, koral_home: Paths, command: str, calls: list[int], expect: str
) -> None:
    cloudsim.inject(command, "error", calls, errortext=f"Injected failure of {command}")
    h = harness(cloudsim, koral_home, control_nodes=1, size=2)
    with pytest.raises(OperationError) as err:
        h.provider.provision(h.spec)
    assert expect in str(err.value) and f"Injected failure of {command}" in str(err.value)
    assert cloudsim.config.secret not in str(err.value)
    cloudsim.wait_idle()
    _assert_all_recorded(h, cloudsim)
    for vm in cloudsim.cloud.vms.values():  # what was made is findable by tag (cloud-side inventory)
        assert (
            vm["state"] == "Error"
            or {"key": "koral-cluster", "value": "demo"}.items() <= vm["tags"][0].items()
        )
    # resume: the fault is gone, create finishes without duplicates
    cloudsim.faults.clear()
    h.provider.provision(h.spec)
    assert len(cloudsim.cloud.vms) == 3 and len(cloudsim.cloud.pf_rules) == 3
    assert all(v["state"] == "Running" for v in cloudsim.cloud.vms.values())
    h.provider.destroy(h.spec)
    assert cloudsim.counts() == EMPTY


def test_failed_create_then_delete_leaves_nothing(cloudsim: CloudSim, koral_home: Paths) -> None:
    cloudsim.inject("deployVirtualMachine", "error", [3])
    h = harness(cloudsim, koral_home, control_nodes=3, size=2)
    with pytest.raises(OperationError, match="1 of 5 VM deployment"):
        h.provider.provision(h.spec)
    cloudsim.wait_idle()
    assert any(v["state"] == "Error" for v in cloudsim.cloud.vms.values())
    _assert_all_recorded(h, cloudsim)
    h.provider.destroy(h.spec)
    assert cloudsim.counts() == EMPTY


def test_resume_starts_a_stopped_vm_and_waits_for_busy_ones(cloudsim: CloudSim, koral_home: Paths) -> None:
    h = harness(cloudsim, koral_home, size=1)
    h.provider.provision(h.spec)
    vms = list(cloudsim.cloud.vms.values())
    vms[0]["state"] = "Stopped"
    vms[1]["state"] = "Starting"  # an earlier run's deploy still in progress ...

    def finish() -> None:
        time.sleep(0.3)
        vms[1]["state"] = "Running"  # ... which completes a moment later

    import threading

    threading.Thread(target=finish).start()
    h.provider.provision(h.spec)
    assert {v["state"] for v in cloudsim.cloud.vms.values()} == {"Running"}
    assert len(cloudsim.cloud.vms) == 2
    assert any("waiting for 1 VM(s) of an earlier run" in m for m in h.messages)


def test_job_timeout_is_clear(cloudsim: CloudSim, koral_home: Paths) -> None:
    cloudsim.inject("deployVirtualMachine", "timeout", [1])
    h = harness(cloudsim, koral_home, config=config_for(cloudsim, job_timeout=0.5), size=1)
    with pytest.raises(
        OperationError, match=r"timed out after 0.5s waiting for 2 VM deployment.*demo-control-1"
    ):
        h.provider.provision(h.spec)
    _assert_all_recorded(h, cloudsim)
    # the hung VM stays "Starting"; destroy still removes it
    h.provider.destroy(h.spec)
    cloudsim.wait_idle()
    assert cloudsim.counts() == EMPTY


def test_api_timeout_and_transient_errors(cloudsim: CloudSim, koral_home: Paths) -> None:
    # a list call that hangs past the HTTP timeout is retried; 503s from a proxy are retried
    cloudsim.inject("listZones", "timeout", [1], hang_seconds=1.5)
    cloudsim.inject("createFirewallRule", "http503", [1])
    h = harness(cloudsim, koral_home, config=config_for(cloudsim, timeout=1), size=1)
    h.provider.provision(h.spec)
    assert len(cloudsim.cloud.firewall_rules) == 2
    assert any("retrying" in m for m in h.messages)
    # a mutating call that times out is not repeated blindly: clear message, then resume
    cloudsim.inject("createNetwork", "timeout", [2], hang_seconds=1.5)
    h2 = harness(cloudsim, koral_home, name="other", config=config_for(cloudsim, timeout=1), size=1)
    with pytest.raises(OperationError, match=r"createNetwork: no answer from the cloud API.*re-run"):
        h2.provider.provision(h2.spec)
    time.sleep(0.6)  # the hung request finishes server-side: the network exists but was not recorded
    assert not h2.store.resources("other", "network")
    h2.provider.provision(h2.spec)
    assert sum(1 for n in cloudsim.cloud.networks.values() if n["name"] == "other-network") == 1
    h.provider.destroy(h.spec)
    h2.provider.destroy(h2.spec)
    assert cloudsim.counts() == EMPTY


def test_delete_finds_a_network_create_could_not_record(cloudsim: CloudSim, koral_home: Paths) -> None:
    cloudsim.inject("createNetwork", "timeout", [1], hang_seconds=1.5)
    h = harness(cloudsim, koral_home, config=config_for(cloudsim, timeout=1), size=1)
    with pytest.raises(OperationError, match="createNetwork: no answer"):
        h.provider.provision(h.spec)
    time.sleep(0.6)
    assert len(cloudsim.cloud.networks) == 1 and not h.store.resources("demo")
    h.provider.destroy(h.spec)
    assert cloudsim.counts() == EMPTY


def test_validation_names_field_and_allowed_values(cloudsim: CloudSim, koral_home: Paths) -> None:
    cases = [
        ({"zone": "nowhere"}, "zone", "zone1"),
        ({"compute_offering": "Small Instance"}, "compute_offering", "Large Instance, Medium Instance"),
        ({"compute_offering": "Huge"}, "compute_offering", "Medium Instance"),
        ({"ssh_keypair": "nokey"}, "ssh_keypair", "allowed"),
        ({"network": "nonet"}, "network", "leave it unset"),
    ]
    for over, field, allowed in cases:
        h = harness(cloudsim, koral_home, name="v", **over)
        with pytest.raises(InputError) as err:
            h.provider.validate(h.spec)
        assert err.value.field == field and allowed in str(err.value)
        h.store.forget_cluster("v")
    cloudsim.cloud.set_config("cloud.kubernetes.cluster.max.size", "3")
    h = harness(cloudsim, koral_home, name="w", size=4)
    with pytest.raises(InputError, match="size: must be an integer from 1 to 3"):
        h.provider.validate(h.spec)
    h = harness(cloudsim, koral_home, name="x", config=config_for(cloudsim, template="missing"))
    with pytest.raises(InputError, match="koral-node-debian12"):
        h.provider.validate(h.spec)
    assert cloudsim.counts() == EMPTY


def test_day2_scale_stop_start(cloudsim: CloudSim, koral_home: Paths) -> None:
    h = harness(cloudsim, koral_home, control_nodes=1, size=1)
    h.provider.provision(h.spec)
    new = h.provider.add_workers(h.spec, 2)
    assert [(n.name, n.idx, n.ssh_port) for n in new] == [("demo-node-2", 2, 2224), ("demo-node-3", 3, 2225)]
    c = cloudsim.cloud
    assert sorted(int(r["publicport"]) for r in c.pf_rules.values()) == [2222, 2223, 2224, 2225]
    node = next(n for n in h.store.nodes("demo") if n.name == "demo-node-1")
    h.provider.remove_node(h.spec, node)
    assert sorted(int(r["publicport"]) for r in c.pf_rules.values()) == [2222, 2224, 2225]
    fw = sorted((r["startport"], r["endport"]) for r in c.firewall_rules.values())
    assert fw == [(2222, 2222), (2224, 2225), (6443, 6443)]
    _assert_all_recorded(h, cloudsim)
    h.provider.stop(h.spec)
    assert {v["state"] for v in c.vms.values()} == {"Stopped"}
    assert not h.provider.node_running(h.store.nodes("demo")[0])
    h.provider.start(h.spec)
    assert {v["state"] for v in c.vms.values()} == {"Running"}
    assert all(n.state == "Running" for n in h.store.nodes("demo"))
    h.provider.destroy(h.spec)
    assert cloudsim.counts() == EMPTY


def test_user_account_without_settings_access(koral_home: Paths) -> None:
    from tests.cloudsim import SimConfig

    with CloudSim(SimConfig(role="User", job_latency=0.01)) as sim:
        h = harness(sim, koral_home, config=config_for(sim), size=1)
        h.provider.validate(h.spec)  # listConfigurations is refused (432): the checks use defaults
        h.provider.provision(h.spec)
        # Users may not expunge (allow.user.expunge.recover.vm=false): VMs are only destroyed,
        # so the network cannot go yet; the error says why and what to do.
        with pytest.raises(OperationError, match=r"not expunged yet .*run delete again"):
            h.provider.destroy(h.spec)
        assert {v["state"] for v in sim.cloud.vms.values()} == {"Destroyed"}
        assert not sim.cloud.pf_rules and not sim.cloud.lb_rules and not sim.cloud.firewall_rules
        assert sim.expunge_destroyed() == 2  # the cloud's expunge thread runs
        h.provider.destroy(h.spec)
        assert sim.counts() == EMPTY


def test_user_allowed_to_expunge(koral_home: Paths) -> None:
    from tests.cloudsim import SimConfig

    with CloudSim(SimConfig(role="User", job_latency=0.01)) as sim:
        sim.cloud.set_config("allow.user.expunge.recover.vm", "true")
        h = harness(sim, koral_home, config=config_for(sim), size=1)
        h.provider.provision(h.spec)
        h.provider.destroy(h.spec)
        assert sim.counts() == EMPTY


def _destroy_requests(sim: CloudSim) -> list[dict[str, str]]:
    return [p for c, p in sim.requests if c == "destroyVirtualMachine"]


def _failed_jobs(sim: CloudSim, command: str) -> list[dict[str, object]]:
    return [j.result or {} for j in sim.jobs.jobs.values() if j.command == command and j.status == 2]


def test_no_expunge_without_the_right(koral_home: Paths) -> None:
    """Decided before asking: listCapabilities (allowuserexpungerecovervm) and listAccounts
    (accounttype): a user account's destroyVirtualMachine carries no expunge, and no job fails."""
    from tests.cloudsim import SimConfig

    with CloudSim(SimConfig(role="User", job_latency=0.01)) as sim:
        h = harness(sim, koral_home, config=config_for(sim), size=1)
        h.provider.provision(h.spec)
        with pytest.raises(
            OperationError, match=r"could not remove 1 network\(s\): .*Failed to delete network"
        ):
            h.provider.destroy(h.spec)
        assert len(_destroy_requests(sim)) == 2
        assert all("expunge" not in p for p in _destroy_requests(sim))
        assert _failed_jobs(sim, "destroyVirtualMachine") == []
        # Run again (a new process) before the cloud's expunge thread: the same hint.
        h2 = harness(sim, koral_home, config=config_for(sim), size=1)
        with pytest.raises(OperationError, match=r"not expunged yet .*run delete again"):
            h2.provider.destroy(h2.spec)
    with CloudSim(SimConfig(job_latency=0.01)) as admin:  # an administrator expunges at once
        h = harness(admin, koral_home, name="adm", config=config_for(admin), size=1)
        h.provider.provision(h.spec)
        h.provider.destroy(h.spec)
        assert [p.get("expunge") for p in _destroy_requests(admin)] == ["true", "true"]
        assert admin.counts() == EMPTY


def test_expunge_refused_by_the_job_is_handled(koral_home: Paths) -> None:
    """A role without the expunge API: the capability says yes, the job still fails 530
    (VmDestroyPermissionServiceImpl); koral destroys again without expunge and says what to do."""
    from tests.cloudsim import SimConfig
    from tests.cloudsim.errors import CS_PERMISSION_DENIED

    with CloudSim(SimConfig(role="User", job_latency=0.01)) as sim:
        sim.cloud.set_config("allow.user.expunge.recover.vm", "true")
        h = harness(sim, koral_home, config=config_for(sim), size=1)
        h.provider.provision(h.spec)
        sim.inject(
            "destroyVirtualMachine",
            calls=[1, 2],
            errorcode=530,
            cserrorcode=CS_PERMISSION_DENIED,
            errortext="Account does not have permission for expunging.",
        )
        with pytest.raises(OperationError, match=r"not expunged yet .*run delete again"):
            h.provider.destroy(h.spec)
        assert [f["errorcode"] for f in _failed_jobs(sim, "destroyVirtualMachine")] == [530, 530]
        assert {v["state"] for v in sim.cloud.vms.values()} == {"Destroyed"}
        assert any("may not expunge" in m for m in h.messages)
        assert sim.expunge_destroyed() == 2
        h.provider.destroy(h.spec)
        assert sim.counts() == EMPTY


def test_delete_rerun_after_a_kill_finishes(cloudsim: CloudSim, koral_home: Paths) -> None:
    """A delete killed after the cloud removed things but before koral forgot them: the re-run
    meets removed rows (deleteNetwork: 431 "Network ID=<n> doesn't exist"; destroyVirtualMachine:
    job 431 "unable to find a virtual machine with id <n>"; deleted rules: UUID unknown) and
    treats each as gone."""
    h = harness(cloudsim, koral_home, size=2)
    h.provider.provision(h.spec)
    recorded = [(r.kind, r.rid, r.data) for r in h.store.resources("demo")]
    assert {k for k, _, _ in recorded} >= {
        "network",
        "vm",
        "public_ip",
        "firewall_rule",
        "port_forward",
        "lb_rule",
    }
    h.provider.destroy(h.spec)
    assert cloudsim.counts() == EMPTY and h.store.resources("demo") == []
    for kind, rid, data in recorded:  # the state as the killed run left it
        h.store.add_resource("demo", kind, rid, data)
    h2 = harness(cloudsim, koral_home, size=2)  # a new process
    h2.provider.destroy(h2.spec)
    assert h2.store.resources("demo") == []
    net_id = next(rid for k, rid, _ in recorded if k == "network")
    assert [(c, p.get("id")) for c, p in cloudsim.requests].count(("deleteNetwork", net_id)) == 2
    assert cloudsim.counts() == EMPTY
