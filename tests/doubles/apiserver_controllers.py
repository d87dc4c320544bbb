"""What kube-controller-manager, kube-scheduler and (for pods) the kubelet would do, played inside
the API server double. No container runs anywhere: this is the pretended part, kept small.

- defaults on create: pkg/apis/apps/v1/defaults.go (DaemonSet updateStrategy RollingUpdate,
  Deployment replicas 1 / RollingUpdate 25% / revisionHistoryLimit 10 / progressDeadlineSeconds 600),
  pkg/apis/core/v1/defaults.go (Service type ClusterIP, protocol TCP, targetPort = port,
  sessionAffinity None; Pod restartPolicy Always, schedulerName default-scheduler, serviceAccountName
  default, dnsPolicy ClusterFirst);
- Service IPs: pkg/registry/core/service/ipallocator (first address of --service-cluster-ip-range is
  the "kubernetes" Service, pkg/controlplane/controller/kubernetesservice) and portallocator
  (--service-node-port-range, default 30000-32767);
- DaemonSet: one pod per eligible node (nodeSelector, taints tolerated; the controller adds the
  not-ready/unreachable/unschedulable tolerations: pkg/controller/daemon/util/daemonset_util.go);
  status desired/current/updated/ready/available (pkg/controller/daemon/daemon_controller.go
  updateDaemonSetStatus);
- Deployment -> ReplicaSet named <deployment>-<pod-template-hash> -> pods (pkg/controller/deployment,
  pkg/controller/replicaset), status replicas/updated/ready/available and the Available/Progressing
  conditions (pkg/controller/deployment/util/deployment_util.go);
- scheduler: a pod goes to the schedulable, Ready node with the fewest pods whose taints it tolerates
  and whose labels match its nodeSelector;
- "kubelet": a pod bound to a node whose kubelet posts status is Running and Ready once the node is
  Ready (hostNetwork pods at once, like the CNI pods); pods of deleted nodes are garbage collected
  (pkg/controller/podgc), dependents of deleted owners too (pkg/controller/garbagecollector);
- node lifecycle: a node whose kubelet stopped posting status for 40 s (--node-monitor-grace-period)
  gets Ready=Unknown "Kubelet stopped posting node status." (pkg/controller/nodelifecycle).
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import secrets
import time
from typing import Any

try:
    from . import apiserver_resources as res
    from . import apiserver_store as st
except ImportError:
    import apiserver_resources as res  # type: ignore[no-redef]
    import apiserver_store as st  # type: ignore[no-redef]

R = {r.plural: r for r in res.RESOURCES}
HEARTBEAT_GRACE = 40.0
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_hash(data: Any, n: int = 10) -> str:
    """A stable k8s-style hash (rand.SafeEncodeString alphabet) of a template."""
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in h[:n])


def _rand(n: int = 5) -> str:
    return "".join(secrets.choice(_HASH_ALPHABET) for _ in range(n))


# --- defaults ----------------------------------------------------------------------------


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        if "imagePullPolicy" not in c:
            img = str(c.get("image", ""))
            c["imagePullPolicy"] = (
                "Always" if img.endswith(":latest") or ":" not in img.rsplit("/", 1)[-1] else "IfNotPresent"
            )
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")


def defaults(r: res.Resource, obj: dict[str, Any]) -> None:
    spec = (
        obj.setdefault("spec", {})
        if r.plural in ("daemonsets", "deployments", "replicasets", "services", "pods", "statefulsets")
        else obj.get("spec")
    )
    if r.plural in ("daemonsets", "deployments", "replicasets", "statefulsets"):
        assert spec is not None
        spec.setdefault("revisionHistoryLimit", 10)
        tmpl = spec.setdefault("template", {})
        tmpl.setdefault("metadata", {})
        _default_pod_spec(tmpl.setdefault("spec", {}))
        if r.plural == "daemonsets":
            us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
            if us.get("type", "RollingUpdate") == "RollingUpdate":
                us["type"] = "RollingUpdate"
                us.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
        if r.plural in ("deployments", "replicasets", "statefulsets"):
            spec.setdefault("replicas", 1)
        if r.plural == "deployments":
            strat = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strat.get("type", "RollingUpdate") == "RollingUpdate":
                strat["type"] = "RollingUpdate"
                strat.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
            spec.setdefault("progressDeadlineSeconds", 600)
    elif r.plural == "pods":
        assert spec is not None
        _default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
    elif r.plural == "services":
        assert spec is not None
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})
    elif r.plural == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
    elif r.plural == "secrets":
        obj.setdefault("type", "Opaque")


def validate(r: res.Resource, obj: dict[str, Any]) -> None:
    """The validation of pkg/apis/apps/validation (ValidateDaemonSetSpec, ValidateDeploymentSpec,
    ValidateReplicaSetSpec) and pkg/apis/core/validation (ValidatePodSpec: containers) that
    manifests trip over: a selector that selects the template's labels, and containers."""
    if r.plural not in ("daemonsets", "deployments", "replicasets", "statefulsets", "pods"):
        return
    spec = obj.get("spec") or {}
    causes: list[tuple[str, str]] = []
    if r.plural == "pods":
        if not spec.get("containers"):
            causes.append(("spec.containers", "Required value"))
    else:
        sel = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append(("spec.selector", "Required value"))
            causes.append(
                (
                    "spec.selector",
                    'Invalid value: "null": empty selector is invalid for deployment'
                    if r.plural == "deployments"
                    else 'Invalid value: "null": empty selector is invalid',
                )
            )
        elif not st.match_label_selector(sel, labels):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
                )
            )
        if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
            causes.append(("spec.template.spec.containers", "Required value"))
    if causes:
        raise st.invalid(r, obj["metadata"].get("name", ""), causes)


