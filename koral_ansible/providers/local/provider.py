"""LocalProvider: clusters of podman nodes on this machine, the host playing the cloud.

Order of things (every step idempotent, every resource recorded before or as it appears):
node image -> cluster network -> node containers (control plane first) -> port forwards and
firewall (nftables) -> API load balancer (haproxy) -> wait for SSH on every forwarded port.
``destroy`` removes what the state records *and* sweeps podman objects labelled with the
cluster (and this koral home), so it also cleans up after a run killed mid-way.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from koral_ansible import doctor
from koral_ansible.errors import InputError, OperationError
from koral_ansible.loadbalancer import hostnft as lb_rules
from koral_ansible.providers.base import API_PORT, SSH_BASE_PORT, Endpoint, Provider, node_name
from koral_ansible.providers.local import lb, network, nft, nodes
from koral_ansible.providers.local.image import ensure_image
from koral_ansible.providers.local.podman import LABEL_CLUSTER, LABEL_HOME, Podman, home_id
from koral_ansible.rules import local as user_rules
from koral_ansible.rules import records as rule_records
from koral_ansible.spec import ClusterSpec
from koral_ansible.state import NodeRecord

# A node boots systemd and sshd; under heavy load (2 cores, many nodes) 180 s was seen to be short.
SSH_TIMEOUT = 300.0
MAX_PARALLEL = 4
REQUIRED_TOOLS = ("podman", "runc", "nft", "haproxy", "ip")
# Resource kinds recorded in the state store.
R_NETWORK, R_CONTAINER, R_DIR, R_NFT, R_HAPROXY = "network", "container", "hostdir", "nft_table", "haproxy"
RUNNING, STOPPED, CREATING = "Running", "Stopped", "Creating"


class LocalProvider(Provider):
    """Podman nodes on this machine; see the module docstring."""

    name = "local"

    # ---- helpers ----------------------------------------------------------------------------
    @cached_property
    def podman(self) -> Podman:
        return Podman(self.ctx.paths)

    @property
    def cluster(self) -> str:
        return self.ctx.cluster

    @cached_property
    def home(self) -> str:
        return home_id(self.ctx.paths)

    @property
    def local_dir(self) -> Path:
        return self.ctx.paths.local_dir(self.cluster)

    def _report(self, msg: str) -> None:
        self.ctx.report(msg)

    def _records(self) -> list[NodeRecord]:
        return self.ctx.store.nodes(self.cluster)

    @staticmethod
    def _require_tools() -> None:
        missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
        if missing:
            raise OperationError(
                f"the local provider needs {', '.join(missing)} on this host "
                "(apt-get install podman runc nftables haproxy debootstrap)"
            )

    # ---- validate ---------------------------------------------------------------------------
    def validate(self, spec: ClusterSpec) -> None:
        if spec.provider != self.name:
            raise InputError("provider", f"must be local for the local provider (got {spec.provider!r})")
        for field in ("pod_cidr", "service_cidr"):
            cidr = IPv4Network(getattr(spec, field))
            if cidr.overlaps(network.NODE_POOL):
                raise InputError(
                    field,
                    f"must not overlap the local node subnets {network.NODE_POOL} (got {cidr})",
                )
        limit = 254 - 1 - network.FIRST_NODE_HOST
        if spec.node_count > limit:
            raise InputError("size", f"local clusters hold at most {limit} nodes (got {spec.node_count})")
        if spec.external_lb_ip is not None:
            raise InputError("external_lb_ip", "is not supported by the local provider (leave it unset)")
        if spec.network is not None:
            raise InputError("network", "is not supported by the local provider (leave it unset)")
        if shutil.which("podman"):
            existing = network.inspect_network(self.podman, network.network_name(spec.name))
            if existing is not None and (existing.get("labels") or {}).get(LABEL_HOME) != self.home:
                raise InputError(
                    "name",
                    f"{spec.name!r} is already used by local nodes of another koral home; pick another",
                )

    def check_host(self) -> None:
        doctor.preflight(self.ctx.paths)  # HostNotReady (exit 2) names the first failing check

    # ---- network ----------------------------------------------------------------------------
    def _recorded_subnet(self) -> IPv4Network | None:
        for res in self.ctx.store.resources(self.cluster, R_NETWORK):
            if res.data.get("subnet"):
                return IPv4Network(res.data["subnet"])
        return None

    def _network(self) -> network.NodeNet:
        net = network.ensure_network(self.podman, self.cluster, self.home, self._recorded_subnet())
        self.ctx.store.add_resource(
            self.cluster, R_NETWORK, net.name, {"subnet": str(net.subnet), "gateway": str(net.gateway)}
        )
        return net

    def _endpoint(self, net: network.NodeNet) -> Endpoint:
        ep = Endpoint(
            public_ip=str(net.gateway),
            api_port=API_PORT,
            control_plane_endpoint=f"{net.gateway}:{API_PORT}",
            extra={"network": net.name, "subnet": str(net.subnet)},
        )
        self.ctx.store.set_endpoint(self.cluster, ep.to_dict())
        return ep

    # ---- nodes ------------------------------------------------------------------------------
    def _plan(self, spec: ClusterSpec, net: network.NodeNet) -> list[NodeRecord]:
        """Existing records plus the missing nodes of the spec (control plane first)."""
        existing = {n.name: n for n in self._records()}
        wanted = [
            (node_name(self.cluster, "control", i + 1), "control", i) for i in range(spec.control_nodes)
        ]
        wanted += [
            (node_name(self.cluster, "worker", j + 1), "worker", spec.control_nodes + j)
            for j in range(spec.size)
        ]
        used = {n.idx for n in existing.values()}
        for name, role, idx in wanted:
            if name in existing:
                continue
            if idx in used:
                idx = max(used) + 1
            used.add(idx)
            existing[name] = self._record(name, role, idx, net)
        return sorted(existing.values(), key=lambda n: n.idx)

    def _record(self, name: str, role: str, idx: int, net: network.NodeNet) -> NodeRecord:
        return NodeRecord(
            name=name,
            role=role,
            idx=idx,
            private_ip=str(net.node_ip(idx)),
            ssh_host=str(net.gateway),
            ssh_port=SSH_BASE_PORT + idx,
            state=CREATING,
        )

    def _ensure_nodes(self, spec: ClusterSpec, records: list[NodeRecord], net: network.NodeNet) -> None:
        """Create or start every node: control plane one by one in idx order, then workers in parallel."""
        image = ensure_image(self.ctx.paths, self._report, spec.node_suite)
        keys = nodes.authorized_keys(self.ctx.paths, self.cluster, self.ctx.ssh_public_key)
        for rec in records:  # record everything before anything is created
            if not rec.provider_id:
                self.ctx.store.upsert_node(self.cluster, rec)
            self.ctx.store.add_resource(
                self.cluster, R_CONTAINER, nodes.container_name(rec.name), {"node": rec.name}
            )
        control = [r for r in records if r.is_control]
        workers = [r for r in records if not r.is_control]
        names = ", ".join(f"{r.name} ({r.private_ip})" for r in records)
        self._report(f"local: starting {len(records)} node(s): {names}")
        for rec in control:
            self._finish(rec, self._ensure_node(spec, rec, net, image, keys))
        with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
            futures = [(rec, pool.submit(self._ensure_node, spec, rec, net, image, keys)) for rec in workers]
            errors = []
            for rec, fut in futures:
                try:
                    self._finish(rec, fut.result())
                except OperationError as exc:
                    errors.append(str(exc))
        if errors:
            raise OperationError("; ".join(errors))

    def _ensure_node(
        self, spec: ClusterSpec, rec: NodeRecord, net: network.NodeNet, image: str, keys: Path
    ) -> tuple[str, str]:
        """(container id, note) of a running node container.

        Runs in worker threads: no state writes and no ``report`` here (both may be single-threaded).
        """
        cname = nodes.container_name(rec.name)
        state = self.podman.container_state(cname)
        if state is not None:
            owner = self.podman.run(
                "container", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL_HOME}"}}}}', cname
            ).stdout.strip()
            if owner != self.home:
                raise OperationError(
                    f"container {cname} belongs to another koral home; pick another cluster name"
                )
            if state in ("running", "exited", "created", "stopped", "configured", "paused"):
                nodes.ensure_running(self.podman, rec.name)
                return self.podman.container_id(cname) or "", ""
            nodes.remove(self.podman, [cname])
        dirs = nodes.make_dirs(self.ctx.paths, self.cluster, rec.name)
        node = nodes.NodeSpec(
            cluster=self.cluster,
            name=rec.name,
            ip=IPv4Address(rec.private_ip),
            network=net.name,
            image=image,
            cpus=spec.cpu,
            memory_mib=spec.memory,
        )
        return nodes.create(self.podman, node, self.home, dirs, keys)

    def _finish(self, rec: NodeRecord, result: tuple[str, str]) -> None:
        cid, note = result
        rec.provider_id = cid or rec.provider_id
        if note:
            rec.data["note"] = note
            self._report(f"local: {rec.name}: {note}")
        self.ctx.store.upsert_node(self.cluster, rec)
        self.ctx.store.add_resource(
            self.cluster,
            R_DIR,
            str(nodes.node_dir(self.ctx.paths, self.cluster, rec.name)),
            {"node": rec.name},
        )

    def _wait_ssh(self, records: Iterable[NodeRecord]) -> None:
        recs = list(records)
        nodes.wait_ssh([(r.name, r.ssh_host, r.ssh_port) for r in recs], SSH_TIMEOUT, self._report)
        for r in recs:
            self.ctx.store.set_node_state(self.cluster, r.name, RUNNING)

    # ---- plumbing: nft + haproxy ------------------------------------------------------------
    def _plumbing(self, spec: ClusterSpec, net: network.NodeNet, restart_lb: bool = False) -> None:
        records = self._records()
        forwards = [nft.Forward(r.ssh_port, IPv4Address(r.private_ip)) for r in records]
        script = nft.render(self.cluster, net.gateway, net.subnet, forwards, spec.allowed_cidrs, API_PORT)
        self.ctx.store.add_resource(self.cluster, R_NFT, nft.table_name(self.cluster), {})
        nft.apply(script, save_to=self.local_dir / "nftables.conf")
        network.enable_hairpin(self.podman, net.name)
        self.apply_user_rules(net.gateway)
        backends = [lb.Backend(r.name, IPv4Address(r.private_ip)) for r in records if r.is_control]
        text = lb.render(self.cluster, net.gateway, backends, API_PORT)
        self.ctx.store.add_resource(self.cluster, R_HAPROXY, str(self.local_dir / lb.CONFIG_NAME), {})
        if lb.ensure(self.local_dir, text, restart=restart_lb):
            self._report(
                f"local: API load balancer on {net.gateway}:{API_PORT} -> {len(backends)} control node(s)"
            )

    def apply_user_rules(self, public_ip: IPv4Address | None = None) -> None:
        """The user's network rules (koral_ansible/rules) for the recorded nodes, in their own table."""
        if public_ip is None:
            public_ip = self._network().gateway
        rules = rule_records.load(self.ctx.store, self.cluster)
        user_rules.apply(self.cluster, public_ip, rules, self._records(), self.local_dir)

    # ---- operations -------------------------------------------------------------------------
    def provision(self, spec: ClusterSpec) -> Endpoint:
        self.validate(spec)
        self._require_tools()
        net = self._network()
        endpoint = self._endpoint(net)
        self._report(f"local: network {net.name} {net.subnet}, public IP {net.gateway}")
        records = self._plan(spec, net)
        self._ensure_nodes(spec, records, net)
        self._plumbing(spec, net)
        self._wait_ssh(self._records())
        return endpoint

    def add_workers(self, spec: ClusterSpec, count: int) -> list[NodeRecord]:
        if count < 1:
            raise InputError("count", f"must be a positive integer (got {count})")
        self._require_tools()
        net = self._network()
        existing = self._records()
        numbers = [int(n.name.rsplit("-", 1)[1]) for n in existing if not n.is_control]
        next_number = max(numbers, default=0) + 1
        next_idx = max((n.idx for n in existing), default=-1) + 1
        new = [
            self._record(node_name(self.cluster, "worker", next_number + k), "worker", next_idx + k, net)
            for k in range(count)
        ]
        self._ensure_nodes(spec, new, net)
        self._plumbing(spec, net)
        self._wait_ssh(new)
        names = {n.name for n in new}
        return [n for n in self._records() if n.name in names]

    def remove_node(self, spec: ClusterSpec, node: NodeRecord) -> None:
        cname = nodes.container_name(node.name)
        nodes.remove(self.podman, [cname])
        nodes.remove_dirs(self.ctx.paths, self.cluster, node.name)
        self.ctx.store.remove_resource(self.cluster, R_CONTAINER, cname)
        self.ctx.store.remove_resource(
            self.cluster, R_DIR, str(nodes.node_dir(self.ctx.paths, self.cluster, node.name))
        )
        self.ctx.store.remove_node(self.cluster, node.name)
        if self._recorded_subnet() is not None:
            self._plumbing(spec, self._network())

    def start(self, spec: ClusterSpec) -> None:
        self._require_tools()
        net = self._network()
        self._endpoint(net)
        self._ensure_nodes(spec, self._records(), net)
        self._plumbing(spec, net, restart_lb=True)
        self._wait_ssh(self._records())

    def stop(self, spec: ClusterSpec) -> None:
        records = self._records()
        workers = [r for r in records if not r.is_control]
        control = sorted((r for r in records if r.is_control), key=lambda r: r.idx, reverse=True)
        with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
            list(pool.map(lambda r: nodes.stop(self.podman, r.name), workers))
        for r in control:
            nodes.stop(self.podman, r.name)
        for r in records:
            self.ctx.store.set_node_state(self.cluster, r.name, STOPPED)
        lb.stop(self.local_dir)

    def destroy(self, spec: ClusterSpec) -> None:
        store, cluster = self.ctx.store, self.cluster
        self._report(f"local: destroying cluster {cluster}")
        lb.stop(self.local_dir)
        names = {nodes.container_name(n.name) for n in self._records()}
        names |= {r.rid for r in store.resources(cluster, R_CONTAINER)}
        if shutil.which("podman"):
            wanted = {LABEL_CLUSTER: cluster, LABEL_HOME: self.home}
            names |= set(self.podman.containers_by_labels(wanted))
            nodes.remove(self.podman, sorted(n for n in names if self._ours(n)))
            nets = {r.rid for r in store.resources(cluster, R_NETWORK)}
            nets |= set(self.podman.networks_by_labels(wanted))
            for name in sorted(nets):
                existing = network.inspect_network(self.podman, name)
                if existing is not None and (existing.get("labels") or {}).get(LABEL_HOME) == self.home:
                    network.remove_network(self.podman, name)
        if shutil.which("nft"):
            nft.delete(cluster)
            nft.apply(user_rules.render_delete(cluster))
            lb_rules.delete(cluster)  # the LoadBalancer Services' table (koral_ansible.loadbalancer)
        shutil.rmtree(self.local_dir, ignore_errors=True)
        if self.local_dir.exists():
            raise OperationError(f"cannot remove {self.local_dir}; remove it by hand and run destroy again")
        for res in store.resources(cluster):
            store.remove_resource(cluster, res.kind, res.rid)
        for rec in self._records():
            store.remove_node(cluster, rec.name)

    def _ours(self, cname: str) -> bool:
        """Whether container ``cname`` exists and carries this home's label."""
        proc = self.podman.run(
            "container",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{LABEL_HOME}"}}}}',
            cname,
            check=False,
        )
        return proc.returncode == 0 and proc.stdout.strip() == self.home

    def node_running(self, node: NodeRecord) -> bool:
        return self.podman.container_state(nodes.container_name(node.name)) == "running"
