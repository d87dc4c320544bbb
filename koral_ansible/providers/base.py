"""The provider interface: where nodes, networks, port forwards and the API load balancer come from.

A provider plays "the cloud". It creates machines and the network plumbing around them,
records every resource in the state store *as it goes* (so a failed or killed run can be
resumed or cleaned up), and never runs Ansible itself: the operations layer does that
over the inventory built from the nodes a provider recorded.

Koral's layout, which every provider follows:
- nodes are ordered control plane first; node ``idx`` i is reachable by SSH on
  ``public_ip:2222+i`` (port forward to the node's port 22);
- the API is served on ``public_ip:6443`` by a load balancer in front of every control node;
- the firewall admits only ``spec.allowed_cidrs`` to 2222.. and 6443.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from koral_ansible.paths import Paths
from koral_ansible.spec import ClusterSpec
from koral_ansible.state import NodeRecord, StateStore

SSH_BASE_PORT = 2222
API_PORT = 6443


def node_name(cluster: str, role: str, number: int) -> str:
    """``<cluster>-control-<n>`` / ``<cluster>-node-<n>`` (n from 1)."""
    return f"{cluster}-{'control' if role == 'control' else 'node'}-{number}"


@dataclass
class Endpoint:
    """How the outside world and the nodes reach a cluster."""

    public_ip: str  # where 2222.. and 6443 are published (port forwards + LB)
    api_port: int = API_PORT
    # Address:port the nodes use as kubeadm controlPlaneEndpoint (the LB as seen from inside).
    control_plane_endpoint: str = ""
    ssh_user: str = "root"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "public_ip": self.public_ip,
            "api_port": self.api_port,
            "control_plane_endpoint": self.control_plane_endpoint,
            "ssh_user": self.ssh_user,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        return cls(
            public_ip=data.get("public_ip", ""),
            api_port=int(data.get("api_port", API_PORT)),
            control_plane_endpoint=data.get("control_plane_endpoint", ""),
            ssh_user=data.get("ssh_user", "root"),
            extra=dict(data.get("extra", {})),
        )


@dataclass
class ProviderContext:
    """What a provider may use: the state store, paths, the cluster's SSH public key, progress."""

    store: StateStore
    paths: Paths
    cluster: str
    ssh_public_key: str
    report: Callable[[str], None] = lambda _msg: None


class Provider(ABC):
    """Base class of every provider. Every method is idempotent and resumable."""

    name: ClassVar[str]

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def validate(self, spec: ClusterSpec) -> None:
        """Check the spec against what this provider can do; raise InputError before any change."""

    def check_host(self) -> None:
        """Refuse (a KoralError with exit 2) when this machine cannot run the provider; called by
        ``create`` after :meth:`validate`, before anything is created or recorded."""
        return None

    @abstractmethod
    def provision(self, spec: ClusterSpec) -> Endpoint:
        """Create (or finish creating) network, nodes, port forwards, firewall and LB.

        Records each resource and each node in the state store as soon as it exists,
        control-plane nodes first (idx 0..control_nodes-1) then workers.
        Returns the cluster endpoint (also stored with ``store.set_endpoint``).
        """

    @abstractmethod
    def add_workers(self, spec: ClusterSpec, count: int) -> list[NodeRecord]:
        """Create ``count`` more worker nodes and publish their SSH ports; return them."""

    @abstractmethod
    def remove_node(self, spec: ClusterSpec, node: NodeRecord) -> None:
        """Destroy one node and rebuild port forwards, firewall and LB without it."""

    @abstractmethod
    def start(self, spec: ClusterSpec) -> None:
        """Start every node, control plane first, and the cluster's network plumbing."""

    @abstractmethod
    def stop(self, spec: ClusterSpec) -> None:
        """Stop every node, workers first, control plane last."""

    @abstractmethod
    def destroy(self, spec: ClusterSpec) -> None:
        """Remove every recorded resource of the cluster. Safe to run twice."""

    @abstractmethod
    def node_running(self, node: NodeRecord) -> bool:
        """Whether the node's machine is up (used by recover and health checks)."""
