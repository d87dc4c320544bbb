"""The CloudStack Kubernetes Provider's (the CCM's) load-balancer calls, through the real ``cs``
client, against the test cloud holding a provisioned koral cluster (in-process, no podman).

The call sequence is data taken from the provider's source, not from koral's code:
apache/cloudstack-kubernetes-provider v1.2.0 (4740dbca) cloudstack.go (newCSCloud ->
getManagementServerVersion) and cloudstack_loadbalancer.go (EnsureLoadBalancer, UpdateLoadBalancer,
EnsureLoadBalancerDeleted and their helpers getLoadBalancer, verifyHosts, getPublicIPAddress,
associatePublicIPAddress, createLoadBalancerRule, assignHostsToRule, updateFirewallRule,
deleteFirewallRule, deleteLoadBalancerRule, releaseLoadBalancerIP). Each step below names the
function it follows. docs/conformance/ccm.md lists them.
"""

from __future__ import annotations

from typing import Any

import pytest

from koral_ansible.paths import Paths
from tests.cloudsim import CloudSim, SimConfig
from tests.integration.cloudstack.helpers import harness
from tests.integration.cloudstack.test_cs_cli import cs

# k8s.io/cloud-provider cloud.go DefaultLoadBalancerName: "a" + the Service UID without dashes,
# cut to 32 characters.
UID = "5f0e8c2a-1b2c-4d3e-8f90-0a1b2c3d4e5f"
LB_NAME = ("a" + UID.replace("-", ""))[:32]
NODE_PORT = 31080
PORT = 80
# cloudstack_loadbalancer.go EnsureLoadBalancer: lbRuleName := "%s-%s-%d" (name, protocol, port).
RULE = f"{LB_NAME}-tcp-{PORT}"


def call(sim: CloudSim, command: str, **params: Any) -> dict[str, Any]:
    """One call as cloudstack-go makes it (POST, the async ones waited for)."""
    args = [f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in params.items()]
    code, body, err = cs(sim, "--post", command, *args)
    assert code == 0, (command, body, err)
    return body or {}


def get_lb(sim: CloudSim) -> dict[str, dict[str, Any]]:
    """getLoadBalancer: listLoadBalancerRules keyword=<lb name> listall=true."""
    body = call(sim, "listLoadBalancerRules", keyword=LB_NAME, listall="true")
    return {r["name"]: r for r in body.get("loadbalancerrule", [])}


def verify_hosts(sim: CloudSim, nodes: list[str]) -> tuple[list[str], str]:
    """verifyHosts: listVirtualMachines listall=true details=min,nics; VMs matched by name (the
    node name's first label, lower-cased); the network is the first NIC's; all in one network."""
    body = call(sim, "listVirtualMachines", listall="true", details=["min", "nics"])
    wanted = {n.lower().split(".")[0] for n in nodes}
    vms = [vm for vm in body["virtualmachine"] if vm["name"].lower() in wanted]
    assert vms, "none of the hosts matched the list of VMs retrieved from CS API"
    networks = {vm["nic"][0]["networkid"] for vm in vms}
    assert len(networks) == 1
    return sorted(vm["id"] for vm in vms), networks.pop()


