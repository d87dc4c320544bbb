"""One level-triggered pass for one local cluster: read the Services that exist, program the
host to exactly them, then write each Service's ``status.loadBalancer``.

The pass keeps no memory between runs: the table is rebuilt from the Services listed now (a gone
Service's rules go with the rebuild), so a restarted controller converges to the same rules.
The address is written only after the host serves it; a Service koral does not serve (another
loadBalancerClass excepted) has its koral address taken away, as the cloud-provider service
controller does after ``EnsureLoadBalancerDeleted`` (kubernetes/cloud-provider
``controllers/service/controller.go``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from koral_ansible.errors import OperationError
from koral_ansible.loadbalancer import health, hostnft, kubeapi, rules
from koral_ansible.loadbalancer import record as lb_record
from koral_ansible.loadbalancer.services import backends, lb_service
from koral_ansible.operations.context import Env
from koral_ansible.rules import records as user_rules
from koral_ansible.rules.model import LB, PORT_FORWARD
from koral_ansible.rules.reserved import reserved_ports
from koral_ansible.spec import max_cluster_size
from koral_ansible.state import ClusterRecord, ClusterState

SAVED_RULES = "lb-nftables.conf"


@dataclass
class Result:
    cluster: str
    served: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    host_changed: bool = False
    status_written: list[str] = field(default_factory=list)
    health: dict[health.Target, bool] = field(default_factory=dict)  # the Local Services' probes


# No API to ask (stopped) or going away (the delete removes the table; a pass must not re-create it).
SKIPPED_STATES = frozenset(
    {ClusterState.STOPPING, ClusterState.STOPPED, ClusterState.DESTROYING, ClusterState.DESTROYED}
)


def local_clusters(env: Env) -> list[ClusterRecord]:
    """Local clusters with a public address and an admin kubeconfig, not stopped and not being deleted
    (the ones there is anything to do for; a stopped cluster keeps its rules)."""
    return [
        c
        for c in env.store.list_clusters()
        if c.provider == "local"
        and c.state not in SKIPPED_STATES
        and c.endpoint.get("public_ip")
        and env.paths.kubeconfig(c.name).is_file()
    ]


def reserved_tcp_ports(env: Env, record: ClusterRecord) -> set[int]:
    """Ports a Service cannot take on the public address: koral's own (the API and the SSH forwards a
    cluster can grow to, from koral_ansible.rules.reserved, the one home of them) and the public
    ports of the user's TCP port-forward and load-balancer rules (``koral-play port-forward|lb``)."""
    out: set[int] = set()
    for r in reserved_ports(record, max_cluster_size()):
        out.update(range(r.start, r.end + 1))
    for rule in user_rules.load(env.store, record.name):
        if rule.kind in (PORT_FORWARD, LB) and rule.protocol == "tcp":
            out.update(range(rule.start_port, rule.end_port + 1))
    return out


def _current_lb(obj: dict[str, Any]) -> dict[str, Any]:
    lb = (obj.get("status") or {}).get("loadBalancer") or {}
    return {"ingress": lb["ingress"]} if lb.get("ingress") else {}


def reconcile(
    env: Env, cluster: str, api: kubeapi.KubeApi | None = None, prober: health.Prober = health.probe_all
) -> Result:
    record = env.store.get_cluster(cluster)
    if record.provider != "local":
        raise OperationError(f"cluster {cluster} is not a local cluster (provider {record.provider})")
    public_ip = IPv4Address(str(record.endpoint["public_ip"]))
    if api is None:
        kubectl = kubeapi.find_kubectl(env.paths.home, record.spec.kubernetes_version)
        api = kubeapi.KubeApi(kubectl, env.paths.kubeconfig(cluster))
    objects = api.services()
    wanted = [s for s in (lb_service(o) for o in objects) if s is not None]
    nodes = backends(api.nodes())
    probes = prober(rules.health_targets(nodes, wanted))
    plan = rules.plan(public_ip, nodes, wanted, reserved_tcp_ports(env, record), probes)
    result = Result(cluster, [s.key for s in plan.served], dict(plan.refused), health=dict(probes))
    saved = env.paths.local_dir(cluster) / SAVED_RULES
    result.host_changed = hostnft.apply(cluster, rules.render(cluster, plan), saved)
    served = {s.key: s for s in plan.served}
    for obj in objects:
        if ((obj.get("spec") or {}).get("loadBalancerClass")) is not None:
            continue
        md = obj.get("metadata") or {}
        key = f"{md.get('namespace')}/{md.get('name')}"
        current = _current_lb(obj)
        if key in served:
            desired: dict[str, Any] = {"ingress": plan.ingress(served[key])}
        elif any(i.get("ip") == str(public_ip) for i in current.get("ingress", [])):
            desired = {}
        else:
            continue
        if desired != current:
            api.patch_status(str(md.get("namespace")), str(md.get("name")), desired)
            result.status_written.append(key)
    lb_record.update(env.paths, env.store, cluster, lb_record.rows(plan, wanted))
    return result


def remove(env: Env, cluster: str) -> None:
    """Take the cluster's load-balancer table off the host and its record away (``delete`` runs
    this; idempotent)."""
    hostnft.delete(cluster, env.paths.local_dir(cluster) / SAVED_RULES)
    lb_record.forget(env.paths, cluster)
