"""The API server double's resource table: discovery documents, defaults and Table columns.

One entry per served resource, as upstream registers it (group, version, plural, kind, scope,
short names, verbs, subresources). Sources:
- discovery shapes: kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go
  (APIVersions, APIGroupList, APIGroup, APIResourceList, APIResource);
- short names and scope: each resource's pkg/registry/<group>/<resource>/storage/storage.go
  (ShortNames(), NamespaceScoped());
- Table columns: pkg/printers/internalversion/printers.go (AddHandlers) and the default
  staging/src/k8s.io/apiserver/pkg/registry/rest/table.go (Name, Created At).

Stdlib only: shipped inside the doubles' zipapp.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(VERBS)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def base(self, namespace: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


_ALL = ("all",)
RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",), ("status", "finalize")),
    Resource("", "v1", "nodes", "Node", False, ("no",), ("status", "proxy")),
    Resource("", "v1", "pods", "Pod", True, ("po",), ("status", "eviction", "binding", "log"), _ALL),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), ("token",)),
    Resource("", "v1", "services", "Service", True, ("svc",), ("status", "proxy"), _ALL),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), ("status",)),
    Resource("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), ("status",)),
    Resource("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    Resource("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",), _ALL),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale"), _ALL),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale"), _ALL),
    Resource("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale"), _ALL),
    Resource("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)),
    Resource(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        False,
        ("csr",),
        ("status", "approval"),
    ),
    Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    Resource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        ("status",),
    ),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
)

BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND: dict[tuple[str, str], Resource] = {(r.group_version, r.kind): r for r in RESOURCES}


def groups() -> list[tuple[str, str]]:
    """(group, version) in registration order, core first."""
    return list(dict.fromkeys((r.group, r.version) for r in RESOURCES))


# --- discovery ---------------------------------------------------------------------------


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list() -> dict[str, Any]:
    out = []
    for g, v in groups():
        if not g:
            continue
        gv = {"groupVersion": f"{g}/{v}", "version": v}
        out.append({"name": g, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}


def api_group(group: str) -> dict[str, Any] | None:
    versions = [v for g, v in groups() if g == group]
    if not versions:
        return None
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": gvs,
        "preferredVersion": gvs[0],
    }


def _sub_entry(r: Resource, sub: str) -> dict[str, Any]:
    # pods/eviction is a policy/v1 Eviction (pkg/registry/core/pod/storage/eviction.go GroupVersionKind).
    kinds = {
        "eviction": ("policy", "v1", "Eviction", ["create"]),
        "scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
        "token": ("authentication.k8s.io", "v1", "TokenRequest", ["create"]),
        "binding": ("", "", "Binding", ["create"]),
        "log": ("", "", "Pod", ["get"]),
        "proxy": (
            "",
            "",
            "NodeProxyOptions" if r.plural == "nodes" else "ServiceProxyOptions",
            ["create", "delete", "get", "patch", "update"],
        ),
        "finalize": ("", "", "Namespace", ["update"]),
        "approval": ("", "", r.kind, ["get", "patch", "update"]),
    }
    g, v, kind, verbs = kinds.get(sub, ("", "", r.kind, ["get", "patch", "update"]))
    entry: dict[str, Any] = {
        "name": f"{r.plural}/{sub}",
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": kind,
        "verbs": verbs,
    }
    if g:
        entry["group"], entry["version"] = g, v
    return entry


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    rs = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not rs:
        return None
    out: list[dict[str, Any]] = []
    for r in rs:
        e: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short:
            e["shortNames"] = list(r.short)
        if r.categories:
            e["categories"] = list(r.categories)
        out.append(e)
        out.extend(_sub_entry(r, s) for s in r.subresources)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": rs[0].group_version,
        "resources": out,
    }


# --- OpenAPI v3 ------------------------------------------------------------------------
# kubectl decides whether the server validates fields itself (?fieldValidation=Strict) from the
# PATCH operation of the resource's path in /openapi/v3 (staging/src/k8s.io/cli-runtime/pkg/
# resource/query_param_verifier_v3.go supportsQueryParamV3: x-kubernetes-group-version-kind +
# a "fieldValidation" query parameter). Only that much of each document is served.


def openapi_v3_root() -> dict[str, Any]:
    paths = {}
    for g, v in groups():
        key = f"apis/{g}/{v}" if g else f"api/{v}"
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash=koral-double-{g or 'core'}-{v}"}
    return {"paths": paths}


def openapi_v3_doc(group: str, version: str) -> dict[str, Any] | None:
    rs = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not rs:
        return None
    paths: dict[str, Any] = {}
    params = [
        {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for n in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    for r in rs:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        item = r.base("{namespace}") + "/{name}"
        paths[item] = {
            "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk},
            "patch": {
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "koral-double"},
        "paths": paths,
        "components": {"schemas": {}},
    }


# --- Table (meta.k8s.io/v1) --------------------------------------------------------------


def age(ts: str | None, now: _dt.datetime | None = None) -> str:
    """duration.HumanDuration of the time since ts (staging/src/k8s.io/apimachinery/pkg/util/duration)."""
    if not ts:
        return "<unknown>"
    t = _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.UTC)
    s = int(((now or _dt.datetime.now(_dt.UTC)) - t).total_seconds())
    if s < -1:
        return "<invalid>"
    s = max(s, 0)
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if h < 24 * 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": typ, "format": fmt, "description": "", "priority": priority}


def _node_row(n: dict[str, Any]) -> list[Any]:
    md, st = n["metadata"], n.get("status") or {}
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = (
        "Unknown"
        if ready is None
        else {"True": "Ready", "False": "NotReady"}.get(ready.get("status"), "Unknown")
    )
    if (n.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(
        k.split("/", 1)[1] for k in (md.get("labels") or {}) if k.startswith("node-role.kubernetes.io/")
    )
    info = st.get("nodeInfo") or {}
    addr = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    return [
        md["name"],
        status,
        ",".join(roles) or "<none>",
        age(md.get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addr.get("InternalIP", "<none>"),
        addr.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _pod_row(p: dict[str, Any]) -> list[Any]:
    md, spec, st = p["metadata"], p.get("spec") or {}, p.get("status") or {}
    cs = st.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    reason = st.get("reason") or st.get("phase") or "Pending"
    if md.get("deletionTimestamp"):
        reason = "Terminating"
    return [
        md["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restarts,
        age(md.get("creationTimestamp")),
        st.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _selector(sel: dict[str, Any] | None) -> str:
    ml = (sel or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in ml.items()) or "<none>"


def _images(obj: dict[str, Any]) -> tuple[str, str]:
    cs = ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _ds_row(d: dict[str, Any]) -> list[Any]:
    st, spec = d.get("status") or {}, d.get("spec") or {}
    ns = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [
        d["metadata"]["name"],
        st.get("desiredNumberScheduled", 0),
        st.get("currentNumberScheduled", 0),
        st.get("numberReady", 0),
        st.get("updatedNumberScheduled", 0),
        st.get("numberAvailable", 0),
        ",".join(f"{k}={v}" for k, v in ns.items()) or "<none>",
        age(d["metadata"].get("creationTimestamp")),
        *_images(d),
        _selector(spec.get("selector")),
    ]


def _deploy_row(d: dict[str, Any]) -> list[Any]:
    st, spec = d.get("status") or {}, d.get("spec") or {}
    return [
        d["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        age(d["metadata"].get("creationTimestamp")),
        *_images(d),
        _selector(spec.get("selector")),
    ]


def _rs_row(d: dict[str, Any]) -> list[Any]:
    st, spec = d.get("status") or {}, d.get("spec") or {}
    return [
        d["metadata"]["name"],
        spec.get("replicas", 0),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        age(d["metadata"].get("creationTimestamp")),
        *_images(d),
        _selector(spec.get("selector")),
    ]


def _svc_row(s: dict[str, Any]) -> list[Any]:
    spec = s.get("spec") or {}
    lb = ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ext = ",".join(i.get("ip") or i.get("hostname") or "" for i in lb) or (
        "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    )
    ports = (
        ",".join(
            f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
            f"/{p.get('protocol', 'TCP')}"
            for p in spec.get("ports") or []
        )
        or "<none>"
    )
    return [
        s["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        ext,
        ports,
        age(s["metadata"].get("creationTimestamp")),
        ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>",
    ]


TABLES: dict[str, tuple[list[dict[str, Any]], Any]] = {
    "nodes": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Roles"),
            _col("Age"),
            _col("Version"),
            _col("Internal-IP", priority=1),
            _col("External-IP", priority=1),
            _col("OS-Image", priority=1),
            _col("Kernel-Version", priority=1),
            _col("Container-Runtime", priority=1),
        ],
        _node_row,
    ),
    "pods": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "string"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
            _col("Nominated Node", priority=1),
            _col("Readiness Gates", priority=1),
        ],
        _pod_row,
    ),
    "daemonsets": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Node Selector"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _ds_row,
    ),
    "deployments": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _deploy_row,
    ),
    "replicasets": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _rs_row,
    ),
    "services": (
        [
            _col("Name", fmt="name"),
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _col("Age"),
            _col("Selector", priority=1),
        ],
        _svc_row,
    ),
    "namespaces": (
        [_col("Name", fmt="name"), _col("Status"), _col("Age")],
        lambda o: [
            o["metadata"]["name"],
            (o.get("status") or {}).get("phase", "Active"),
            age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "configmaps": (
        [_col("Name", fmt="name"), _col("Data", "integer"), _col("Age")],
        lambda o: [
            o["metadata"]["name"],
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "secrets": (
        [_col("Name", fmt="name"), _col("Type"), _col("Data", "integer"), _col("Age")],
        lambda o: [
            o["metadata"]["name"],
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "serviceaccounts": (
        [_col("Name", fmt="name"), _col("Secrets", "integer"), _col("Age")],
        lambda o: [
            o["metadata"]["name"],
            len(o.get("secrets") or []),
            age(o["metadata"].get("creationTimestamp")),
        ],
    ),
}

DEFAULT_TABLE = (
    [_col("Name", fmt="name"), _col("Age")],
    lambda o: [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"))],
)


def table(plural: str, items: list[dict[str, Any]], resource_version: str, include: str) -> dict[str, Any]:
    cols, row = TABLES.get(plural, DEFAULT_TABLE)
    rows = []
    for o in items:
        if include == "None":
            obj = None
        elif include == "Object":
            obj = o
        else:
            obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
        rows.append({"cells": row(o), "object": obj})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": cols,
        "rows": rows,
    }
