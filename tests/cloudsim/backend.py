"""Pluggable machine backend of the test cloud.

The simulator keeps the cloud's records (ids, states, IPs, rules); a backend makes the
machines real. :class:`MemoryBackend` only remembers them; a podman-backed implementation can
create SSH-reachable nodes and publish the port forwards and the load balancer on the host.
Backend methods run inside async jobs (outside the cloud's lock) and may take real time;
raising :class:`~tests.cloudsim.errors.ApiError` (or any exception) fails the job.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class MachineSpec:
    """What a deployVirtualMachine asks the backend for."""

    vm_id: str
    name: str
    private_ip: str
    network_id: str
    network_cidr: str
    gateway: str
    cpu: int
    memory_mb: int
    root_disk_gb: int
    userdata: str  # decoded user data ("" when none)
    ssh_public_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortForward:
    public_ip: str
    public_port: int
    private_ip: str
    private_port: int
    protocol: str


@dataclass(frozen=True)
class LoadBalancer:
    name: str
    public_ip: str
    public_port: int
    private_port: int
    algorithm: str
    protocol: str
    backends: tuple[str, ...]


@dataclass(frozen=True)
class FirewallRule:
    public_ip: str
    protocol: str
    start_port: int
    end_port: int
    cidrs: tuple[str, ...]


@dataclass(frozen=True)
class NetworkView:
    """Every published rule of the cloud, as a whole (backends reconcile to it)."""

    port_forwards: tuple[PortForward, ...] = ()
    load_balancers: tuple[LoadBalancer, ...] = ()
    firewall_rules: tuple[FirewallRule, ...] = ()


class MachineBackend(Protocol):
    def create(self, spec: MachineSpec) -> None: ...

    def start(self, vm_id: str) -> None: ...

    def stop(self, vm_id: str) -> None: ...

    def destroy(self, vm_id: str) -> None: ...

    def apply_network(self, view: NetworkView) -> None: ...


@dataclass
class MemoryBackend:
    """Machines that exist only as records (the default)."""

    machines: dict[str, MachineSpec] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    network: NetworkView = field(default_factory=NetworkView)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, spec: MachineSpec) -> None:
        with self._lock:
            self.machines[spec.vm_id] = spec
            self.running.add(spec.vm_id)

    def start(self, vm_id: str) -> None:
        with self._lock:
            self.running.add(vm_id)

    def stop(self, vm_id: str) -> None:
        with self._lock:
            self.running.discard(vm_id)

    def destroy(self, vm_id: str) -> None:
        with self._lock:
            self.machines.pop(vm_id, None)
            self.running.discard(vm_id)

    def apply_network(self, view: NetworkView) -> None:
        with self._lock:
            self.network = view