# --- Service IP and NodePort allocation --------------------------------------------------


class Allocator:
    def __init__(self, store: st.Store, cidr: str, node_ports: str) -> None:
        self.store = store
        self.net = ipaddress.ip_network(cidr, strict=False)
        lo, _, hi = node_ports.partition("-")
        self.ports = (int(lo), int(hi or lo))

    def _used(self) -> tuple[set[str], set[int]]:
        ips, ports = set(), set()
        for s in self.store.list(R["services"]):
            sp = s.get("spec") or {}
            ips.update(i for i in sp.get("clusterIPs") or [sp.get("clusterIP")] if i and i != "None")
            ports.update(int(p["nodePort"]) for p in sp.get("ports") or [] if p.get("nodePort"))
            if needs_health_check(s) and sp.get("healthCheckNodePort"):
                ports.add(int(sp["healthCheckNodePort"]))
        return ips, ports

    def allocate(self, svc: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        spec, name = svc["spec"], svc["metadata"]["name"]
        r = R["services"]
        ips, ports = self._used()
        if old is not None:
            osp = old.get("spec") or {}
            ips -= set(osp.get("clusterIPs") or [osp.get("clusterIP")])
            ports -= {int(p["nodePort"]) for p in osp.get("ports") or [] if p.get("nodePort")}
            ports.discard(int(osp.get("healthCheckNodePort") or 0))
            if osp.get("clusterIP") and not spec.get("clusterIP"):
                spec["clusterIP"] = osp["clusterIP"]
            elif osp.get("clusterIP") and spec.get("clusterIP") != osp.get("clusterIP"):
                raise st.invalid(r, name, [("spec.clusterIPs[0]", "Invalid value: field is immutable")])
        ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName":
            ip = None
        elif ip == "None":
            pass
        elif ip:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                raise st.invalid(
                    r, name, [("spec.clusterIPs[0]", f'Invalid value: "{ip}": must be a valid IP address')]
                ) from None
            if addr not in self.net:
                raise st.invalid(
                    r,
                    name,
                    [
                        (
                            "spec.clusterIPs",
                            f'Invalid value: []string{{"{ip}"}}: failed to '
                            f"allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                            f"The range of valid IPs is {self.net}",
                        )
                    ],
                )
            if ip in ips:
                raise st.invalid(
                    r,
                    name,
                    [
                        (
                            "spec.clusterIPs",
                            f'Invalid value: []string{{"{ip}"}}: failed to '
                            f"allocate IP {ip}: provided IP is already allocated",
                        )
                    ],
                )
        else:
            hosts = self.net.hosts()
            next(hosts)  # the first address is the kubernetes Service's
            ip = next((str(h) for h in hosts if str(h) not in ips), None)
            if ip is None:
                raise st.internal_error("failed to allocate a serviceIP: range is full")
        if ip:
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
            if ip != "None":
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec.get("type") in ("NodePort", "LoadBalancer") and spec.get(
            "allocateLoadBalancerNodePorts", True
        ):
            for i, p in enumerate(spec.get("ports") or []):
                want = p.get("nodePort")
                if want:
                    if not self.ports[0] <= int(want) <= self.ports[1]:
                        raise st.invalid(
                            r,
                            name,
                            [
                                (
                                    f"spec.ports[{i}].nodePort",
                                    f"Invalid value: {want}: provided "
                                    f"port is not in the valid range. The range of valid ports is "
                                    f"{self.ports[0]}-{self.ports[1]}",
                                )
                            ],
                        )
                    if int(want) in ports:
                        raise st.invalid(
                            r,
                            name,
                            [
                                (
                                    f"spec.ports[{i}].nodePort",
                                    f"Invalid value: {want}: provided port is already allocated",
                                )
                            ],
                        )
                else:
                    want = next((q for q in range(self.ports[0], self.ports[1] + 1) if q not in ports), None)
                    if want is None:
                        raise st.internal_error("failed to allocate a nodePort: range is full")
                    p["nodePort"] = want
                ports.add(int(want))
        elif spec.get("type") == "ClusterIP":
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
        self._health_check_node_port(svc, old, ports)

    def _health_check_node_port(
        self, svc: dict[str, Any], old: dict[str, Any] | None, ports: set[int]
    ) -> None:
        """``spec.healthCheckNodePort``, which kube-proxy serves and a cloud load balancer probes for a
        LoadBalancer Service with ``externalTrafficPolicy: Local``: allocated from the node port range
        (pkg/registry/core/service/storage/alloc.go ``allocHealthCheckNodePort``,
        ``updateHealthCheckNodePort``), kept on update when left out (storage/rest.go
        ``patchAllocatedValues``), dropped when no longer needed and not changed
        (``dropTypeDependentFields``), validated (pkg/apis/core/validation
        ``validateServiceExternalTrafficPolicy``, ``validateServiceExternalTrafficFieldsUpdate``)."""
        spec, name, r = svc["spec"], svc["metadata"]["name"], R["services"]
        want = int(spec.get("healthCheckNodePort") or 0)
        before = int(((old or {}).get("spec") or {}).get("healthCheckNodePort") or 0)
        needed = old is not None and needs_health_check(old)
        if not needs_health_check(svc):
            if needed and want == before:
                spec.pop("healthCheckNodePort", None)
            elif want:
                raise st.invalid(
                    r,
                    name,
                    [
                        (
                            "spec.healthCheckNodePort",
                            f"Invalid value: {want}: may only be set when `type` is 'LoadBalancer' "
                            "and `externalTrafficPolicy` is 'Local'",
                        )
                    ],
                )
            return
        if needed:
            if want == 0:
                spec["healthCheckNodePort"] = before
            elif want != before:
                raise st.invalid(
                    r, name, [("spec.healthCheckNodePort", f"Invalid value: {want}: field is immutable")]
                )
            return
        if want:
            if not self.ports[0] <= want <= self.ports[1]:
                why = (
                    "provided port is not in the valid range. The range of valid ports is "
                    f"{self.ports[0]}-{self.ports[1]}"
                )
            elif want in ports:
                why = "provided port is already allocated"
            else:
                ports.add(want)
                return
            raise st.internal_error(f"failed to allocate requested HealthCheck NodePort {want}: {why}")
        free = next((q for q in range(self.ports[0], self.ports[1] + 1) if q not in ports), None)
        if free is None:
            raise st.internal_error("failed to allocate a HealthCheck NodePort 0: range is full")
        spec["healthCheckNodePort"] = free
        ports.add(free)


def needs_health_check(svc: dict[str, Any]) -> bool:
    """pkg/api/service/util.go ``NeedsHealthCheck``: a LoadBalancer Service with
    ``externalTrafficPolicy: Local``."""
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


# --- the controllers ---------------------------------------------------------------------


def _tolerates(tols: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tols:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") != taint.get("key"):
            continue
        if t.get("operator") == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def node_ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def _fits(pod_spec: dict[str, Any], node: dict[str, Any], extra_tols: list[dict[str, Any]]) -> bool:
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    tols = (pod_spec.get("tolerations") or []) + extra_tols
    return all(
        _tolerates(tols, t)
        for t in (node.get("spec") or {}).get("taints") or []
        if t.get("effect") in ("NoSchedule", "NoExecute")
    )


_DS_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
]


def _owner(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _controlled_by(obj: dict[str, Any], uid: str) -> bool:
    return any(
        o.get("uid") == uid and o.get("controller") for o in obj["metadata"].get("ownerReferences") or []
    )


class Controllers:
    def __init__(self, store: st.Store) -> None:
        self.store = store

    # helpers ----------------------------------------------------------------------
    def _put(self, plural: str, obj: dict[str, Any]) -> None:
        r = R[plural]
        cur = self.store.get(r, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if cur is None:
            self.store.create(r, obj)
        elif cur != obj:
            self.store.update(r, obj)

    def heartbeat_age(self, node: str) -> float:
        hb = (self.store.side.get("heartbeats") or {}).get(node)
        return time.time() - hb if hb else 1e9

    def _new_pod(
        self,
        owner: dict[str, Any],
        kind: str,
        name: str,
        template: dict[str, Any],
        node: str | None,
        extra_labels: dict[str, str],
    ) -> dict[str, Any]:
        tmpl = copy.deepcopy(template)
        md = tmpl.get("metadata") or {}
        spec = tmpl.get("spec") or {}
        spec.setdefault("serviceAccountName", "default")
        if node:
            spec["nodeName"] = node
        if kind == "DaemonSet":
            spec["tolerations"] = (spec.get("tolerations") or []) + [
                t for t in _DS_TOLERATIONS if t not in (spec.get("tolerations") or [])
            ]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": owner["metadata"]["namespace"],
                "labels": {**(md.get("labels") or {}), **extra_labels},
                **({"annotations": md["annotations"]} if md.get("annotations") else {}),
                "ownerReferences": [_owner(owner, kind)],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }

    # one pass -----------------------------------------------------------------------
    def reconcile(self) -> None:
        self._namespaces()
        self._nodes()
        self._gc()
        self._daemonsets()
        self._deployments()
        self._replicasets()
        self._schedule_and_run()
        self._rollup()

    def _namespaces(self) -> None:
        for ns in SYSTEM_NAMESPACES:
            if self.store.get(R["namespaces"], None, ns) is None:
                obj = {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                }
                defaults(R["namespaces"], obj)
                self.store.create(R["namespaces"], obj)
        for ns in self.store.list(R["namespaces"]):
            name = ns["metadata"]["name"]
            if self.store.get(R["serviceaccounts"], name, "default") is None:
                self.store.create(
                    R["serviceaccounts"],
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {"name": "default", "namespace": name},
                    },
                )

    def _nodes(self) -> None:
        for n in self.store.list(R["nodes"]):
            if self.heartbeat_age(n["metadata"]["name"]) <= HEARTBEAT_GRACE:
                continue
            conds = (n.get("status") or {}).get("conditions") or []
            ready = next((c for c in conds if c.get("type") == "Ready"), None)
            if ready is not None and ready.get("status") == "Unknown":
                continue
            now = st.now_rfc3339()
            new = {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": (ready or {}).get("lastHeartbeatTime", now),
                "lastTransitionTime": now,
            }
            n.setdefault("status", {})["conditions"] = [c for c in conds if c.get("type") != "Ready"] + [new]
            self.store.update(R["nodes"], n)

    def kubelet_conditions(self, node: dict[str, Any]) -> None:
        """A node whose kubelet posted no Ready condition: Unknown, as the node lifecycle controller
        marks it (pkg/controller/nodelifecycle/node_lifecycle_controller.go, "Kubelet never posted
        node status."). Readiness itself is only what the kubelet posts (the kubelet double decides
        NetworkReady from the node's CNI config, as real kubelets do)."""
        now = st.now_rfc3339()
        conds = (node.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" for c in conds):
            return
        node.setdefault("status", {})["conditions"] = [
            *conds,
            {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusNeverUpdated",
                "message": "Kubelet never posted node status.",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            },
        ]

    def _gc(self) -> None:
        uids = {
            o["metadata"]["uid"]
            for plural in ("daemonsets", "deployments", "replicasets", "statefulsets")
            for o in self.store.list(R[plural])
        }
        nodes = {n["metadata"]["name"] for n in self.store.list(R["nodes"])}
        for plural in ("replicasets", "pods"):
            for o in self.store.list(R[plural]):
                refs = [x for x in o["metadata"].get("ownerReferences") or [] if x.get("controller")]
                orphan = (
                    refs
                    and refs[0].get("kind") in ("DaemonSet", "Deployment", "ReplicaSet", "StatefulSet")
                    and refs[0].get("uid") not in uids
                )
                lost = (
                    plural == "pods"
                    and (o.get("spec") or {}).get("nodeName")
                    and o["spec"]["nodeName"] not in nodes
                )
                if orphan or lost:
                    self.store.delete(R[plural], o["metadata"]["namespace"], o["metadata"]["name"])

    def _daemonsets(self) -> None:
        nodes = self.store.list(R["nodes"])
        pods = self.store.list(R["pods"])
        for ds in self.store.list(R["daemonsets"]):
            uid, spec = ds["metadata"]["uid"], ds["spec"]
            tmpl = spec.get("template") or {}
            rev = safe_hash(tmpl)
            mine = [p for p in pods if _controlled_by(p, uid)]
            want = {n["metadata"]["name"] for n in nodes if _fits(tmpl.get("spec") or {}, n, _DS_TOLERATIONS)}
            for p in mine:
                node = p["spec"].get("nodeName")
                if node not in want or p["metadata"].get("labels", {}).get("controller-revision-hash") != rev:
                    self.store.delete(R["pods"], p["metadata"]["namespace"], p["metadata"]["name"])
            have = {
                p["spec"].get("nodeName")
                for p in self.store.list(R["pods"], ds["metadata"]["namespace"])
                if _controlled_by(p, uid)
            }
            for node in sorted(want - have):
                self.store.create(
                    R["pods"],
                    self._new_pod(
                        ds,
                        "DaemonSet",
                        f"{ds['metadata']['name']}-{_rand()}",
                        tmpl,
                        node,
                        {
                            "controller-revision-hash": rev,
                            "pod-template-generation": str(ds["metadata"].get("generation", 1)),
                        },
                    ),
                )

    def _deployments(self) -> None:
        rss = self.store.list(R["replicasets"])
        for d in self.store.list(R["deployments"]):
            uid, spec = d["metadata"]["uid"], d["spec"]
            tmpl = copy.deepcopy(spec.get("template") or {})
            h = safe_hash(tmpl)
            tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            name = f"{d['metadata']['name']}-{h}"
            mine = [r for r in rss if _controlled_by(r, uid)]
            for r in mine:
                if r["metadata"]["name"] != name and r["spec"].get("replicas"):
                    r["spec"]["replicas"] = 0
                    self.store.update(R["replicasets"], r)
            cur = next((r for r in mine if r["metadata"]["name"] == name), None)
            sel = copy.deepcopy(spec.get("selector") or {})
            sel.setdefault("matchLabels", {})["pod-template-hash"] = h
            if cur is None:
                rs = {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": name,
                        "namespace": d["metadata"]["namespace"],
                        "labels": tmpl["metadata"]["labels"],
                        "ownerReferences": [_owner(d, "Deployment")],
                        "annotations": {"deployment.kubernetes.io/revision": "1"},
                    },
                    "spec": {"replicas": spec.get("replicas", 1), "selector": sel, "template": tmpl},
                }
                defaults(R["replicasets"], rs)
                self.store.create(R["replicasets"], rs)
            elif cur["spec"].get("replicas") != spec.get("replicas", 1):
                cur["spec"]["replicas"] = spec.get("replicas", 1)
                self.store.update(R["replicasets"], cur)

    def _replicasets(self) -> None:
        pods = self.store.list(R["pods"])
        for rs in self.store.list(R["replicasets"]):
            uid = rs["metadata"]["uid"]
            mine = [p for p in pods if _controlled_by(p, uid)]
            want = int(rs["spec"].get("replicas", 1))
            for p in mine[want:]:
                self.store.delete(R["pods"], p["metadata"]["namespace"], p["metadata"]["name"])
            h = (rs["spec"].get("template", {}).get("metadata", {}).get("labels") or {}).get(
                "pod-template-hash", ""
            )
            for _ in range(want - len(mine)):
                self.store.create(
                    R["pods"],
                    self._new_pod(
                        rs,
                        "ReplicaSet",
                        f"{rs['metadata']['name']}-{_rand()}",
                        rs["spec"].get("template") or {},
                        None,
                        {"pod-template-hash": h} if h else {},
                    ),
                )

    def _schedule_and_run(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.store.list(R["nodes"])}
        pods = self.store.list(R["pods"])
        load: dict[str, int] = {n: 0 for n in nodes}
        for p in pods:
            if p["spec"].get("nodeName") in load:
                load[p["spec"]["nodeName"]] += 1
        for p in pods:
            spec = p["spec"]
            if not spec.get("nodeName"):
                fit = [
                    n
                    for n in nodes.values()
                    if not (n.get("spec") or {}).get("unschedulable") and node_ready(n) and _fits(spec, n, [])
                ]
                if not fit:
                    cond = {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": f"0/{len(nodes)} nodes are available.",
                    }
                    if (p.get("status") or {}).get("conditions") != [cond]:
                        p["status"] = {"phase": "Pending", "qosClass": "BestEffort", "conditions": [cond]}
                        self.store.update(R["pods"], p)
                    continue
                best = min(fit, key=lambda n: (load[n["metadata"]["name"]], n["metadata"]["name"]))
                spec["nodeName"] = best["metadata"]["name"]
                load[spec["nodeName"]] += 1
            node = nodes.get(spec["nodeName"])
            if node is None:
                continue
            alive = self.heartbeat_age(spec["nodeName"]) <= HEARTBEAT_GRACE
            running = alive and (spec.get("hostNetwork") or node_ready(node))
            status = copy.deepcopy(p.get("status") or {})
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            if running and (status.get("phase") != "Running" or not pod_ready):
                ip = next(
                    (
                        a["address"]
                        for a in (node.get("status") or {}).get("addresses") or []
                        if a.get("type") == "InternalIP"
                    ),
                    "",
                )
                now = st.now_rfc3339()
                status = {
                    "phase": "Running",
                    "qosClass": "BestEffort",
                    "hostIP": ip,
                    "startTime": now,
                    "podIP": ip if spec.get("hostNetwork") else "",
                    "conditions": [
                        {"type": t, "status": "True", "lastTransitionTime": now}
                        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                    ],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c.get("image", ""),
                            "imageID": "",
                            "containerID": "",
                            "ready": True,
                            "started": True,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": now}},
                        }
                        for c in spec.get("containers") or []
                    ],
                }
                if not status["podIP"]:
                    status.pop("podIP")
            elif not running and status.get("phase") == "Running":
                for c in status.get("conditions") or []:
                    if c["type"] in ("Ready", "ContainersReady"):
                        c["status"] = "False"
                for c in status.get("containerStatuses") or []:
                    c["ready"] = False
            elif not running and status.get("phase") != "Running":
                status = {
                    "phase": "Pending",
                    "qosClass": "BestEffort",
                    "conditions": [{"type": "PodScheduled", "status": "True"}],
                }
            if status != p.get("status") or spec is not p["spec"]:
                p["status"] = status
                self.store.update(R["pods"], p)

    def _rollup(self) -> None:
        pods = self.store.list(R["pods"])
        nodes = self.store.list(R["nodes"])

        def ready(p: dict[str, Any]) -> bool:
            return any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )

        for ds in self.store.list(R["daemonsets"]):
            uid = ds["metadata"]["uid"]
            tmpl = ds["spec"].get("template") or {}
            rev = safe_hash(tmpl)
            mine = [p for p in pods if _controlled_by(p, uid)]
            desired = sum(1 for n in nodes if _fits(tmpl.get("spec") or {}, n, _DS_TOLERATIONS))
            upd = [p for p in mine if p["metadata"].get("labels", {}).get("controller-revision-hash") == rev]
            nready = sum(1 for p in mine if ready(p))
            status = {
                "currentNumberScheduled": len(mine),
                "desiredNumberScheduled": desired,
                "numberMisscheduled": 0,
                "numberReady": nready,
                "updatedNumberScheduled": len(upd),
                "numberAvailable": sum(1 for p in upd if ready(p)),
                "observedGeneration": ds["metadata"].get("generation", 1),
            }
            if desired - status["numberAvailable"] > 0:
                status["numberUnavailable"] = desired - status["numberAvailable"]
            if ds.get("status") != status:
                ds["status"] = status
                self.store.update(R["daemonsets"], ds)
        rss = self.store.list(R["replicasets"])
        for rs in rss:
            mine = [p for p in pods if _controlled_by(p, rs["metadata"]["uid"])]
            n = sum(1 for p in mine if ready(p))
            status = {
                "replicas": len(mine),
                "fullyLabeledReplicas": len(mine),
                "readyReplicas": n,
                "availableReplicas": n,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }
            status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
            if rs.get("status") != status:
                rs["status"] = status
                self.store.update(R["replicasets"], rs)
        rss = self.store.list(R["replicasets"])
        for d in self.store.list(R["deployments"]):
            mine = [r for r in rss if _controlled_by(r, d["metadata"]["uid"])]
            h = safe_hash(d["spec"].get("template") or {})
            new = next((r for r in mine if r["metadata"]["name"] == f"{d['metadata']['name']}-{h}"), None)
            total = sum((r.get("status") or {}).get("replicas", 0) for r in mine)
            avail = sum((r.get("status") or {}).get("availableReplicas", 0) for r in mine)
            rdy = sum((r.get("status") or {}).get("readyReplicas", 0) for r in mine)
            updated = (new.get("status") or {}).get("replicas", 0) if new else 0
            want = int(d["spec"].get("replicas", 1))
            old = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}
            now = st.now_rfc3339()

            def cond(
                typ: str, ok: bool, reason: str, msg: str, old: dict[str, Any] = old, now: str = now
            ) -> dict[str, Any]:
                prev = old.get(typ) or {}
                s = "True" if ok else "False"
                same = prev.get("status") == s and prev.get("reason") == reason
                return {
                    "type": typ,
                    "status": s,
                    "reason": reason,
                    "message": msg,
                    "lastUpdateTime": prev.get("lastUpdateTime", now) if same else now,
                    "lastTransitionTime": prev.get("lastTransitionTime", now)
                    if prev.get("status") == s
                    else now,
                }

            done = new is not None and updated == want and avail >= want and total == updated
            rsname = new["metadata"]["name"] if new else ""
            status: dict[str, Any] = {
                "observedGeneration": d["metadata"].get("generation", 1),
                "replicas": total,
                "updatedReplicas": updated,
                "readyReplicas": rdy,
                "availableReplicas": avail,
                "conditions": [
                    cond(
                        "Available",
                        avail >= want - _max_unavailable(d, want),
                        "MinimumReplicasAvailable"
                        if avail >= want - _max_unavailable(d, want)
                        else "MinimumReplicasUnavailable",
                        "Deployment has minimum availability."
                        if avail >= want - _max_unavailable(d, want)
                        else "Deployment does not have minimum availability.",
                    ),
                    cond(
                        "Progressing",
                        True,
                        "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                        f'ReplicaSet "{rsname}" has successfully progressed.'
                        if done
                        else f'ReplicaSet "{rsname}" is progressing.',
                    ),
                ],
            }
            if total - avail > 0:
                status["unavailableReplicas"] = total - avail
            status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "conditions")}
            if d.get("status") != status:
                d["status"] = status
                self.store.update(R["deployments"], d)


