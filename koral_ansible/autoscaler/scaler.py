"""The ``Scaler`` protocol: what the externalgrpc server needs from koral to autoscale a cluster.

One node group per cluster: the cluster's workers, group id = cluster name. The server
(:mod:`koral_ansible.autoscaler.server`) turns these calls and errors into gRPC; it serializes
the mutating calls per cluster, so an implementation sees at most one of ``increase``,
``delete_nodes`` and ``decrease_target`` at a time for a given cluster (reads may run alongside).

Errors an implementation raises, and the gRPC status the server answers with:

=========================================  ==========================
:class:`GroupNotFound`                     NOT_FOUND
:class:`BadRequest`                        INVALID_ARGUMENT
:class:`SizeLimitError`                    FAILED_PRECONDITION
``koral_ansible.errors.LockedError``       ABORTED (retry later)
``koral_ansible.errors.InputError``        INVALID_ARGUMENT
``koral_ansible.errors.OperationError``    INTERNAL
anything else                              UNKNOWN
=========================================  ==========================
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, Protocol, runtime_checkable


class InstanceState(IntEnum):
    """cluster-autoscaler's instance states (the protocol's ``InstanceStatus.InstanceState``)."""

    UNSPECIFIED = 0
    RUNNING = 1
    CREATING = 2
    DELETING = 3


class GroupSize(NamedTuple):
    """A node group's bounds and its current target size (worker count)."""

    min_size: int
    max_size: int
    target: int


class GroupNode(NamedTuple):
    """One instance of a node group.

    ``provider_id`` is what the Kubernetes Node carries in ``spec.providerID``: cluster-autoscaler
    matches instances to registered nodes by it. ``error`` non-empty marks a failed instance
    (reported with an error class, so the autoscaler deletes it and backs off).
    """

    provider_id: str
    name: str
    state: InstanceState
    error: str = ""


class ScalerError(Exception):
    """Base of the errors a Scaler raises on purpose (the message goes to the client)."""


class GroupNotFound(ScalerError):
    """No such node group: unknown cluster, or autoscaling is not enabled for it."""


class BadRequest(ScalerError):
    """The request is wrong whatever the state (non-positive delta, node not in the group)."""


class SizeLimitError(ScalerError):
    """The request would take the group past its max or below its min (or delete nodes)."""


@runtime_checkable
class Scaler(Protocol):
    """koral's side of cluster-autoscaler's node group calls."""

    def groups(self) -> list[str]:
        """Names of the clusters (node groups) this scaler serves right now."""
        ...

    def node_group(self, cluster: str) -> GroupSize:
        """(min, max, target) of the cluster's worker group; GroupNotFound if not served."""
        ...

    def nodes(self, cluster: str) -> list[GroupNode]:
        """The group's instances: (provider_id, name, state[, error])."""
        ...

    def node_for(self, provider_id_or_name: str) -> str | None:
        """The cluster whose worker group holds this node (by providerID or node name), else None."""
        ...

    def increase(self, cluster: str, delta: int) -> None:
        """Add ``delta`` (> 0) workers; returns when they are recorded. SizeLimitError past max."""
        ...

    def delete_nodes(self, cluster: str, names: list[str]) -> None:
        """Remove these workers (by node name). BadRequest if one is not in the group,
        SizeLimitError if the group would drop below its min; nothing is removed then."""
        ...

    def decrease_target(self, cluster: str, delta: int) -> None:
        """Lower the target by ``-delta`` (delta < 0) without deleting any existing node."""
        ...

    def refresh(self) -> None:
        """Called before every autoscaler loop: drop caches, re-read settings."""
        ...
