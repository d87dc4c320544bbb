"""Build the Ansible inventory of a cluster from its recorded nodes and endpoint.

One home for the inventory shape, used by the runner (written to a file per run), by
``koral-play inventory`` and by the ``koral`` inventory plugin. Groups follow kubespray so
users can bring their own inventories: ``kube_control_plane``, ``etcd`` (stacked on the
control plane), ``kube_node`` and ``k8s_cluster`` (their union).

Secrets are never part of the inventory: they reach plays as runner passwords / extra vars
marked no_log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from koral_ansible import k8s_releases, versions
from koral_ansible.paths import Paths, write_private
from koral_ansible.provider_id import external_cloud_provider, kubelet_provider_id
from koral_ansible.providers.base import Endpoint
from koral_ansible.spec import ClusterSpec
from koral_ansible.state import ClusterRecord, NodeRecord


def release_vars(kubernetes_version: str) -> dict[str, Any]:
    """Per-release facts the roles need for ``kubernetes_version`` (from k8s_releases)."""
    v = versions.Version.parse(kubernetes_version)
    out: dict[str, Any] = {"koral_kubeadm_api_version": versions.kubeadm_api_version(v)}
    if v.major == 1 and v.minor in k8s_releases.RELEASES:
        # Whether this release's kubelet refuses a cgroup v1 host unless failCgroupV1: false.
        out["koral_kubelet_fails_cgroup_v1"] = k8s_releases.RELEASES[v.minor].fail_cgroup_v1_default
    # The oldest containerd a node may run for this release ('' = any; koral's rule, k8s_releases).
    minimum = k8s_releases.containerd_minimum(v.minor) if v.major == 1 else None
    out["koral_containerd_minimum"] = minimum or ""
    # The pause tag is not passed here: the container_runtime role reads it from the bundle's
    # manifest (kubeadm's image list), its one source; create passes it only without a bundle.
    return out


def cluster_vars(spec: ClusterSpec, endpoint: Endpoint) -> dict[str, Any]:
    """Cluster-wide variables every play may use (prefix ``koral_``)."""
    reg = spec.registry
    return {
        "koral_cluster_name": spec.name,
        "koral_provider": spec.provider,
        "koral_kubernetes_version": spec.kubernetes_version,
        **release_vars(spec.kubernetes_version),
        "koral_pod_cidr": spec.pod_cidr,
        "koral_service_cidr": spec.service_cidr,
        "koral_cni": spec.cni,
        "koral_public_ip": endpoint.public_ip,
        "koral_api_port": endpoint.api_port,
        "koral_control_plane_endpoint": endpoint.control_plane_endpoint
        or f"{endpoint.public_ip}:{endpoint.api_port}",
        "koral_allowed_cidrs": list(spec.allowed_cidrs),
        # The nodes' network: cluster-internal firewall rules allow it as a whole, so adding a
        # node never needs a firewall change on the others (scale touches only new nodes).
        "koral_node_cidr": str(endpoint.extra.get("subnet", "")),
        "koral_registry_url": reg.url if reg else "",
        "koral_registry_username": (reg.username or "") if reg else "",
        "koral_registry_insecure_skip_verify": reg.insecure_skip_verify if reg else False,
        "koral_bundle": spec.bundle or "",
        "koral_allow_cgroup_v1": spec.allow_cgroup_v1,
    }


def host_vars(node: NodeRecord, endpoint: Endpoint) -> dict[str, Any]:
    return {
        "ansible_host": node.ssh_host or endpoint.public_ip,
        "ansible_port": node.ssh_port,
        "ansible_user": endpoint.ssh_user,
        "koral_node_ip": node.private_ip,
        "koral_node_index": node.idx,
        "koral_node_role": node.role,
    }


def build_inventory(
    spec: ClusterSpec,
    nodes: list[NodeRecord],
    endpoint: Endpoint,
    connection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The inventory as a YAML-ready dict (``all`` with children and vars)."""
    control = sorted((n for n in nodes if n.is_control), key=lambda n: n.idx)
    workers = sorted((n for n in nodes if not n.is_control), key=lambda n: n.idx)
    hosts = {n.name: host_vars(n, endpoint) for n in control + workers}
    external: dict[str, Any] = {}
    if external_cloud_provider(endpoint.to_dict()):
        # The cluster runs the CloudStack provider (cloud controller manager): kubelets with
        # --cloud-provider=external and the provider's providerID (koral_ansible.provider_id).
        external = {"kubeadm_cloud_provider": "external"}
        for n in control + workers:
            hosts[n.name]["kubeadm_provider_id"] = kubelet_provider_id(spec.name, n, True)
    return {
        "all": {
            "vars": {**cluster_vars(spec, endpoint), **external, **(connection or {})},
            "children": {
                "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
                "kube_control_plane": {"hosts": {n.name: hosts[n.name] for n in control}},
                "etcd": {"hosts": {n.name: {} for n in control}},
                "kube_node": {"hosts": {n.name: hosts[n.name] for n in workers}},
            },
        }
    }


def ssh_connection_vars(paths: Paths, cluster: str) -> dict[str, Any]:
    """Per-cluster key and known_hosts: host keys are recorded on first contact, checked after."""
    return {
        "ansible_ssh_private_key_file": str(paths.ssh_key(cluster)),
        "ansible_ssh_common_args": (
            f"-o UserKnownHostsFile={paths.known_hosts(cluster)} -o StrictHostKeyChecking=accept-new"
        ),
    }


def record_inventory(record: ClusterRecord, paths: Paths) -> dict[str, Any]:
    return build_inventory(
        record.spec,
        record.nodes,
        Endpoint.from_dict(record.endpoint),
        ssh_connection_vars(paths, record.name),
    )


def write_inventory(data: dict[str, Any], path: Path) -> Path:
    return write_private(path, yaml.safe_dump(data, sort_keys=False))