def ensure(sim: CloudSim, nodes: list[str], load_balancer_ip: str, source_ranges: list[str]) -> str:
    """EnsureLoadBalancer for one TCP port, SessionAffinity None (algorithm roundrobin)."""
    rules = get_lb(sim)
    host_ids, network_id = verify_hosts(sim, nodes)
    if rules:
        ip, ip_id = rules[RULE]["publicip"], rules[RULE]["publicipid"]
    elif load_balancer_ip:  # getPublicIPAddress
        body = call(
            sim, "listPublicIpAddresses", ipaddress=load_balancer_ip, allocatedonly="false", listall="true"
        )
        assert body["count"] == 1
        ip, ip_id = body["publicipaddress"][0]["ipaddress"], body["publicipaddress"][0]["id"]
        assert body["publicipaddress"][0]["allocated"]
    else:  # associatePublicIPAddress: GetNetworkByID, then networkid (no VPC)
        network = call(sim, "listNetworks", id=network_id)["network"][0]
        assert not network.get("vpcid")
        body = call(sim, "associateIpAddress", networkid=network_id)
        ip, ip_id = body["ipaddress"]["ipaddress"], body["ipaddress"]["id"]
    if RULE not in rules:  # createLoadBalancerRule + assignHostsToRule
        call(
            sim, "createLoadBalancerRule", algorithm="roundrobin", name=RULE, privateport=NODE_PORT,
            publicport=PORT, networkid=network_id, publicipid=ip_id, protocol="tcp",
            openfirewall="false", cidrlist=["0.0.0.0/0"],
        )  # fmt: skip
        rule = get_lb(sim)[RULE]
        call(sim, "assignToLoadBalancerRule", id=rule["id"], virtualmachineids=host_ids)
    # isFirewallSupported(GetNetworkByID(...).Service) -> updateFirewallRule
    network = call(sim, "listNetworks", id=network_id)["network"][0]
    assert "Firewall" in {s["name"] for s in network["service"]}
    allowed = source_ranges or ["0.0.0.0/0"]
    fws = call(sim, "listFirewallRules", ipaddressid=ip_id, listall="true").get("firewallrule", [])
    same = [r for r in fws if r["protocol"] == "tcp" and r["startport"] == PORT and r["endport"] == PORT]
    match = next((r for r in same if sorted(r["cidrlist"].split(",")) == sorted(allowed)), None)
    for r in same:
        if r is not match:
            call(sim, "deleteFirewallRule", id=r["id"])
    if match is None:
        call(
            sim, "createFirewallRule", ipaddressid=ip_id, protocol="tcp", cidrlist=allowed,
            startport=PORT, endport=PORT,
        )  # fmt: skip
    return str(ip)


def update(sim: CloudSim, nodes: list[str]) -> None:
    """UpdateLoadBalancer: per rule listLoadBalancerRuleInstances, then assign / remove the
    symmetric difference."""
    rules = get_lb(sim)
    host_ids, _ = verify_hosts(sim, nodes)
    for rule in rules.values():
        body = call(sim, "listLoadBalancerRuleInstances", id=rule["id"])
        have = {vm["id"] for vm in body.get("loadbalancerruleinstance", [])}
        assign, remove = sorted(set(host_ids) - have), sorted(have - set(host_ids))
        if assign:
            call(sim, "assignToLoadBalancerRule", id=rule["id"], virtualmachineids=assign)
        if remove:
            call(sim, "removeFromLoadBalancerRule", id=rule["id"], virtualmachineids=remove)


def delete(sim: CloudSim, load_balancer_ip: str) -> None:
    """EnsureLoadBalancerDeleted: per rule the IP's network (GetPublicIpAddressByID, GetNetworkByID),
    no VPC -> deleteFirewallRule of the port's rules, deleteLoadBalancerRule; then the IP is
    released unless it is the Service's spec.loadBalancerIP."""
    rules = get_lb(sim)
    ip, ip_id = "", ""
    for rule in rules.values():
        ip, ip_id = rule["publicip"], rule["publicipid"]
        addr = call(sim, "listPublicIpAddresses", id=ip_id)["publicipaddress"][0]
        network = call(sim, "listNetworks", id=addr["associatednetworkid"])["network"][0]
        assert not network.get("vpcid")
        port = int(rule["publicport"])
        fws = call(sim, "listFirewallRules", ipaddressid=ip_id, listall="true").get("firewallrule", [])
        for r in fws:
            if r["protocol"] == "tcp" and r["startport"] == port and r["endport"] == port:
                call(sim, "deleteFirewallRule", id=r["id"])
        call(sim, "deleteLoadBalancerRule", id=rule["id"])
    if ip and ip != load_balancer_ip:
        call(sim, "disassociateIpAddress", id=ip_id)


def _members(sim: CloudSim) -> set[str]:
    rule = next(r for r in sim.cloud.lb_rules.values() if r["name"] == RULE)
    return {sim.cloud.vms[v]["name"] for v in rule["_vms"]}


def _service_firewall(sim: CloudSim) -> list[tuple[str, str]]:
    return sorted(
        (r["ipaddress"], r["cidrlist"]) for r in sim.cloud.firewall_rules.values() if r["startport"] == PORT
    )


