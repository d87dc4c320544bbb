"""Read a cluster's nodes back from the cloud (by the ``koral-cluster`` tag), for the inventory plugin.

The result is the same inventory shape as :func:`koral_ansible.inventory.build_inventory`
(that module stays the one home of the shape): node positions come from the port forwards
(public port 2222+i -> VM), roles from the ``koral-role`` tag, the public IP from the
network's source NAT address.
"""

from __future__ import annotations

from typing import Any

from koral_ansible.errors import NotFoundError
from koral_ansible.inventory import build_inventory
from koral_ansible.providers.base import API_PORT, SSH_BASE_PORT, Endpoint
from koral_ansible.providers.cloudstack import plan
from koral_ansible.providers.cloudstack.client import CloudClient
from koral_ansible.spec import ClusterSpec, validate_spec
from koral_ansible.state import NodeRecord


def _tag(obj: dict[str, Any], key: str) -> str | None:
    return next((str(t.get("value")) for t in obj.get("tags") or [] if t.get("key") == key), None)


def discover_nodes(client: CloudClient, cluster: str) -> tuple[list[NodeRecord], Endpoint, dict[str, Any]]:
    """The cluster's nodes, endpoint and one VM (for zone/offering names), read from the cloud."""
    tags = [{"key": plan.TAG_CLUSTER, "value": cluster}]
    nets = client.list("listNetworks", tags=tags)
    vms = client.list("listVirtualMachines", tags=tags)
    if not vms:
        raise NotFoundError("cluster", f"no VMs tagged {plan.TAG_CLUSTER}={cluster} in this cloud")
    net_ids = {str(n["id"]) for n in nets} or {str((v.get("nic") or [{}])[0].get("networkid")) for v in vms}
    public_ip = ""
    ports: dict[str, int] = {}
    lb = False
    for nid in sorted(net_ids):
        for ip in client.list("listPublicIpAddresses", associatednetworkid=nid, issourcenat=True):
            public_ip = public_ip or str(ip["ipaddress"])
            for rule in client.list("listPortForwardingRules", ipaddressid=ip["id"]):
                if str(rule.get("privateport")) == "22":
                    ports[str(rule["virtualmachineid"])] = int(rule["publicport"])
            lb = lb or any(
                r.get("name") == plan.lb_name(cluster)
                for r in client.list("listLoadBalancerRules", publicipid=ip["id"])
            )
    nodes = []
    for vm in vms:
        role = _tag(vm, plan.TAG_ROLE) or ("control" if "-control-" in str(vm["name"]) else "worker")
        port = ports.get(str(vm["id"]))
        idx = port - SSH_BASE_PORT if port else -1
        nic = (vm.get("nic") or [{}])[0]
        nodes.append(
            NodeRecord(
                name=str(vm["name"]),
                role=role,
                idx=idx,
                private_ip=str(nic.get("ipaddress", "")),
                ssh_host=public_ip,
                ssh_port=port or 22,
                state=str(vm.get("state", "")),
                provider_id=str(vm["id"]),
            )
        )
    endpoint = Endpoint(
        public_ip=public_ip, api_port=API_PORT, control_plane_endpoint=f"{public_ip}:{API_PORT}" if lb else ""
    )
    return nodes, endpoint, vms[0]


def cloud_inventory(
    client: CloudClient,
    cluster: str,
    spec: ClusterSpec | None = None,
    connection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The inventory of ``cluster`` from the cloud alone (spec defaults when no spec is known)."""
    nodes, endpoint, sample = discover_nodes(client, cluster)
    if spec is None:
        spec = validate_spec(
            {
                "name": cluster,
                "provider": "cloudstack",
                "zone": sample.get("zonename") or "zone",
                "compute_offering": sample.get("serviceofferingname") or "unknown",
                "size": max(1, sum(1 for n in nodes if not n.is_control)),
            },
            max_size=10**6,
        )
    return build_inventory(spec, nodes, endpoint, connection)
