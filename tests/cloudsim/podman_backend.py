"""Machines of the test cloud as real local nodes: rootful podman systemd containers.

Built from the local provider's parts (``koral_ansible.providers.local``: node image, node
containers, podman networks, nftables rendering, haproxy), so both kinds of nodes are the same
machines. One backend instance owns, all named or labelled with its id ``cs<hex>``:

- one podman network per cloud network, with the cloud network's CIDR and gateway (the host plays
  the virtual router; the first one is allocated from :data:`POOL` at :meth:`PodmanBackend.open`
  and handed to the simulator as its guest CIDR, see :meth:`PodmanBackend.sim_config`);
- a /24 of public addresses (from :data:`POOL` too), made local to the host by one address on ``lo`` (label
  ``lo:<id>``): on the loopback device an address makes its whole prefix local, so every public
  IP the simulator hands out exists on the host and nodes reach it through their gateway;
- node containers ``koral-cs<hex>-<vm name>`` (hostname from the cloud-config user data, the key
  pairs' public keys as root's authorized_keys); a job finishes when the node's sshd answers;
- nft table ``koral_cloudsim_<hex>``: the firewall rules (sources allowed per port, before DNAT;
  guest subnets always allowed), DNAT of the port forwards, hairpin masquerade;
- one haproxy per load-balancer rule (round robin, health-checked).

:meth:`PodmanBackend.close` removes all of it; :meth:`PodmanBackend.leftovers` lists what still exists.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from koral_ansible.errors import OperationError
from koral_ansible.paths import Paths, write_private
from koral_ansible.providers.local import lb, network, nft, nodes
from koral_ansible.providers.local.image import SUITE, ensure_image
from koral_ansible.providers.local.podman import LABEL_HOME, Podman
from tests.cloudsim.backend import MachineSpec, NetworkView
from tests.cloudsim.server import SimConfig

SSH_TIMEOUT = 240.0
# Apart from the local provider's 10.213.0.0/16 and the tests' 10.214.x networks (Molecule, outside
# namespaces): a local cluster of another podman store (another KORAL_CACHE; its networks are invisible
# here and its bridge is gone while it is stopped) never takes a subnet a test cloud uses, nor back.
POOL = IPv4Network("10.215.0.0/16")
HOSTNAME_RE = re.compile(r"^hostname:\s*['\"]?([A-Za-z0-9.-]+)['\"]?\s*$", re.MULTILINE)


def hostname_of(spec: MachineSpec) -> str:
    """The ``hostname:`` of the cloud-config user data, else the VM name (what cloud-init does)."""
    match = HOSTNAME_RE.search(spec.userdata)
    return match.group(1) if match else spec.name


@dataclass
class _Machine:
    spec: MachineSpec
    node: str  # local node name (container koral-<node>)
    network: str  # podman network name


def guards_for(view: NetworkView, guest: list[IPv4Network]) -> list[nft.Guard]:
    """CloudStack's ingress firewall on the public IPs as nft guards (pure).

    Every published port (port forward or LB) of a public IP is closed unless a firewall rule of
    that IP covers it; its allowed sources are the union of those rules' CIDRs. The guest subnets
    are always allowed (VMs reach each other and the API through the public IP)."""
    published: dict[str, set[int]] = {}
    for pf in view.port_forwards:
        if pf.protocol.lower() == "tcp":
            published.setdefault(pf.public_ip, set()).add(pf.public_port)
    for rule in view.load_balancers:
        published.setdefault(rule.public_ip, set()).add(rule.public_port)
    guards = []
    for ip in sorted(published, key=IPv4Address):
        by_sources: dict[tuple[IPv4Network, ...], list[int]] = {}
        for port in sorted(published[ip]):
            allowed = list(guest)
            for fw in view.firewall_rules:
                if (
                    fw.public_ip == ip
                    and fw.protocol.lower() in ("tcp", "all")
                    and fw.start_port <= port <= fw.end_port
                ):
                    allowed += [IPv4Network(c, strict=False) for c in fw.cidrs if c]
            key = tuple(ipaddress.collapse_addresses(allowed))
            by_sources.setdefault(key, []).append(port)
        for sources, ports in by_sources.items():
            guards.append(nft.Guard(IPv4Address(ip), tuple(ports), sources))
    return guards


class PodmanBackend:
    """A :class:`~tests.cloudsim.backend.MachineBackend` of real podman nodes (see the module doc)."""

    def __init__(
        self, workdir: Path, report: Callable[[str], None] = lambda _m: None, suite: str = SUITE
    ) -> None:
        self.id = secrets.token_hex(3)
        self.name = f"cs{self.id}"  # koral.cluster label, network and container name prefix
        self.home = f"cloudsim-{self.id}"  # koral.home label: no koral home ever sweeps these
        self.table = f"cloudsim_{self.id}"  # nft table koral_cloudsim_<id>
        self.lo_label = f"lo:{self.name}"
        self.workdir = workdir
        self.paths = Paths.resolve(home=workdir / "home")
        self.podman = Podman(self.paths)
        self.report = report
        self.suite = suite  # Debian suite of every machine's image (koral_ansible.node_os)
        self.image = ""
        self.guest: IPv4Network | None = None
        self.public: IPv4Network | None = None
        self._networks: dict[str, str] = {}  # CIDR -> podman network name
        self._machines: dict[str, _Machine] = {}
        self._lbs: set[str] = set()
        self._lock = threading.Lock()

    # ---- life of the backend -----------------------------------------------------------------
    def open(self) -> PodmanBackend:
        """Node image, the first guest network and the public /24 (each allocated atomically)."""
        self.image = ensure_image(self.paths, self.report, self.suite)
        with network.alloc_lock(self.podman):
            used = [*network.koral_used_networks(self.podman), *network.host_used_networks()]
            guest = network.allocate_subnet(used, POOL)
            self.public = network.allocate_subnet([*used, guest], POOL)
            gateway = f"{self.public.network_address + 1}/{self.public.prefixlen}"
            _ip("addr", "add", gateway, "dev", "lo", "label", self.lo_label)
        first = network.ensure_network(self.podman, self.name, self.home, guest)
        self.guest = first.subnet
        self._networks[str(first.subnet)] = first.name
        self.report(f"cloudsim backend {self.name}: guest {self.guest}, public {self.public}")
        return self

    def sim_config(self, **kwargs: Any) -> SimConfig:
        """A simulator config whose guest CIDR and public range are this backend's."""
        assert self.guest is not None and self.public is not None, "open() the backend first"
        base = self.public.network_address
        return SimConfig(guest_cidr=str(self.guest), public_range=f"{base + 10}-{base + 250}", **kwargs)

    def close(self) -> None:
        """Remove everything this backend made (idempotent)."""
        for name in sorted(self._lbs):
            lb.stop(self._lb_dir(name))
        self._lbs.clear()
        with contextlib.suppress(Exception):
            nft.delete(self.table)
        wanted = {LABEL_HOME: self.home}
        nodes.remove(self.podman, self.podman.containers_by_labels(wanted))
        for net in self.podman.networks_by_labels(wanted):
            network.remove_network(self.podman, net)
        if self.public is not None:
            gateway = f"{self.public.network_address + 1}/{self.public.prefixlen}"
            _ip("addr", "del", gateway, "dev", "lo", check=False)
        shutil.rmtree(self.workdir / "home", ignore_errors=True)

    def __enter__(self) -> PodmanBackend:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def leftovers(self) -> dict[str, list[str]]:
        """What of the machines and rules still exists on the host (the leak check of the tests)."""
        wanted = {LABEL_HOME: self.home}
        lbs = [d.name for d in (self.workdir / "lb").glob("*") if lb.find_processes(d / lb.CONFIG_NAME)]
        return {
            "containers": self.podman.containers_by_labels(wanted),
            "networks": self.podman.networks_by_labels(wanted),
            "nft_tables": [nft.table_name(self.table)] if nft.table_exists(self.table) else [],
            "haproxy": lbs,
        }

    # ---- machines ----------------------------------------------------------------------------
    def _network_for(self, cidr: str) -> str:
        with self._lock:
            name = self._networks.get(cidr)
        if name is None:
            suffix = str(IPv4Network(cidr).network_address).replace(".", "-")
            net = network.ensure_network(self.podman, f"{self.name}-{suffix}", self.home, IPv4Network(cidr))
            name = net.name
            with self._lock:
                self._networks[cidr] = name
        elif network.inspect_network(self.podman, name) is None:  # removed with its last VM
            network.ensure_network(self.podman, name.removeprefix("koral-"), self.home, IPv4Network(cidr))
        return name

    def create(self, spec: MachineSpec) -> None:
        net = self._network_for(spec.network_cidr)
        node = f"{self.name}-{spec.name}"
        keys = self.workdir / "keys" / spec.vm_id
        write_private(keys, "".join(k.strip() + "\n" for k in spec.ssh_public_keys))
        with self._lock:
            self._machines[spec.vm_id] = _Machine(spec, node, net)
        dirs = nodes.make_dirs(self.paths, self.name, node)
        node_spec = nodes.NodeSpec(
            cluster=self.name,
            name=node,
            ip=IPv4Address(spec.private_ip),
            network=net,
            image=self.image,
            cpus=spec.cpu,
            memory_mib=spec.memory_mb,
            hostname=hostname_of(spec),
        )
        nodes.remove(self.podman, [nodes.container_name(node)])  # a failed earlier attempt
        nodes.create(self.podman, node_spec, self.home, dirs, keys)
        self._booted(spec.vm_id)

    def _booted(self, vm_id: str) -> None:
        machine = self._machines[vm_id]
        network.enable_hairpin(self.podman, machine.network)
        try:
            nodes.wait_ssh([(machine.spec.name, machine.spec.private_ip, 22)], SSH_TIMEOUT)
        except OperationError as exc:
            cname = nodes.container_name(machine.node)
            state = self.podman.container_state(cname)
            logs = self.podman.run("logs", "--tail", "5", cname, check=False)
            tail = " | ".join((logs.stdout + logs.stderr).strip().splitlines()[-5:])
            raise OperationError(f"{exc} (container {cname} {state}: {tail})") from None

    def start(self, vm_id: str) -> None:
        machine = self._machines.get(vm_id)
        if machine is None:
            return
        self._network_for(machine.spec.network_cidr)
        nodes.ensure_running(self.podman, machine.node)
        self._booted(vm_id)

    def stop(self, vm_id: str) -> None:
        machine = self._machines.get(vm_id)
        if machine is not None:
            nodes.stop(self.podman, machine.node)

    def destroy(self, vm_id: str) -> None:
        with self._lock:
            machine = self._machines.pop(vm_id, None)
            last = machine is not None and not any(
                m.network == machine.network for m in self._machines.values()
            )
        if machine is None:
            return
        nodes.remove(self.podman, [nodes.container_name(machine.node)])
        nodes.remove_dirs(self.paths, self.name, machine.node)
        (self.workdir / "keys" / vm_id).unlink(missing_ok=True)
        if last:
            network.remove_network(self.podman, machine.network)

    # ---- rules -------------------------------------------------------------------------------
    def _lb_dir(self, name: str) -> Path:
        return self.workdir / "lb" / name

    def apply_network(self, view: NetworkView) -> None:
        with self._lock:
            guest = [IPv4Network(c) for c in self._networks]
        dnats = [
            nft.Dnat(IPv4Address(pf.public_ip), pf.public_port, IPv4Address(pf.private_ip), pf.private_port)
            for pf in view.port_forwards
            if pf.protocol.lower() == "tcp"
        ]
        guards = guards_for(view, guest)
        if dnats or guards:
            title = f"port forwards and firewall of test cloud {self.name}"
            nft.apply(nft.render_table(nft.table_name(self.table), title, dnats, guards, guest))
        else:
            nft.delete(self.table)
        wanted = {}
        for rule in view.load_balancers:
            backends = [
                lb.Backend("vm-" + ip.replace(".", "-"), IPv4Address(ip), rule.private_port)
                for ip in rule.backends
            ]
            wanted[rule.name] = lb.render(rule.name, IPv4Address(rule.public_ip), backends, rule.public_port)
        for name in sorted(self._lbs - set(wanted)):
            lb.stop(self._lb_dir(name))
        for name, text in wanted.items():
            lb.ensure(self._lb_dir(name), text)
        self._lbs = set(wanted)


def _ip(*args: str, check: bool = True) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
