"""Read-only views: list, show, kubeconfig, events."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from koral_ansible.autoscaler.settings import load_settings
from koral_ansible.dashboard import settings as dashboard_settings
from koral_ansible.errors import OperationError
from koral_ansible.loadbalancer import record as lb_record
from koral_ansible.operations.context import Env
from koral_ansible.rules import records as rule_records
from koral_ansible.state import ClusterRecord, NodeRecord


def summary(record: ClusterRecord) -> dict[str, Any]:
    """One row of ``list``."""
    spec = record.spec
    return {
        "name": record.name,
        "state": record.state.value,
        "provider": record.provider,
        "zone": spec.zone,
        "version": spec.kubernetes_version,
        "control_nodes": spec.control_nodes,
        "size": spec.size,
        "endpoint": _api_url(record),
        "created": record.created,
    }


def summary_wide(record: ClusterRecord) -> dict[str, Any]:
    """One row of ``list -o wide``: the summary plus the network and the description."""
    spec = record.spec
    return {
        **summary(record),
        "network": _network(record),
        "cni": spec.cni,
        "pod_cidr": spec.pod_cidr,
        "service_cidr": spec.service_cidr,
        "description": spec.description,
    }


def node_row(node: NodeRecord, wide: bool = False) -> dict[str, Any]:
    """One node of ``show`` (wide: plus its index and the provider's machine id)."""
    row: dict[str, Any] = {
        "name": node.name,
        "role": node.role,
        "state": node.state,
        "ip": node.private_ip,
        "ssh": f"{node.ssh_host}:{node.ssh_port}",
    }
    if wide:
        row.update(index=node.idx, provider_id=node.provider_id)
    return row


def _network(record: ClusterRecord) -> str:
    return str(record.spec.network or record.endpoint.get("extra", {}).get("network", ""))


def _api_url(record: ClusterRecord) -> str:
    ep = record.endpoint
    return f"https://{ep['public_ip']}:{ep.get('api_port', 6443)}" if ep.get("public_ip") else ""


def detail(env: Env, record: ClusterRecord) -> dict[str, Any]:
    """Mold's detail fields plus the node list (``show``)."""
    spec = record.spec
    last = env.store.last_operation(record.name)
    scaling = load_settings(env.paths, record.name)
    return {
        "name": record.name,
        "description": spec.description,
        "state": record.state.value,
        "provider": record.provider,
        "zone": spec.zone,
        "version": spec.kubernetes_version,
        "autoscaling": scaling.enabled,
        "autoscaling_min": scaling.min_size if scaling.enabled else None,
        "autoscaling_max": scaling.max_size if scaling.enabled else None,
        "dashboard": dashboard_settings.load_settings(env.paths, record.name).enabled,
        "size": spec.size,
        "control_nodes": spec.control_nodes,
        "ha": spec.ha,
        "compute_offering": spec.compute_offering,
        "cpu": spec.cpu,
        "memory": spec.memory,
        "root_disk_size": spec.root_disk_size,
        "node_os": spec.node_os if record.provider == "local" else None,
        "network": _network(record),
        "cni": spec.cni,
        "allow_cgroup_v1": spec.allow_cgroup_v1,
        "pod_cidr": spec.pod_cidr,
        "service_cidr": spec.service_cidr,
        "allowed_cidrs": list(spec.allowed_cidrs),
        "registry": spec.registry.url if spec.registry else None,
        "endpoint": _api_url(record),
        "public_ip": record.endpoint.get("public_ip", ""),
        "created": record.created,
        "last_operation": (
            {"operation": last.operation, "status": last.status, "phase": last.phase} if last else None
        ),
        "nodes": [node_row(n) for n in record.nodes],
        "network_rules": [r.row() for r in rule_records.load(env.store, record.name)],
        # the LoadBalancer Services the controller last served or refused (local clusters)
        "load_balancers": lb_record.load(env.paths, record.name) if record.provider == "local" else [],
    }


def kubeconfig_path(env: Env, name: str) -> Path:
    record = env.store.get_cluster(name)
    path = env.paths.kubeconfig(record.name)
    if not path.exists():
        raise OperationError(
            f"cluster {name!r} has no kubeconfig yet (state {record.state.value}); "
            "it is written when create finishes"
        )
    return path


def events(env: Env, name: str) -> list[dict[str, Any]]:
    evs = env.store.events(name)
    if not evs:
        env.store.get_cluster(name)  # unknown names are bad input
    return [asdict(e) for e in evs]