def _max_unavailable(d: dict[str, Any], want: int) -> int:
    ru = ((d["spec"].get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(ru, str) and ru.endswith("%"):
        return int(want * int(ru[:-1]) / 100)
    return int(ru)


def disruption_allowed(store: st.Store, pod: dict[str, Any]) -> bool:
    """PodDisruptionBudgets (policy/v1) that select the pod allow one more disruption
    (pkg/registry/core/pod/storage/eviction.go checkAndDecrement, counted here directly)."""
    labels = pod["metadata"].get("labels") or {}
    ns = pod["metadata"]["namespace"]
    pods = [p for p in store.list(R["pods"], ns)]
    for pdb in store.list(R["poddisruptionbudgets"], ns):
        sel = (pdb.get("spec") or {}).get("selector")
        if not st.match_label_selector(sel, labels):
            continue
        matched = [p for p in pods if st.match_label_selector(sel, p["metadata"].get("labels") or {})]
        healthy = sum(1 for p in matched if (p.get("status") or {}).get("phase") == "Running")
        spec = pdb.get("spec") or {}
        if "minAvailable" in spec:
            need = _abs(spec["minAvailable"], len(matched), up=True)
            if healthy - 1 < need:
                return False
        elif "maxUnavailable" in spec:
            allowed = _abs(spec["maxUnavailable"], len(matched), up=True) - (len(matched) - healthy)
            if allowed < 1:
                return False
    return True


def _abs(v: Any, total: int, up: bool) -> int:
    if isinstance(v, str) and v.endswith("%"):
        x = total * int(v[:-1]) / 100
        return int(-(-x // 1)) if up else int(x)
    return int(v)
