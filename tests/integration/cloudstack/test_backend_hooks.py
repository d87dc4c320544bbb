"""The machine backend interface a podman-backed test cloud will implement: what it is told."""

from __future__ import annotations

from dataclasses import dataclass, field

from koral_ansible.paths import Paths
from tests.cloudsim import CloudSim, MachineSpec, MemoryBackend, NetworkView, SimConfig
from tests.integration.cloudstack.helpers import harness


@dataclass
class RecordingBackend(MemoryBackend):
    events: list[tuple[str, str]] = field(default_factory=list)
    views: list[NetworkView] = field(default_factory=list)

    def create(self, spec: MachineSpec) -> None:
        self.events.append(("create", spec.name))
        super().create(spec)

    def stop(self, vm_id: str) -> None:
        self.events.append(("stop", self.machines[vm_id].name))
        super().stop(vm_id)

    def start(self, vm_id: str) -> None:
        self.events.append(("start", self.machines[vm_id].name))
        super().start(vm_id)

    def destroy(self, vm_id: str) -> None:
        self.events.append(("destroy", self.machines[vm_id].name if vm_id in self.machines else vm_id))
        super().destroy(vm_id)

    def apply_network(self, view: NetworkView) -> None:
        self.views.append(view)
        super().apply_network(view)


def test_backend_sees_machines_and_published_rules(koral_home: Paths) -> None:
    backend = RecordingBackend()
    with CloudSim(SimConfig(job_latency=0.01), backend=backend) as sim:
        h = harness(sim, koral_home, control_nodes=3, size=1, allowed_cidrs=["192.0.2.0/24"])
        h.provider.provision(h.spec)
        nodes = h.store.nodes("demo")
        specs = {s.name: s for s in backend.machines.values()}
        assert sorted(specs) == sorted(n.name for n in nodes)
        m = specs["demo-control-1"]
        assert (m.cpu, m.memory_mb, m.root_disk_gb) == (2, 2048, 8)
        assert m.private_ip == nodes[0].private_ip and m.network_cidr == "10.1.1.0/24"
        assert "hostname: demo-control-1" in m.userdata and m.ssh_public_keys  # koral's key pair
        view = backend.network
        public = nodes[0].ssh_host
        assert sorted(
            (f.public_ip, f.public_port, f.private_ip, f.private_port) for f in view.port_forwards
        ) == [(public, 2222 + n.idx, n.private_ip, 22) for n in nodes]
        (lb,) = view.load_balancers
        assert (lb.public_ip, lb.public_port, lb.private_port, lb.algorithm) == (
            public,
            6443,
            6443,
            "roundrobin",
        )
        assert sorted(lb.backends) == sorted(n.private_ip for n in nodes if n.is_control)
        assert {(r.start_port, r.end_port, r.cidrs) for r in view.firewall_rules} == {
            (6443, 6443, ("192.0.2.0/24",)),
            (2222, 2225, ("192.0.2.0/24",)),
        }
        h.provider.stop(h.spec)
        h.provider.start(h.spec)
        stops = [name for ev, name in backend.events if ev == "stop"]
        starts = [name for ev, name in backend.events if ev == "start"]
        assert stops[0] == "demo-node-1" and set(stops[1:]) == {f"demo-control-{i}" for i in (1, 2, 3)}
        assert starts[-1] == "demo-node-1"  # workers start after the control plane
        h.provider.destroy(h.spec)
        assert not backend.machines and backend.network == NetworkView()
