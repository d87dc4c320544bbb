"""``StateScaler``: the Scaler over koral's state store, with pluggable scale operations.

Sizes come from the state store (target = the cluster's worker records, whatever their state)
and from the cluster's autoscaling record (:mod:`koral_ansible.autoscaler.settings`). Changes
go through two callables so the server runs the same operations as the CLI:

- ``scale_to(cluster, size)``: bring the cluster to ``size`` workers (koral-play scale);
- ``remove_node(cluster, node)``: remove one named worker (koral-play remove-node).

Both are expected to take the cluster's file lock themselves (``StateStore.lock``), record
events and update the node records; a ``LockedError`` they raise reaches the autoscaler as
ABORTED. The StateStore's SQLite connection is per thread (gRPC handlers run on a pool).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from koral_ansible.autoscaler.scaler import (
    BadRequest,
    GroupNode,
    GroupNotFound,
    GroupSize,
    InstanceState,
    ScalerError,
    SizeLimitError,
)
from koral_ansible.autoscaler.settings import load_settings
from koral_ansible.errors import OperationError
from koral_ansible.paths import Paths
from koral_ansible.provider_id import external_cloud_provider, is_node, kubelet_provider_id
from koral_ansible.state import NodeRecord, StateStore

ScaleTo = Callable[[str, int], None]
RemoveNode = Callable[[str, str], None]


_STATES = {
    "running": InstanceState.RUNNING,
    "ready": InstanceState.RUNNING,
    "stopped": InstanceState.RUNNING,
    "creating": InstanceState.CREATING,
    "starting": InstanceState.CREATING,
    "provisioning": InstanceState.CREATING,
    "joining": InstanceState.CREATING,
    "deleting": InstanceState.DELETING,
    "removing": InstanceState.DELETING,
    "destroying": InstanceState.DELETING,
    "stopping": InstanceState.RUNNING,
}
_FAILED = {"error", "failed", "alert"}


def instance_state(node_state: str) -> tuple[InstanceState, str]:
    """koral node state -> (instance state, error text); failed nodes count as failed creations."""
    key = node_state.lower()
    if key in _FAILED:
        return InstanceState.CREATING, f"node is in state {node_state}"
    return _STATES.get(key, InstanceState.UNSPECIFIED), ""


class StateScaler:
    """Scaler for the clusters in one koral home."""

    def __init__(
        self,
        paths: Paths,
        scale_to: ScaleTo,
        remove_node: RemoveNode,
        clusters: Sequence[str] | None = None,
    ) -> None:
        self.paths = paths
        self.scale_to = scale_to
        self.remove_node = remove_node
        self.clusters = list(clusters) if clusters is not None else None
        self._local = threading.local()

    # ---- plumbing ------------------------------------------------------------------------------
    def store(self) -> StateStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = StateStore(self.paths)
            self._local.store = store
        assert isinstance(store, StateStore)
        return store

    def close(self) -> None:
        """Close this thread's state store connection."""
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None

    def _served(self, cluster: str) -> bool:
        return self.clusters is None or cluster in self.clusters

    def _event(self, cluster: str, phase: str, result: str, message: str) -> None:
        """Best effort: the autoscaler's requests in the cluster's event log (operation "autoscaler")."""
        with contextlib.suppress(OperationError):
            self.store().event(cluster, "autoscaler", phase, result, message)

    def _refuse(self, cluster: str, phase: str, exc: ScalerError) -> NoReturn:
        self._event(cluster, phase, "Refused", str(exc))
        raise exc

    def _workers(self, cluster: str) -> list[NodeRecord]:
        return [n for n in self.store().nodes(cluster) if not n.is_control]

    # ---- Scaler --------------------------------------------------------------------------------
    def groups(self) -> list[str]:
        names = self.clusters if self.clusters is not None else self.store().cluster_names()
        return [n for n in names if load_settings(self.paths, n).enabled]

    def node_group(self, cluster: str) -> GroupSize:
        if not self._served(cluster) or self.store().find_cluster(cluster) is None:
            raise GroupNotFound(f"no node group {cluster!r}: this server does not manage that cluster")
        s = load_settings(self.paths, cluster)
        if not s.enabled:
            raise GroupNotFound(f"no node group {cluster!r}: autoscaling is disabled for that cluster")
        return GroupSize(s.min_size, s.max_size, len(self._workers(cluster)))

    def nodes(self, cluster: str) -> list[GroupNode]:
        self.node_group(cluster)
        # The instance ids are the Nodes' spec.providerID: the form their kubelets got.
        external = external_cloud_provider(self.store().get_cluster(cluster).endpoint)
        out = []
        for n in self._workers(cluster):
            state, error = instance_state(n.state)
            out.append(GroupNode(kubelet_provider_id(cluster, n, external), n.name, state, error))
        return out

    def node_for(self, provider_id_or_name: str) -> str | None:
        if not provider_id_or_name:
            return None
        for cluster in self.groups():
            for n in self._workers(cluster):
                if is_node(provider_id_or_name, cluster, n):  # either providerID form, or the name
                    return cluster
        return None

    def increase(self, cluster: str, delta: int) -> None:
        if delta <= 0:
            raise BadRequest(f"delta must be positive (got {delta})")
        size = self.node_group(cluster)
        new = size.target + delta
        if new > size.max_size:
            self._refuse(
                cluster,
                "increase",
                SizeLimitError(
                    f"increasing {cluster} by {delta} would make {new} workers, "
                    f"above its max of {size.max_size}"
                ),
            )
        self._event(cluster, "increase", "Requested", f"+{delta}: {size.target} -> {new} workers")
        self.scale_to(cluster, new)

    def delete_nodes(self, cluster: str, names: list[str]) -> None:
        size = self.node_group(cluster)
        wanted = list(dict.fromkeys(names))
        if not wanted:
            raise BadRequest("no nodes to delete")
        workers = {n.name for n in self._workers(cluster)}
        strangers = [n for n in wanted if n not in workers]
        if strangers:
            raise BadRequest(f"not workers of node group {cluster}: {', '.join(strangers)}")
        left = size.target - len(wanted)
        if left < size.min_size:
            self._refuse(
                cluster,
                "delete",
                SizeLimitError(
                    f"deleting {len(wanted)} node(s) would leave {left} workers in {cluster}, "
                    f"below its min of {size.min_size}"
                ),
            )
        self._event(cluster, "delete", "Requested", f"remove {', '.join(wanted)}: {left} workers left")
        for name in wanted:
            self.remove_node(cluster, name)

    def decrease_target(self, cluster: str, delta: int) -> None:
        if delta >= 0:
            raise BadRequest(f"delta must be negative (got {delta})")
        size = self.node_group(cluster)
        existing = len(self.nodes(cluster))
        if size.target + delta < existing:
            raise SizeLimitError(
                f"decreasing the target of {cluster} to {size.target + delta} would delete existing "
                f"nodes ({existing} recorded); nodes are removed with NodeGroupDeleteNodes"
            )
        # target == recorded workers here: there is never an unfulfilled request to cancel.

    def refresh(self) -> None:
        """Nothing is cached: settings and nodes are read on every call."""