@pytest.fixture
def cluster(cloudsim: CloudSim, koral_home: Paths) -> tuple[list[str], str]:
    """A provisioned 1 control + 2 worker koral cluster: its node (VM) names and public IP."""
    cloudsim.set_latency(0)
    h = harness(cloudsim, koral_home, control_nodes=1, size=2)
    h.provider.provision(h.spec)
    names = sorted(vm["name"] for vm in cloudsim.cloud.vms.values())
    api = next(r for r in cloudsim.cloud.lb_rules.values() if r["publicport"] == "6443")
    return names, str(api["publicip"])


def test_startup_reads_the_management_server_version_as_admin_only() -> None:
    """newCSCloud -> getManagementServerVersion: listManagementServersMetrics, count > 0, version;
    the command is for admins only (ListMgmtsMetricsCmd authorized = {RoleType.Admin}), so a
    plain user's key cannot start the CCM."""
    with CloudSim(SimConfig(job_latency=0, role="User")) as sim:
        code, body, _ = cs(sim, "--post", "listManagementServersMetrics")
        assert code == 1
        err = body["listmanagementserversmetricsresponse"]
        assert err["errorcode"] == 432 and err["errortext"].startswith(
            "The API [listManagementServersMetrics] does not exist or is not available for the account"
        )
    with CloudSim(SimConfig(job_latency=0)) as sim:
        body = call(sim, "listManagementServersMetrics")
        assert body["count"] == 1 and body["managementserver"][0]["version"] == "4.20.1.0"


def test_ccm_on_the_cluster_public_ip(cloudsim: CloudSim, cluster: tuple[list[str], str]) -> None:
    """A Service with spec.loadBalancerIP = the cluster's public IP: ensure, update, delete."""
    nodes, public_ip = cluster
    assert ensure(cloudsim, nodes, public_ip, ["192.0.2.0/24"]) == public_ip
    rule = next(r for r in cloudsim.cloud.lb_rules.values() if r["name"] == RULE)
    assert (rule["publicip"], rule["publicport"], rule["privateport"], rule["algorithm"]) == (
        public_ip, "80", str(NODE_PORT), "roundrobin",
    )  # fmt: skip
    assert _members(cloudsim) == set(nodes)
    assert _service_firewall(cloudsim) == [(public_ip, "192.0.2.0/24")]  # openfirewall=false: only the CCM's
    # A second ensure changes nothing (the rule and firewall rule are found and kept).
    before = (dict(cloudsim.counts()), _service_firewall(cloudsim))
    ensure(cloudsim, nodes, public_ip, ["192.0.2.0/24"])
    assert (dict(cloudsim.counts()), _service_firewall(cloudsim)) == before
    # New source ranges: the old firewall rule goes, the new one comes.
    ensure(cloudsim, nodes, public_ip, ["198.51.100.0/24"])
    assert _service_firewall(cloudsim) == [(public_ip, "198.51.100.0/24")]

    update(cloudsim, nodes[:-1])  # a node went away
    assert _members(cloudsim) == set(nodes[:-1])
    update(cloudsim, nodes)  # and came back
    assert _members(cloudsim) == set(nodes)

    delete(cloudsim, public_ip)
    assert get_lb(cloudsim) == {} and _service_firewall(cloudsim) == []
    # The cluster's own IP and its API rule stay.
    assert any(r["publicport"] == "6443" for r in cloudsim.cloud.lb_rules.values())
    assert any(ip["ipaddress"] == public_ip for ip in cloudsim.cloud.public_ips.values())


def test_ccm_on_a_new_ip(cloudsim: CloudSim, cluster: tuple[list[str], str]) -> None:
    """A Service without loadBalancerIP: the CCM associates an IP in the cluster's network and
    releases it on delete."""
    nodes, public_ip = cluster
    ips_before = {ip["ipaddress"] for ip in cloudsim.cloud.public_ips.values()}
    new_ip = ensure(cloudsim, nodes, "", [])
    assert new_ip != public_ip and new_ip not in ips_before
    assert _service_firewall(cloudsim) == [(new_ip, "0.0.0.0/0")]
    assert _members(cloudsim) == set(nodes)
    delete(cloudsim, "")
    assert get_lb(cloudsim) == {} and _service_firewall(cloudsim) == []
    assert {ip["ipaddress"] for ip in cloudsim.cloud.public_ips.values()} == ips_before


