"""Make the cloud's rules on the cluster's public IP match the recorded user rules (CloudStack).

Each user rule becomes one cloud object, recorded as a resource of its own kind (``user_*``, never
the kinds koral's own layout owns, so ``_publish`` neither reuses nor deletes them) with the rule's
name: a firewall rule (createFirewallRule), a port forward (createPortForwardingRule with
openfirewall=true and the rule's cidrlist: CloudStack makes and removes its firewall rule), or an LB
rule (createLoadBalancerRule, openfirewall=true, then assign/removeFromLoadBalancerRule for the
members). Level-triggered: objects that vanished (a destroyed VM takes its port forwards) are made
again, objects of deleted rules or pointing at a replaced VM are removed, so it runs after every
change of the nodes as well as after add/delete.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from koral_ansible.providers.cloudstack.client import Job
from koral_ansible.rules.model import FIREWALL, KINDS, LB, PORT_FORWARD, Rule

if TYPE_CHECKING:
    from koral_ansible.providers.cloudstack.provider import CloudStackProvider

# State resource kind of each rule kind's cloud object (also in plan.DESTROY_ORDER).
RESOURCE_KIND = {FIREWALL: "user_firewall_rule", PORT_FORWARD: "user_port_forward", LB: "user_lb_rule"}
_LIST = {
    FIREWALL: ("listFirewallRules", "ipaddressid"),
    PORT_FORWARD: ("listPortForwardingRules", "ipaddressid"),
    LB: ("listLoadBalancerRules", "publicipid"),
}
DELETE = {
    FIREWALL: "deleteFirewallRule",
    PORT_FORWARD: "deletePortForwardingRule",
    LB: "deleteLoadBalancerRule",
}


def reconcile(provider: CloudStackProvider, rules: Sequence[Rule]) -> None:
    store, cluster, client = provider.ctx.store, provider.ctx.cluster, provider.client
    if not rules and not any(store.resources(cluster, k) for k in RESOURCE_KIND.values()):
        return  # no user rules: not one API call
    network, ip = provider._network_and_ip()
    ip_id, nid = str(ip["id"]), str(network["id"])
    nodes = store.nodes(cluster)
    vm_ids = {n.name: n.provider_id for n in nodes}
    workers = [n.provider_id for n in nodes if not n.is_control and n.provider_id]
    wanted = {r.name: r for r in rules}
    realized: dict[str, str] = {}  # rule name -> cloud id
    deletes: list[tuple[str, str, Job]] = []
    for kind in KINDS:
        rkind = RESOURCE_KIND[kind]
        command, key = _LIST[kind]
        present = {str(o["id"]): o for o in client.list(command, **{key: ip_id})}
        for res in store.resources(cluster, rkind):
            if res.rid not in present:
                store.remove_resource(cluster, rkind, res.rid)
                continue
            rule = wanted.get(str(res.data.get("rule", "")))
            stale = rule is None or rule.kind != kind or rule.name in realized
            if rule is not None and kind == PORT_FORWARD:
                target = vm_ids.get(rule.nodes[0], "")
                stale = stale or str(present[res.rid].get("virtualmachineid")) != target
            if stale:
                deletes.append(
                    (rkind, res.rid, client.submit(DELETE[kind], f"{kind} rule {res.rid}", id=res.rid))
                )
            else:
                assert rule is not None
                realized[rule.name] = res.rid
    client.wait([j for _, _, j in deletes], "removal of network rules", raise_on_failure=False)
    for rkind, rid, job in deletes:
        if job.error is None or job.error.not_found:
            store.remove_resource(cluster, rkind, rid)
    creates: list[tuple[Rule, Job]] = []
    for rule in rules:
        if rule.name in realized:
            continue
        params = _create_params(rule, ip_id, nid, vm_ids)
        if params is None:
            provider.ctx.report(f"{rule.kind} rule {rule.name}: node {rule.nodes[0]} is gone; not applied")
            continue
        command = params.pop("command")
        job = client.submit(command, f"{rule.kind} rule {rule.name}", **params)
        if job.id:
            store.add_resource(cluster, RESOURCE_KIND[rule.kind], job.id, {"rule": rule.name})
        creates.append((rule, job))
    if creates:
        provider.ctx.report(f"applying {len(creates)} network rule(s)")
    client.wait([j for _, j in creates], "network rules")
    for rule, job in creates:
        obj: Any = next(iter(job.result.values()), {}) if job.result else {}
        rid = str(obj.get("id") or job.id) if isinstance(obj, dict) else str(job.id)
        if rid != job.id and job.id:
            store.remove_resource(cluster, RESOURCE_KIND[rule.kind], job.id)
        store.add_resource(cluster, RESOURCE_KIND[rule.kind], rid, {"rule": rule.name})
        realized[rule.name] = rid
    _members(
        provider,
        [(r, realized[r.name]) for r in rules if r.kind == LB and r.name in realized],
        vm_ids,
        workers,
    )


def _create_params(rule: Rule, ip_id: str, nid: str, vm_ids: dict[str, str]) -> dict[str, Any] | None:
    cidrs = ",".join(rule.cidrs)
    if rule.kind == FIREWALL:
        params: dict[str, Any] = {
            "command": "createFirewallRule",
            "ipaddressid": ip_id,
            "protocol": rule.protocol,
            "cidrlist": cidrs,
        }
        if rule.protocol == "icmp":
            params.update(icmptype=-1, icmpcode=-1)
        else:
            params.update(startport=rule.start_port, endport=rule.end_port)
        return params
    if rule.kind == PORT_FORWARD:
        vm = vm_ids.get(rule.nodes[0])
        if not vm:
            return None
        return {
            "command": "createPortForwardingRule",
            "ipaddressid": ip_id,
            "protocol": rule.protocol,
            "publicport": rule.start_port,
            "publicendport": rule.end_port,
            "privateport": rule.private_start,
            "privateendport": rule.private_end,
            "virtualmachineid": vm,
            "openfirewall": True,
            "cidrlist": cidrs,
            "networkid": nid,
        }
    return {
        "command": "createLoadBalancerRule",
        "name": rule.name,
        "algorithm": rule.algorithm,
        "publicport": rule.start_port,
        "privateport": rule.private_start,
        "publicipid": ip_id,
        "networkid": nid,
        "protocol": rule.protocol,
        "openfirewall": True,
        "cidrlist": cidrs,
    }


def _members(
    provider: CloudStackProvider, lbs: Sequence[tuple[Rule, str]], vm_ids: dict[str, str], workers: list[str]
) -> None:
    """LB members: the named nodes, or every worker (so a scale-up's workers join the rule)."""
    client = provider.client
    jobs = []
    for rule, lb_id in lbs:
        wanted = {vm_ids[n] for n in rule.nodes if vm_ids.get(n)} if rule.nodes else set(workers)
        current = {str(v["id"]) for v in client.list("listLoadBalancerRuleInstances", id=lb_id)}
        if wanted - current:
            jobs.append(
                client.submit(
                    "assignToLoadBalancerRule",
                    f"members of {rule.name}",
                    id=lb_id,
                    virtualmachineids=",".join(sorted(wanted - current)),
                )
            )
        if current - wanted:
            jobs.append(
                client.submit(
                    "removeFromLoadBalancerRule",
                    f"members of {rule.name}",
                    id=lb_id,
                    virtualmachineids=",".join(sorted(current - wanted)),
                )
            )
    client.wait(jobs, "load balancer members")
