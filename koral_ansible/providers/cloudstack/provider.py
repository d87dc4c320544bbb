"""``CloudStackProvider``: Koral's cluster layout on Mold / Apache CloudStack.

Per cluster: an isolated network (auto-created from the Kubernetes network offering, or the
given one), its source-NAT public IP, one VM per node (control plane first), firewall rules
for 6443 and the SSH ports, port forwards public 2222+i -> VM i:22 and the API load balancer
``<cluster>-api-lb`` public 6443 -> control VMs:6443 (round robin), unless an external LB is
given. Every resource is recorded as soon as its id is known; every step first looks for what
already exists, so a re-run resumes and a destroy finds everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from koral_ansible.errors import OperationError
from koral_ansible.provider_id import external_cloud_provider_mark
from koral_ansible.providers.base import API_PORT, Endpoint, Provider, ProviderContext
from koral_ansible.providers.cloudstack import plan
from koral_ansible.providers.cloudstack.capabilities import may_expunge
from koral_ansible.providers.cloudstack.ccm_keys import delete_ccm_user
from koral_ansible.providers.cloudstack.ccm_leftovers import remove_ccm_leftovers
from koral_ansible.providers.cloudstack.client import ApiCallError, CloudClient, Job, JobsFailed
from koral_ansible.providers.cloudstack.config import CloudConfig, load_config
from koral_ansible.providers.cloudstack.resolve import Resolved, resolve
from koral_ansible.rules import cloudstack as user_rules
from koral_ansible.rules import records as rule_records
from koral_ansible.spec import ClusterSpec
from koral_ansible.state import NodeRecord

GONE_STATES = ("Destroyed", "Expunging", "Error")
TRANSITIONAL_STATES = ("Starting", "Stopping", "Creating", "Migrating")


class CloudStackProvider(Provider):
    name = "cloudstack"

    def __init__(
        self,
        ctx: ProviderContext,
        config: CloudConfig | None = None,
        client_factory: Callable[[CloudConfig], CloudClient] | None = None,
    ) -> None:
        super().__init__(ctx)
        self._config = config
        self._client_factory = client_factory
        self._client: CloudClient | None = None
        self._may_expunge: bool | None = None
        self._unexpunged = False  # VMs were destroyed without expunge in this run

    # ---- plumbing -----------------------------------------------------------------------------
    @property
    def config(self) -> CloudConfig:
        if self._config is None:
            self._config = load_config()
        return self._config

    @property
    def client(self) -> CloudClient:
        if self._client is None:
            factory = self._client_factory or (lambda c: CloudClient(c, report=self.ctx.report))
            self._client = factory(self.config)
        return self._client

    @property
    def cluster(self) -> str:
        return self.ctx.cluster

    @property
    def may_expunge(self) -> bool:
        """Whether destroyVirtualMachine may carry expunge=true (asked once per provider)."""
        if self._may_expunge is None:
            self._may_expunge = may_expunge(self.client)
        return self._may_expunge

    def _destroy_params(self, vid: str) -> dict[str, Any]:
        params: dict[str, Any] = {"id": vid}
        if self.may_expunge:
            params["expunge"] = True
        else:
            self._unexpunged = True
        return params

    def _record(self, kind: str, rid: str, **data: Any) -> None:
        self.ctx.store.add_resource(self.cluster, kind, rid, data)

    def _recorded(self, kind: str) -> dict[str, dict[str, Any]]:
        return {r.rid: r.data for r in self.ctx.store.resources(self.cluster, kind)}

    def _forget(self, kind: str, rid: str) -> None:
        self.ctx.store.remove_resource(self.cluster, kind, rid)

    # ---- validate -----------------------------------------------------------------------------
    def validate(self, spec: ClusterSpec) -> None:
        self._resolve(spec)

    def _resolve(self, spec: ClusterSpec) -> Resolved:
        return resolve(self.client, spec, self.config.template)

    # ---- provision ----------------------------------------------------------------------------
    def provision(self, spec: ClusterSpec) -> Endpoint:
        res = self._resolve(spec)
        network = self._ensure_network(spec, res)
        ip = self._ensure_public_ip(network)
        keypairs = self._ensure_keypair(res)
        slots = self._merge_slots(spec, self.ctx.store.nodes(self.cluster))
        self._ensure_vms(spec, res, network, slots, keypairs)
        return self._publish(spec, network, ip)

    def _merge_slots(self, spec: ClusterSpec, nodes: list[NodeRecord]) -> list[plan.Slot]:
        """The full layout: recorded nodes keep their place; missing ones are added."""
        wanted = plan.layout(self.cluster, spec.control_nodes, spec.size)
        have = {n.name: plan.Slot(n.name, n.role, n.idx) for n in nodes}
        return [have.get(s.name, s) for s in wanted] + [
            s for n, s in have.items() if n not in {w.name for w in wanted}
        ]

    def _ensure_network(self, spec: ClusterSpec, res: Resolved) -> dict[str, Any]:
        if res.network_id:
            nets = self.client.list("listNetworks", id=res.network_id)
            if not nets:
                raise OperationError(f"network {spec.network} disappeared")
            self._record("network", res.network_id, owned=False, name=nets[0]["name"])
            return nets[0]
        for rid, data in self._recorded("network").items():
            if data.get("owned"):
                nets = self._find("listNetworks", rid)
                if nets:
                    return nets[0]
                self._forget("network", rid)
        name = plan.network_name(self.cluster)
        for net in self.client.list("listNetworks", zoneid=res.zone_id):
            # A network created by a run that died before recording it: same name and marker text.
            if net.get("name") == name and (
                _has_tag(net, plan.TAG_CLUSTER, self.cluster)
                or net.get("displaytext") == plan.network_text(self.cluster)
            ):
                self._record("network", str(net["id"]), owned=True, name=name)
                if not _has_tag(net, plan.TAG_CLUSTER, self.cluster):
                    self._tag_network(str(net["id"]))
                return net
        self.ctx.report(f"creating network {name}")
        net = (
            self.client.call(
                "createNetwork",
                name=name,
                displaytext=plan.network_text(self.cluster),
                zoneid=res.zone_id,
                networkofferingid=res.network_offering_id,
            ).get("network")
            or {}
        )
        if not net.get("id"):
            raise OperationError("createNetwork: the cloud answered without a network id")
        self._record("network", str(net["id"]), owned=True, name=name)
        self._tag_network(str(net["id"]))
        return dict(net)

    def _tag_network(self, network_id: str) -> None:
        self.client.run(
            "createTags",
            "tag the network",
            resourceids=network_id,
            resourcetype="Network",
            tags=[{"key": plan.TAG_CLUSTER, "value": self.cluster}],
        )

    def _find(self, command: str, rid: str) -> list[dict[str, Any]]:
        """``command`` filtered by id; [] when the id no longer exists."""
        try:
            return self.client.list(command, id=rid)
        except ApiCallError as exc:
            if exc.not_found:
                return []
            raise

    def _ensure_public_ip(self, network: dict[str, Any]) -> dict[str, Any]:
        nid = str(network["id"])
        for rid in self._recorded("public_ip"):
            found = self._find("listPublicIpAddresses", rid)
            if found and found[0].get("associatednetworkid") == nid:
                return found[0]
            self._forget("public_ip", rid)
        found = self.client.list("listPublicIpAddresses", associatednetworkid=nid, issourcenat=True)
        if found:
            ip = found[0]
            self._record("public_ip", str(ip["id"]), ipaddress=ip["ipaddress"], release=False)
            return ip
        self.ctx.report("acquiring the source NAT public IP")
        job = self.client.submit("associateIpAddress", "public IP", networkid=nid)
        if job.id:
            self._record("public_ip", job.id, ipaddress="", release=True)
        self.client.wait([job], "the public IP")
        ip = dict(job.result.get("ipaddress") or {})
        rid = str(ip.get("id") or job.id)
        self._record("public_ip", rid, ipaddress=ip.get("ipaddress", ""), release=not ip.get("issourcenat"))
        return ip

    def _ensure_keypair(self, res: Resolved) -> list[str]:
        """koral's own key as a cloud key pair (plus the user's), so every VM admits the plays."""
        name = plan.keypair_name(self.cluster)
        names = [name] + ([res.keypair] if res.keypair else [])
        if not self.ctx.ssh_public_key.strip():
            return names[1:]
        self._record("ssh_keypair", name)  # before it exists: delete tolerates "not found"
        pairs = self.client.list("listSSHKeyPairs", name=name)
        if not any(p.get("name") == name for p in pairs):
            self.client.call("registerSSHKeyPair", name=name, publickey=self.ctx.ssh_public_key.strip())
        return names

    # ---- VMs ----------------------------------------------------------------------------------
    def _cluster_vms(self, network_id: str) -> dict[str, dict[str, Any]]:
        vms = self.client.list("listVirtualMachines", networkid=network_id, listall=True)
        return {str(v["name"]): v for v in vms if str(v.get("name", "")).startswith(f"{self.cluster}-")}

    def _ensure_vms(
        self,
        spec: ClusterSpec,
        res: Resolved,
        network: dict[str, Any],
        slots: Sequence[plan.Slot],
        keypairs: list[str],
    ) -> list[NodeRecord]:
        nid = str(network["id"])
        present = self._settled_vms(nid)
        recorded = {n.name: n for n in self.ctx.store.nodes(self.cluster)}
        # VMs left in Error by an earlier failed run are destroyed and deployed again.
        broken = [
            present.pop(s.name)
            for s in slots
            if s.name in present and present[s.name]["state"] in GONE_STATES
        ]
        if broken:
            self._destroy_vms([str(v["id"]) for v in broken], "failed VMs of an earlier run")
        jobs: list[tuple[plan.Slot, Job]] = []
        untagged: list[tuple[plan.Slot, str]] = []
        ordered = sorted(slots, key=lambda s: (s.role != "control", s.idx))
        for slot in ordered:
            vm = present.get(slot.name)
            if vm is not None:
                self._record("vm", str(vm["id"]), name=slot.name)
                if not _has_tag(vm, plan.TAG_CLUSTER, self.cluster):
                    untagged.append((slot, str(vm["id"])))
                if vm["state"] == "Stopped":  # e.g. deployed by a run that failed to start it
                    jobs.append((slot, self.client.submit("startVirtualMachine", slot.name, id=vm["id"])))
                elif slot.name not in recorded or recorded[slot.name].provider_id != vm["id"]:
                    self._save_node(slot, vm, "Running")
                continue
            params: dict[str, Any] = {
                "zoneid": res.zone_id,
                "serviceofferingid": res.offering_id,
                "templateid": res.template_id,
                "networkids": nid,
                "name": slot.name,
                "displayname": slot.name,
                "rootdisksize": spec.root_disk_size,
                "userdata": plan.userdata(slot.name, self.ctx.ssh_public_key),
            }
            if keypairs:
                params["keypairs"] = ",".join(keypairs)
            job = self.client.submit("deployVirtualMachine", slot.name, **params)
            if job.id:
                self._record("vm", job.id, name=slot.name)
                self.ctx.store.upsert_node(
                    self.cluster,
                    NodeRecord(
                        name=slot.name, role=slot.role, idx=slot.idx, state="Creating", provider_id=job.id
                    ),
                )
            jobs.append((slot, job))
        failed = []
        if jobs:
            self.ctx.report(f"deploying {len(jobs)} VM(s) concurrently")
            self.client.wait([j for _, j in jobs], f"{len(jobs)} VM deployment(s)", raise_on_failure=False)
            for slot, job in jobs:
                if job.error is not None:
                    failed.append(f"{slot.name}: {job.error.errortext}")
                    self.ctx.store.upsert_node(
                        self.cluster,
                        NodeRecord(
                            name=slot.name,
                            role=slot.role,
                            idx=slot.idx,
                            state="Error",
                            provider_id=job.id or "",
                        ),
                    )
                    continue
                vm = job.result.get("virtualmachine") or {}
                vid = str(vm.get("id") or job.id)
                self._record("vm", vid, name=slot.name)
                self._save_node(slot, vm, "Running")
                if job.command == "deployVirtualMachine":
                    untagged.append((slot, vid))
        # Tag what exists before reporting failures: the cloud-side inventory finds VMs by tag.
        self._tag_vms(untagged)
        if failed:
            raise OperationError(
                f"{len(failed)} of {len(jobs)} VM deployment(s) failed: " + "; ".join(failed)
            )
        return self.ctx.store.nodes(self.cluster)

    def _tag_vms(self, vms: Sequence[tuple[plan.Slot, str]]) -> None:
        jobs = []
        for role in ("control", "worker"):
            ids = [vid for slot, vid in vms if slot.role == role]
            if ids:
                jobs.append(
                    self.client.submit(
                        "createTags",
                        f"tag {role} VMs",
                        resourceids=",".join(ids),
                        resourcetype="UserVm",
                        tags=[
                            {"key": plan.TAG_CLUSTER, "value": self.cluster},
                            {"key": plan.TAG_ROLE, "value": role},
                        ],
                    )
                )
        self.client.wait(jobs, "tagging the VMs")

    def _settled_vms(self, network_id: str) -> dict[str, dict[str, Any]]:
        """The cluster's VMs once none is still being deployed by an earlier (killed) run."""
        deadline = time.monotonic() + self.config.job_timeout
        delay = self.config.poll_interval
        while True:
            present = self._cluster_vms(network_id)
            busy = sorted(n for n, v in present.items() if v.get("state") in TRANSITIONAL_STATES)
            if not busy:
                return present
            if time.monotonic() + delay > deadline:
                raise OperationError(
                    f"timed out after {self.config.job_timeout:g}s waiting for VM(s) {', '.join(busy)} of an "
                    "earlier run to leave Starting/Stopping; re-run the command later"
                )
            self.ctx.report(f"waiting for {len(busy)} VM(s) of an earlier run: {', '.join(busy)}")
            time.sleep(delay)
            delay = min(delay * self.config.poll_backoff, self.config.poll_max)

    def _save_node(self, slot: plan.Slot, vm: dict[str, Any], state: str) -> None:
        nics = vm.get("nic") or [{}]
        self.ctx.store.upsert_node(
            self.cluster,
            NodeRecord(
                name=slot.name,
                role=slot.role,
                idx=slot.idx,
                private_ip=str(nics[0].get("ipaddress", "")),
                ssh_host="",
                ssh_port=slot.ssh_port,
                state=state,
                provider_id=str(vm.get("id", "")),
                data={"zone": vm.get("zonename", ""), "network_id": nics[0].get("networkid", "")},
            ),
        )

    def _destroy_vms(self, ids: Sequence[str], what: str) -> None:
        jobs = []
        for vid in ids:
            try:
                jobs.append(
                    (vid, self.client.submit("destroyVirtualMachine", vid, **self._destroy_params(vid)))
                )
            except ApiCallError as exc:
                if not exc.not_found:
                    raise
        self.client.wait([j for _, j in jobs], what, raise_on_failure=False)
        jobs = self._without_expunge(jobs)
        failed = [j for _, j in jobs if j.error is not None and not j.error.not_found]
        if failed:
            raise JobsFailed(failed)
        for vid in ids:
            self._forget("vm", vid)

    def _without_expunge(self, jobs: list[tuple[str, Job]]) -> list[tuple[str, Job]]:
        """Destroy again, without expunge, the VMs the cloud would not let this account expunge.

        koral asks first (listCapabilities, listAccounts), so this is the fallback for a role
        that lacks the expunge API. CloudStack checks inside the job and fails it with 530
        "Account does not have permission for expunging." (older releases: "Parameter expunge
        can be passed by Admin only. ..."); the cloud's expunge thread removes such VMs after
        expunge.interval.
        """
        out, retry = [], []
        for rid, job in jobs:
            err = job.error
            if err is not None and err.errorcode in (530, 531) and "expung" in err.errortext.lower():
                retry.append((rid, self.client.submit("destroyVirtualMachine", job.label, id=rid)))
            else:
                out.append((rid, job))
        if retry:
            self._may_expunge = False
            self._unexpunged = True
            self.ctx.report(f"this account may not expunge VMs: destroying {len(retry)} without expunge")
            self.client.wait([j for _, j in retry], "VM removal", raise_on_failure=False)
        return out + retry

    # ---- firewall, port forwards, load balancer -----------------------------------------------
    def _publish(self, spec: ClusterSpec, network: dict[str, Any], ip: dict[str, Any]) -> Endpoint:
        """Bring firewall rules, port forwards and the LB to the layout of the recorded nodes."""
        nodes = self.ctx.store.nodes(self.cluster)
        slots = [plan.Slot(n.name, n.role, n.idx) for n in nodes]
        vm_ids = {n.name: n.provider_id for n in nodes}
        ip_id, public_ip, nid = str(ip["id"]), str(ip["ipaddress"]), str(network["id"])

        fw_have = self.client.list("listFirewallRules", ipaddressid=ip_id)
        fw = plan.diff_firewall(
            plan.firewall_plan(slots, spec.allowed_cidrs, api=not spec.external_lb_ip),
            fw_have,
            set(self._recorded("firewall_rule")),
        )
        pf_have = self.client.list("listPortForwardingRules", ipaddressid=ip_id)
        pf = plan.diff_forwards(
            plan.forward_plan(slots), pf_have, vm_ids, set(self._recorded("port_forward"))
        )
        self._forget_missing("firewall_rule", {str(r["id"]) for r in fw_have})
        self._forget_missing("port_forward", {str(r["id"]) for r in pf_have})
        for rid in fw.keep:
            self._record("firewall_rule", rid)
        for rid in pf.keep:
            self._record("port_forward", rid)

        deletes = [self.client.submit("deleteFirewallRule", f"firewall rule {r}", id=r) for r in fw.delete]
        deletes += [
            self.client.submit("deletePortForwardingRule", f"port forward {r}", id=r) for r in pf.delete
        ]
        self.client.wait(deletes, "removal of stale rules")
        for r in fw.delete:
            self._forget("firewall_rule", r)
        for r in pf.delete:
            self._forget("port_forward", r)

        jobs: list[tuple[str, Job]] = []
        for want in fw.create:
            assert isinstance(want, plan.PortRange)
            job = self.client.submit(
                "createFirewallRule",
                f"firewall rule {want.label}",
                ipaddressid=ip_id,
                protocol="tcp",
                startport=want.start,
                endport=want.end,
                cidrlist=",".join(want.cidrs),
            )
            self._track("firewall_rule", job, ports=want.label)
            jobs.append(("firewall_rule", job))
        for fwd in pf.create:
            assert isinstance(fwd, plan.Forward)
            job = self.client.submit(
                "createPortForwardingRule",
                f"port forward {fwd.public_port} -> {fwd.node}",
                ipaddressid=ip_id,
                protocol="tcp",
                publicport=fwd.public_port,
                privateport=fwd.private_port,
                virtualmachineid=vm_ids[fwd.node],
                openfirewall=False,
                networkid=nid,
            )
            self._track("port_forward", job, public_port=fwd.public_port, node=fwd.node)
            jobs.append(("port_forward", job))
        lb_job = None
        lb_id = None
        if not spec.external_lb_ip:
            lb_id, lb_job = self._ensure_lb(ip_id, nid)
            if lb_job is not None:
                jobs.append(("lb_rule", lb_job))
        if jobs:
            self.ctx.report(f"publishing {len(jobs)} firewall/port-forward/load-balancer rule(s)")
        self.client.wait([j for _, j in jobs], "firewall, port forwarding and load balancer rules")
        for kind, job in jobs:
            obj: Any = next(iter(job.result.values()), {}) if job.result else {}
            if isinstance(obj, dict) and obj.get("id") and obj.get("id") != job.id:
                self._record(kind, str(obj["id"]))
        if lb_id:
            self._assign_lb(lb_id, [n.provider_id for n in nodes if n.is_control])

        for n in nodes:
            if n.ssh_host != public_ip or n.ssh_port != plan.Slot(n.name, n.role, n.idx).ssh_port:
                n.ssh_host, n.ssh_port = public_ip, plan.Slot(n.name, n.role, n.idx).ssh_port
                self.ctx.store.upsert_node(self.cluster, n)
        cpe = f"{spec.external_lb_ip}:{API_PORT}" if spec.external_lb_ip else f"{public_ip}:{API_PORT}"
        endpoint = Endpoint(
            public_ip=public_ip,
            api_port=API_PORT,
            control_plane_endpoint=cpe,
            ssh_user="root",
            extra={
                "network_id": nid,
                "public_ip_id": ip_id,
                "zone": str(network.get("zonename", "")),
                "subnet": str(network.get("cidr", "")),  # koral_node_cidr for the node firewall
                # create's mark that the cluster runs the CloudStack provider survives a scale
                **external_cloud_provider_mark(self.ctx.store.get_cluster(self.cluster).endpoint),
            },
        )
        self.ctx.store.set_endpoint(self.cluster, endpoint.to_dict())
        # The user's rules follow the nodes (new workers join LB rules, a replaced VM gets its
        # port forwards back); koral's own rules above never touch them.
        user_rules.reconcile(self, rule_records.load(self.ctx.store, self.cluster))
        return endpoint

    def _track(self, kind: str, job: Job, **data: Any) -> None:
        if job.id:
            self._record(kind, job.id, **data)

    def _forget_missing(self, kind: str, present: set[str]) -> None:
        for rid in self._recorded(kind):
            if rid not in present:
                self._forget(kind, rid)

    def _ensure_lb(self, ip_id: str, network_id: str) -> tuple[str | None, Job | None]:
        name = plan.lb_name(self.cluster)
        for rule in self.client.list("listLoadBalancerRules", publicipid=ip_id):
            if rule.get("name") == name:
                self._record("lb_rule", str(rule["id"]), name=name)
                return str(rule["id"]), None
        self._forget_missing("lb_rule", set())
        job = self.client.submit(
            "createLoadBalancerRule",
            f"load balancer {name}",
            name=name,
            algorithm="roundrobin",
            publicport=API_PORT,
            privateport=API_PORT,
            publicipid=ip_id,
            networkid=network_id,
            protocol="tcp",
            openfirewall=False,
        )
        self._track("lb_rule", job, name=name)
        return job.id, job

    def _assign_lb(self, lb_id: str, control_ids: list[str]) -> None:
        current = {str(v["id"]) for v in self.client.list("listLoadBalancerRuleInstances", id=lb_id)}
        wanted = set(control_ids)
        jobs = []
        if wanted - current:
            jobs.append(
                self.client.submit(
                    "assignToLoadBalancerRule",
                    "assign control VMs to the API LB",
                    id=lb_id,
                    virtualmachineids=",".join(sorted(wanted - current)),
                )
            )
        if current - wanted:
            jobs.append(
                self.client.submit(
                    "removeFromLoadBalancerRule",
                    "remove VMs from the API LB",
                    id=lb_id,
                    virtualmachineids=",".join(sorted(current - wanted)),
                )
            )
        self.client.wait(jobs, "the API load balancer members")

    # ---- day 2 --------------------------------------------------------------------------------
    def _network_and_ip(self) -> tuple[dict[str, Any], dict[str, Any]]:
        nets = list(self._recorded("network"))
        ips = list(self._recorded("public_ip"))
        if not nets or not ips:
            raise OperationError(
                f"cluster {self.cluster} has no recorded network/public IP; run create first"
            )
        net = self._find("listNetworks", nets[0])
        ip = self._find("listPublicIpAddresses", ips[0])
        if not net or not ip:
            raise OperationError(f"the network or public IP of cluster {self.cluster} no longer exists")
        return net[0], ip[0]

    def add_workers(self, spec: ClusterSpec, count: int) -> list[NodeRecord]:
        res = self._resolve(spec)
        network, ip = self._network_and_ip()
        nodes = self.ctx.store.nodes(self.cluster)
        existing = [plan.Slot(n.name, n.role, n.idx) for n in nodes]
        new = plan.more_workers(self.cluster, existing, count)
        keypairs = [plan.keypair_name(self.cluster)] + ([res.keypair] if res.keypair else [])
        self._ensure_vms(spec, res, network, existing + new, keypairs)
        self._publish(spec, network, ip)
        names = {s.name for s in new}
        return [n for n in self.ctx.store.nodes(self.cluster) if n.name in names]

    def remove_node(self, spec: ClusterSpec, node: NodeRecord) -> None:
        if node.provider_id:
            self._destroy_vms([node.provider_id], f"removal of {node.name}")
        self.ctx.store.remove_node(self.cluster, node.name)
        network, ip = self._network_and_ip()
        self._publish(spec, network, ip)

    def _vm_jobs(self, command: str, nodes: Sequence[NodeRecord], skip_state: str, what: str) -> None:
        states = (
            {
                str(v["id"]): str(v["state"])
                for v in self.client.list(
                    "listVirtualMachines", ids=",".join(n.provider_id for n in nodes if n.provider_id)
                )
            }
            if nodes
            else {}
        )
        jobs = [
            self.client.submit(command, n.name, id=n.provider_id)
            for n in nodes
            if n.provider_id and states.get(n.provider_id) not in (skip_state, None)
        ]
        self.client.wait(jobs, what)
        for n in nodes:
            self.ctx.store.set_node_state(self.cluster, n.name, skip_state)

    def start(self, spec: ClusterSpec) -> None:
        nodes = self.ctx.store.nodes(self.cluster)
        self._vm_jobs(
            "startVirtualMachine",
            [n for n in nodes if n.is_control],
            "Running",
            "the control-plane VMs to start",
        )
        self._vm_jobs(
            "startVirtualMachine",
            [n for n in nodes if not n.is_control],
            "Running",
            "the worker VMs to start",
        )

    def stop(self, spec: ClusterSpec) -> None:
        nodes = self.ctx.store.nodes(self.cluster)
        self._vm_jobs(
            "stopVirtualMachine", [n for n in nodes if not n.is_control], "Stopped", "the worker VMs to stop"
        )
        self._vm_jobs(
            "stopVirtualMachine",
            [n for n in nodes if n.is_control],
            "Stopped",
            "the control-plane VMs to stop",
        )

    def node_running(self, node: NodeRecord) -> bool:
        if not node.provider_id:
            return False
        try:
            vms = self.client.list("listVirtualMachines", id=node.provider_id)
        except ApiCallError as exc:
            if exc.not_found:
                return False
            raise
        return bool(vms) and vms[0].get("state") == "Running"

    # ---- destroy ------------------------------------------------------------------------------
    def destroy(self, spec: ClusterSpec) -> None:
        self._adopt_unrecorded_network()
        # The cloud controller manager's load-balancer rules, firewall rules and IPs first (koral
        # recorded none of them; an existing network would keep them for good).
        resources = self.ctx.store.resources(self.cluster)
        networks = [r.rid for r in resources if r.kind == "network"]
        if remove_ccm_leftovers(self.client, networks, {r.rid for r in resources}):
            self.ctx.report("removed the cloud controller manager's load-balancer rules and IPs")
        recorded = {r.kind for r in self.ctx.store.resources(self.cluster)}
        for kind in plan.destroy_order(recorded | {"vm"}):
            self._destroy_kind(kind)
        # The cloud controller manager's dedicated user (koral_ansible.operations.cloud_provider)
        # goes with the cluster.
        delete_ccm_user(self.client, self.cluster)

    def _adopt_unrecorded_network(self) -> None:
        """A network an interrupted create made but could not record is this cluster's too."""
        name = plan.network_name(self.cluster)
        for net in self.client.list("listNetworks", keyword=name):
            ours = _has_tag(net, plan.TAG_CLUSTER, self.cluster) or net.get(
                "displaytext"
            ) == plan.network_text(self.cluster)
            if net.get("name") == name and ours and str(net["id"]) not in self._recorded("network"):
                self._record("network", str(net["id"]), owned=True, name=name)

    _DELETE = {
        **{user_rules.RESOURCE_KIND[k]: cmd for k, cmd in user_rules.DELETE.items()},
        "lb_rule": "deleteLoadBalancerRule",
        "port_forward": "deletePortForwardingRule",
        "firewall_rule": "deleteFirewallRule",
        "vm": "destroyVirtualMachine",
        "public_ip": "disassociateIpAddress",
        "network": "deleteNetwork",
    }

    def _destroy_kind(self, kind: str) -> None:
        recorded = self._recorded(kind)
        if kind == "ssh_keypair":
            for name in recorded:
                try:
                    self.client.call("deleteSSHKeyPair", name=name)
                except ApiCallError as exc:
                    if exc.errorcode != 431:
                        raise
                self._forget(kind, name)
            return
        targets = dict(recorded)
        if kind == "vm":
            # Also VMs of the cluster that a killed run deployed but could not record.
            for rid, data in self._recorded("network").items():
                if data.get("owned"):
                    try:
                        for vm in self._cluster_vms(rid).values():
                            targets.setdefault(str(vm["id"]), {"name": vm["name"]})
                    except ApiCallError as exc:
                        if not exc.not_found:
                            raise
        if kind == "public_ip":
            targets = {rid: d for rid, d in targets.items() if d.get("release")}
            for rid in set(recorded) - set(targets):
                self._forget(kind, rid)
        if kind == "network":
            targets = {rid: d for rid, d in targets.items() if d.get("owned")}
            for rid in set(recorded) - set(targets):
                self._forget(kind, rid)
        jobs: list[tuple[str, Job]] = []
        for rid, data in targets.items():
            params: dict[str, Any] = self._destroy_params(rid) if kind == "vm" else {"id": rid}
            try:
                jobs.append(
                    (rid, self.client.submit(self._DELETE[kind], f"{kind} {data.get('name', rid)}", **params))
                )
            except ApiCallError as exc:
                if not exc.not_found:
                    raise
                self._forget(kind, rid)
        if not jobs:
            return
        self.ctx.report(f"removing {len(jobs)} {kind.replace('_', ' ')}(s)")
        self.client.wait(
            [j for _, j in jobs], f"removal of {kind.replace('_', ' ')}s", raise_on_failure=False
        )
        if kind == "vm":
            jobs = self._without_expunge(jobs)
        failed = []
        for rid, job in jobs:
            if job.error is None or job.error.not_found:
                self._forget(kind, rid)
            else:
                failed.append(f"{job.label}: {job.error.errortext}")
        if failed:
            hint = ""
            # CloudStack only logs why a network cannot go ("not all user vms are expunged"); the
            # job says "Failed to delete network" (DeleteNetworkCmd.execute).
            unexpunged = self._unexpunged or not self.may_expunge
            if kind == "network" and unexpunged and any("Failed to delete network" in f for f in failed):
                hint = (
                    " - its VMs are destroyed but not expunged yet (this account may not expunge VMs: "
                    "allow.user.expunge.recover.vm is false or its role lacks expungeVirtualMachine); "
                    "run delete again after the "
                    "cloud's expunge interval, or ask an administrator to expunge them"
                )
            raise OperationError(
                f"could not remove {len(failed)} {kind.replace('_', ' ')}(s): " + "; ".join(failed) + hint
            )


def _has_tag(obj: dict[str, Any], key: str, value: str) -> bool:
    return any(t.get("key") == key and t.get("value") == value for t in obj.get("tags") or [])