def test_update_load_balancer_rule_algorithm(cloudsim: CloudSim, cluster: tuple[list[str], str]) -> None:
    """checkLoadBalancerRule -> updateLoadBalancerRule when SessionAffinity becomes ClientIP
    (algorithm source); a bad algorithm is refused (LoadBalancingRulesManagerImpl)."""
    nodes, public_ip = cluster
    ensure(cloudsim, nodes, public_ip, [])
    rule = get_lb(cloudsim)[RULE]
    body = call(cloudsim, "updateLoadBalancerRule", id=rule["id"], algorithm="source", protocol="tcp")
    assert body["loadbalancer"]["algorithm"] == "source" and body["loadbalancer"]["name"] == RULE
    code, body, _ = cs(cloudsim, "--post", "updateLoadBalancerRule", f"id={rule['id']}", "algorithm=random")
    assert code == 1 and body["updateloadbalancerruleresponse"]["errorcode"] == 431
    assert get_lb(cloudsim)[RULE]["algorithm"] == "source"


EMPTY_AFTER_DELETE = ("networks", "public_ips", "vms", "firewall_rules", "port_forwarding_rules", "lb_rules")


def _leftovers(sim: CloudSim) -> dict[str, int]:
    return {k: v for k, v in sim.counts().items() if k in EMPTY_AFTER_DELETE and v}


def test_delete_removes_what_the_ccm_made_in_koral_s_network(cloudsim: CloudSim, koral_home: Paths) -> None:
    """The provider's rule on a new IP and on the cluster's IP, then koral's delete: nothing left
    (deleteNetwork would also revoke them: NetworkOrchestrator.cleanupNetworkResources), and a
    second delete has nothing to do."""
    cloudsim.set_latency(0)
    h = harness(cloudsim, koral_home, control_nodes=1, size=2)
    h.provider.provision(h.spec)
    nodes = sorted(vm["name"] for vm in cloudsim.cloud.vms.values())
    ensure(cloudsim, nodes, "", ["192.0.2.0/24"])  # a Service on an IP the CCM associated
    assert len(get_lb(cloudsim)) == 1
    h.provider.destroy(h.spec)
    cloudsim.wait_idle()
    assert _leftovers(cloudsim) == {}
    h.provider.destroy(h.spec)  # idempotent


def test_delete_removes_what_the_ccm_made_in_an_existing_network(
    cloudsim: CloudSim, koral_home: Paths
) -> None:
    """A cluster in the user's own network (spec.network): koral never deletes that network, so
    it removes the provider's rules, their firewall rules and the IP it associated itself; the
    network, its source-NAT IP and what koral did not make stay."""
    cloudsim.set_latency(0)
    zone = call(cloudsim, "listZones")["zone"][0]["id"]
    offering = call(cloudsim, "listNetworkOfferings")["networkoffering"][0]["id"]
    net = call(
        cloudsim,
        "createNetwork",
        name="user-net",
        displaytext="user-net",
        zoneid=zone,
        networkofferingid=offering,
    )["network"]
    h = harness(cloudsim, koral_home, control_nodes=1, size=1, network="user-net")
    h.provider.provision(h.spec)
    nodes = sorted(vm["name"] for vm in cloudsim.cloud.vms.values())
    before = {ip["ipaddress"] for ip in cloudsim.cloud.public_ips.values()}
    ccm_ip = ensure(cloudsim, nodes, "", [])
    assert ccm_ip not in before
    h.provider.destroy(h.spec)
    cloudsim.wait_idle()
    assert get_lb(cloudsim) == {} and _service_firewall(cloudsim) == []
    assert ccm_ip not in {ip["ipaddress"] for ip in cloudsim.cloud.public_ips.values()}
    assert net["id"] in cloudsim.cloud.networks and not cloudsim.cloud.vms
    h.provider.destroy(h.spec)  # idempotent
