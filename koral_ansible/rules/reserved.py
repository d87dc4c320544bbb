"""The public ports koral keeps for itself on a cluster's public IP.

koral publishes the API on 6443 and node ``idx`` i's SSH on ``2222 + i`` (providers/base.py); a
scale-up takes the next indexes (providers/cloudstack/plan.py ``more_workers``: after the highest
index in use), up to the cluster's max size. All of them are TCP.
"""

from __future__ import annotations

from dataclasses import dataclass

from koral_ansible.providers.base import API_PORT, SSH_BASE_PORT
from koral_ansible.providers.cloudstack.plan import Slot, more_workers
from koral_ansible.state import ClusterRecord

RESERVED_PROTOCOL = "tcp"


@dataclass(frozen=True)
class Reserved:
    start: int
    end: int
    what: str


def reserved_ports(record: ClusterRecord, max_size: int) -> list[Reserved]:
    """6443 (unless an external LB serves the API) and 2222 .. the last SSH port a scale-up to
    ``max_size`` workers would take."""
    slots = [Slot(n.name, n.role, n.idx) for n in record.nodes]
    grow = max(0, max_size - len(record.workers))
    future = more_workers(record.name, slots, grow)
    last = max((s.ssh_port for s in [*slots, *future]), default=SSH_BASE_PORT)
    out = [Reserved(SSH_BASE_PORT, max(last, SSH_BASE_PORT), "koral's SSH port forwards (and a scale-up's)")]
    if not record.spec.external_lb_ip:
        out.append(Reserved(API_PORT, API_PORT, "koral's API load balancer"))
    return out
