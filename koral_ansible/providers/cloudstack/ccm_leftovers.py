"""What the cluster's cloud controller manager (the CloudStack Kubernetes Provider) left in the
cluster's networks, removed by ``delete`` before the network goes.

The provider makes, per Service of type LoadBalancer, load-balancer rules named
``<LB>-<protocol>-<port>`` with ``LB`` = ``"a"`` + the Service UID without dashes cut to 32
characters (k8s.io/cloud-provider ``DefaultLoadBalancerName``; apache/cloudstack-kubernetes-provider
``cloudstack_loadbalancer.go`` ``EnsureLoadBalancer``, protocols ``tcp``, ``udp``, ``tcp-proxy``
from ``protocol.go``), one firewall rule per port on the rule's public IP (``updateFirewallRule``),
and may associate a public IP for the Service (``associatePublicIPAddress``). If the cluster is
deleted while such Services exist, nothing runs the provider's ``EnsureLoadBalancerDeleted``.

CloudStack's own ``deleteNetwork`` revokes the rules and releases the IPs of a network it deletes
(apache/cloudstack ``NetworkOrchestrator.destroyNetwork`` -> ``cleanupNetworkResources``:
``_lbMgr.removeAllLoadBalanacersForNetwork``, ``_firewallMgr.revokeAllFirewallRulesForNetwork``,
every IP of the network released), but a cluster placed in an existing network (``spec.network``)
never deletes that network: there the provider's rules and IPs would stay for good. So koral
removes them itself, in every network of the cluster, touching only what has the provider's
shape and is not koral's own record: rules named like the provider's, the firewall rules of
their port on their IP, and the IPs they used when no other rule is left on them (never a
source-NAT IP). Re-running finds nothing more to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from koral_ansible.providers.cloudstack.client import ApiCallError, CloudClient

# "a" + 31 hex digits (the UID without dashes, cut to 32 characters), "-", protocol, "-", port.
PROVIDER_RULE = re.compile(r"^a[0-9a-f]{31}-(tcp|udp|tcp-proxy)-(\d+)$")


def _port_rules(client: CloudClient, ip_id: str, protocol: str, port: int) -> list[dict[str, Any]]:
    fws = client.list("listFirewallRules", ipaddressid=ip_id, listall="true")
    return [
        r
        for r in fws
        if r.get("protocol") == protocol and int(r.get("startport", -1)) == port == int(r.get("endport", -1))
    ]


def _run(client: CloudClient, command: str, label: str, rid: str) -> None:
    try:
        client.run(command, label, id=rid)
    except ApiCallError as exc:
        if not exc.not_found:
            raise


def remove_ccm_leftovers(client: CloudClient, network_ids: Iterable[str], koral_ids: set[str]) -> int:
    """Remove the provider's rules (and their firewall rules and IPs) in ``network_ids``; nothing
    whose id is in ``koral_ids`` (what koral recorded itself). Returns how many objects went."""
    removed = 0
    for nid in network_ids:
        try:
            rules = client.list("listLoadBalancerRules", networkid=nid, listall="true")
        except ApiCallError as exc:
            if exc.not_found:
                continue
            raise
        ips: set[str] = set()
        for rule in rules:
            m = PROVIDER_RULE.match(str(rule.get("name", "")))
            if m is None or str(rule["id"]) in koral_ids:
                continue
            protocol = "tcp" if m.group(1) == "tcp-proxy" else m.group(1)
            ip_id = str(rule.get("publicipid", ""))
            for fw in _port_rules(client, ip_id, protocol, int(m.group(2))):
                if str(fw["id"]) not in koral_ids:
                    _run(client, "deleteFirewallRule", f"firewall rule {fw['id']}", str(fw["id"]))
                    removed += 1
            _run(client, "deleteLoadBalancerRule", f"load-balancer rule {rule['name']}", str(rule["id"]))
            removed += 1
            ips.add(ip_id)
        for ip_id in sorted(ips - koral_ids):
            found = client.list("listPublicIpAddresses", id=ip_id, listall="true")
            if not found or found[0].get("issourcenat"):
                continue
            left = client.list("listLoadBalancerRules", publicipid=ip_id, listall="true") + client.list(
                "listFirewallRules", ipaddressid=ip_id, listall="true"
            )
            if left:  # something else uses the address: not the provider's alone
                continue
            _run(client, "disassociateIpAddress", f"public IP {found[0].get('ipaddress', ip_id)}", ip_id)
            removed += 1
    return removed
