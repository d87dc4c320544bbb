"""The Kubernetes ``spec.providerID`` of koral's nodes: the one home of its two forms and their
parser.

- ``koral://<cluster>/<node>``: what koral's kubelets get (``--provider-id``) by default and what
  koral's cluster-autoscaler service (externalgrpc) names its instances.
- ``external-cloudstack://<VM uuid>``: on a CloudStack cluster running the CloudStack Kubernetes
  Provider (the cloud controller manager), the form the provider writes and reads:
  apache/cloudstack-kubernetes-provider v1.2.0 ``cloudstack_instances.go``
  (``getProviderIDFromInstanceID``: ``fmt.Sprintf("%s://%s", cs.ProviderName(), instanceID)``,
  ``getInstanceIDFromProviderID``: the part after ``://``, or the whole ID without one) and
  ``cloudstack.go`` (``ProviderName = "external-cloudstack"``). The provider's development line
  (``cloudstack/util.go`` ``instanceIDFromProviderID``) reads ``external-cloudstack://<region>/<id>``
  and ``external-cloudstack:///<id>``; the parser accepts those as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from koral_ansible.state import NodeRecord

KORAL_SCHEME = "koral"
CLOUDSTACK_SCHEME = "external-cloudstack"

# Key in the recorded endpoint's ``extra``: create sets it when the cluster runs the CloudStack
# provider, before the first play, so every later play, inventory and the autoscaler agree.
EXTERNAL_CLOUD_PROVIDER = "external_cloud_provider"


def external_cloud_provider(endpoint: dict[str, Any]) -> bool:
    """Whether the cluster (its recorded endpoint) runs an external cloud controller manager."""
    return bool(dict(endpoint.get("extra") or {}).get(EXTERNAL_CLOUD_PROVIDER))


def external_cloud_provider_mark(endpoint: dict[str, Any]) -> dict[str, bool]:
    """The ``extra`` entry to carry into a re-published endpoint ({} when not marked)."""
    return {EXTERNAL_CLOUD_PROVIDER: True} if external_cloud_provider(endpoint) else {}


def kube_provider_id(cluster: str, node: str) -> str:
    """koral's own form: ``koral://<cluster>/<node>``."""
    return f"{KORAL_SCHEME}://{cluster}/{node}"


def cloudstack_provider_id(vm_id: str) -> str:
    """The CloudStack provider's form for a VM: ``external-cloudstack://<VM uuid>``."""
    return f"{CLOUDSTACK_SCHEME}://{vm_id}"


def kubelet_provider_id(cluster: str, node: NodeRecord, external_cloud_provider: bool) -> str:
    """The ``--provider-id`` a node's kubelet gets: the provider's form (the VM's uuid, recorded as
    the node's ``provider_id``) when the cluster runs the CloudStack provider, else koral's."""
    if external_cloud_provider and node.provider_id:
        return cloudstack_provider_id(node.provider_id)
    return kube_provider_id(cluster, node.name)


@dataclass(frozen=True)
class ProviderRef:
    """A parsed providerID: ``koral`` (cluster + node) or ``external-cloudstack`` (instance)."""

    scheme: str
    cluster: str = ""
    node: str = ""
    instance: str = ""


def parse_provider_id(value: str) -> ProviderRef | None:
    """Either form, else None (another cloud's ID, or not an ID)."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        return None
    if scheme == KORAL_SCHEME:
        cluster, slash, node = rest.partition("/")
        return ProviderRef(scheme, cluster=cluster, node=node) if slash and cluster and node else None
    if scheme == CLOUDSTACK_SCHEME:
        instance = rest.rsplit("/", 1)[-1]  # <id>, /<id> or <region>/<id>
        return ProviderRef(scheme, instance=instance) if instance else None
    return None


def is_node(value: str, cluster: str, node: NodeRecord) -> bool:
    """Whether ``value`` (a Node's providerID or name) names ``node`` of ``cluster``, in any form."""
    if value == node.name:
        return True
    ref = parse_provider_id(value)
    if ref is None:
        return False
    if ref.scheme == KORAL_SCHEME:
        return (ref.cluster, ref.node) == (cluster, node.name)
    return bool(node.provider_id) and ref.instance == node.provider_id
