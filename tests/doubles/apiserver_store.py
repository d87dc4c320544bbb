"""The API server double's storage: objects, resourceVersion, watch events, selectors, defaults,
and the error ``Status`` objects clients parse.

Sources (kubernetes/kubernetes):
- errors: staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go (NewNotFound, NewAlreadyExists,
  NewConflict, NewInvalid, NewBadRequest, NewGone/NewResourceExpired, NewForbidden);
- resourceVersion / generation / uid / creationTimestamp: staging/src/k8s.io/apiserver/pkg/registry/
  generic/registry/store.go and pkg/registry/rest/create.go (FillObjectMetaSystemFields);
- watch events: staging/src/k8s.io/apimachinery/pkg/watch (ADDED, MODIFIED, DELETED, BOOKMARK);
- label selectors: staging/src/k8s.io/apimachinery/pkg/labels/selector.go (Parse);
- field selectors: staging/src/k8s.io/apimachinery/pkg/fields/selector.go and the per-resource
  GetAttrs/fieldLabelConversion (pkg/apis/core/v1/conversion.go: pods spec.nodeName, status.phase...).

Stdlib only: shipped inside the doubles' zipapp.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import re
import threading
import uuid
from collections import deque
from pathlib import Path
from typing import Any

try:
    from . import apiserver_resources as res
except ImportError:  # run from the zipapp (top-level modules)
    import apiserver_resources as res  # type: ignore[no-redef]

EVENT_LOG = 10000
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiStatus(Exception):
    """An error answered as a metav1.Status."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def qualified(r: res.Resource) -> str:
    return f"{r.plural}.{r.group}" if r.group else r.plural


def not_found(r: res.Resource, name: str) -> ApiStatus:
    return ApiStatus(
        404,
        "NotFound",
        f'{qualified(r)} "{name}" not found',
        {"name": name, "group": r.group, "kind": r.plural},
    )


def already_exists(r: res.Resource, name: str) -> ApiStatus:
    return ApiStatus(
        409,
        "AlreadyExists",
        f'{qualified(r)} "{name}" already exists',
        {"name": name, "group": r.group, "kind": r.plural},
    )


def conflict(r: res.Resource, name: str, why: str) -> ApiStatus:
    return ApiStatus(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(r)} "{name}": {why}',
        {"name": name, "group": r.group, "kind": r.plural},
    )


def invalid(r: res.Resource, name: str, causes: list[tuple[str, str]]) -> ApiStatus:
    kind = f"{r.kind}.{r.group}" if r.group else r.kind
    text = "; ".join(f"{f}: {m}" for f, m in causes)
    msg = f'{kind} "{name}" is invalid: ' + (f"[{text}]" if len(causes) > 1 else text)
    return ApiStatus(
        422,
        "Invalid",
        msg,
        {
            "name": name,
            "group": r.group,
            "kind": r.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        },
    )


def internal_error(message: str) -> ApiStatus:
    """staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go NewInternalError."""
    return ApiStatus(
        500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
    )


def bad_request(message: str) -> ApiStatus:
    return ApiStatus(400, "BadRequest", message)


# --- selectors ---------------------------------------------------------------------------

_SEL_SPLIT = re.compile(r",(?![^()]*\))")


def parse_label_selector(text: str) -> list[tuple[str, str, list[str]]]:
    out = []
    for part in filter(None, (p.strip() for p in _SEL_SPLIT.split(text or ""))):
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", part)
        if m:
            out.append((m.group(1), m.group(2), [v.strip() for v in m.group(3).split(",") if v.strip()]))
            continue
        m = re.match(r"^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$", part)
        if m:
            out.append((m.group(1), "!=" if m.group(2) == "!=" else "=", [m.group(3)]))
            continue
        m = re.match(r"^(!?)([\w./-]+)$", part)
        if m:
            out.append((m.group(2), "!" if m.group(1) else "exists", []))
            continue
        raise bad_request(
            f"unable to parse requirement: found '{part}', expected: in, notin, =, ==, !=, gt, lt"
        )
    return out


def labels_match(sel: list[tuple[str, str, list[str]]], labels: dict[str, str]) -> bool:
    for key, op, vals in sel:
        has, v = key in labels, labels.get(key)
        if op == "=":
            ok = has and v == vals[0]
        elif op == "!=":
            ok = v != vals[0]
        elif op == "in":
            ok = has and v in vals
        elif op == "notin":
            ok = v not in vals
        else:
            ok = has if op == "exists" else not has
        if not ok:
            return False
    return True


def match_label_selector(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector (matchLabels + matchExpressions) against labels; empty matches all."""
    sel = selector or {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _involved(key: str) -> Any:
    return lambda o: str((o.get("involvedObject") or {}).get(key, ""))


FIELDS: dict[str, dict[str, Any]] = {
    "pods": {
        "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
        "spec.restartPolicy": lambda o: (o.get("spec") or {}).get("restartPolicy", ""),
        "spec.schedulerName": lambda o: (o.get("spec") or {}).get("schedulerName", ""),
        "spec.serviceAccountName": lambda o: (o.get("spec") or {}).get("serviceAccountName", ""),
        "spec.hostNetwork": lambda o: str(bool((o.get("spec") or {}).get("hostNetwork"))).lower(),
        "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
        "status.podIP": lambda o: (o.get("status") or {}).get("podIP", ""),
        "status.nominatedNodeName": lambda o: "",
    },
    "nodes": {"spec.unschedulable": lambda o: str(bool((o.get("spec") or {}).get("unschedulable"))).lower()},
    "secrets": {"type": lambda o: o.get("type", "")},
    "events": {
        f"involvedObject.{k}": _involved(k)
        for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    }
    | {"reason": lambda o: o.get("reason", ""), "type": lambda o: o.get("type", "")},
    "namespaces": {"status.phase": lambda o: (o.get("status") or {}).get("phase", "")},
}


def parse_field_selector(plural: str, text: str) -> list[tuple[str, bool, str]]:
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        m = re.match(r"^([\w.]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        f = m.group(1)
        if f not in ("metadata.name", "metadata.namespace") and f not in FIELDS.get(plural, {}):
            raise bad_request(f"field label not supported: {f}")
        out.append((f, m.group(2) != "!=", m.group(3)))
    return out


def fields_match(plural: str, sel: list[tuple[str, bool, str]], obj: dict[str, Any]) -> bool:
    for f, eq, v in sel:
        if f == "metadata.name":
            got = obj["metadata"].get("name", "")
        elif f == "metadata.namespace":
            got = obj["metadata"].get("namespace", "")
        else:
            got = FIELDS[plural][f](obj)
        if (got == v) != eq:
            return False
    return True


# --- store -------------------------------------------------------------------------------


def rkey(r: res.Resource) -> str:
    return f"{r.group}/{r.plural}"


def okey(namespace: str | None, name: str) -> str:
    return f"{namespace or ''}/{name}"


class Store:
    """Every object, a global resourceVersion and the recent watch events, saved as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        if "objects" in data and "rv" not in data:
            data = _migrate(data)
        self.rv: int = int(data.get("rv", 1))
        self.objects: dict[str, dict[str, dict[str, Any]]] = data.get("objects", {})
        self.side: dict[str, Any] = data.get("side", {})  # applied configs, heartbeats, allocations
        self.oldest_rv = self.rv  # events before this are not in memory (restart): 410 Gone
        self.events: deque[tuple[int, str, str, dict[str, Any]]] = deque(maxlen=EVENT_LOG)

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"rv": self.rv, "objects": self.objects, "side": self.side}, fh)
        os.replace(tmp, self.path)

    # reads ---------------------------------------------------------------------------
    def get(self, r: res.Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self.objects.get(rkey(r), {}).get(okey(namespace if r.namespaced else None, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, r: res.Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self.objects.get(rkey(r), {})
        return [
            copy.deepcopy(o)
            for k, o in sorted(items.items())
            if not (r.namespaced and namespace) or k.startswith(f"{namespace}/")
        ]

    # writes --------------------------------------------------------------------------
    def _event(self, r: res.Resource, typ: str, obj: dict[str, Any]) -> None:
        self.events.append((self.rv, rkey(r), typ, copy.deepcopy(obj)))
        self.changed.notify_all()

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def create(self, r: res.Resource, obj: dict[str, Any]) -> dict[str, Any]:
        md = obj.setdefault("metadata", {})
        name = md.get("name") or ""
        if not name and md.get("generateName"):
            name = md["generateName"] + uuid.uuid4().hex[:5]
            md["name"] = name
        if not name:
            raise invalid(r, "", [("metadata.name", "Required value: name or generateName is required")])
        if r.plural not in ("nodes",) and not NAME_RE.match(name) and r.group != "rbac.authorization.k8s.io":
            raise invalid(
                r,
                name,
                [
                    (
                        "metadata.name",
                        f'Invalid value: "{name}": a lowercase RFC 1123 '
                        "subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                        "and must start and end with an alphanumeric character",
                    )
                ],
            )
        ns = md.get("namespace") if r.namespaced else None
        if not r.namespaced:
            md.pop("namespace", None)
        store = self.objects.setdefault(rkey(r), {})
        if okey(ns, name) in store:
            raise already_exists(r, name)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md.pop("deletionTimestamp", None)
        if r.plural in GENERATION:
            md["generation"] = 1
        md["resourceVersion"] = self._next_rv()
        store[okey(ns, name)] = obj
        self._event(r, "ADDED", obj)
        return copy.deepcopy(obj)

    def update(self, r: res.Resource, obj: dict[str, Any], expect_rv: str | None = None) -> dict[str, Any]:
        md = obj["metadata"]
        ns, name = (md.get("namespace") if r.namespaced else None), md["name"]
        store = self.objects.setdefault(rkey(r), {})
        old = store.get(okey(ns, name))
        if old is None:
            raise not_found(r, name)
        if expect_rv and expect_rv != old["metadata"].get("resourceVersion"):
            raise conflict(
                r,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        for k in ("uid", "creationTimestamp"):
            md[k] = old["metadata"].get(k)
        if r.plural in GENERATION:
            gen = int(old["metadata"].get("generation") or 1)
            md["generation"] = gen + 1 if obj.get("spec") != old.get("spec") else gen
        if _same(old, obj):
            return copy.deepcopy(old)  # a no-op update does not bump resourceVersion
        md["resourceVersion"] = self._next_rv()
        store[okey(ns, name)] = obj
        self._event(r, "MODIFIED", obj)
        return copy.deepcopy(obj)

    def delete(self, r: res.Resource, namespace: str | None, name: str) -> dict[str, Any]:
        store = self.objects.setdefault(rkey(r), {})
        obj = store.pop(okey(namespace if r.namespaced else None, name), None)
        if obj is None:
            raise not_found(r, name)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._event(r, "DELETED", obj)
        return obj

    def events_since(self, rv: int) -> list[tuple[int, str, str, dict[str, Any]]]:
        return [e for e in self.events if e[0] > rv]


GENERATION = {
    "deployments",
    "daemonsets",
    "replicasets",
    "statefulsets",
    "poddisruptionbudgets",
    "customresourcedefinitions",
    "networkpolicies",
}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        o = copy.deepcopy(o)
        o.get("metadata", {}).pop("resourceVersion", None)
        for m in o.get("metadata", {}).get("managedFields") or []:
            m.pop("time", None)  # a write that changes only timestamps is a no-op
        return o

    return strip(a) == strip(b)


def _migrate(old: dict[str, Any]) -> dict[str, Any]:
    """State written by the single-file double (nodes/secrets/configmaps/objects)."""
    objects: dict[str, dict[str, Any]] = {}
    for n, node in (old.get("nodes") or {}).items():
        node.get("status", {}).pop("_heartbeat", None)
        objects.setdefault("/nodes", {})[f"/{n}"] = node
    for plural in ("secrets", "configmaps"):
        for k, o in (old.get(plural) or {}).items():
            objects.setdefault(f"/{plural}", {})[k] = o
    for o in (old.get("objects") or {}).values():
        r = res.BY_KIND.get((o.get("apiVersion", ""), o.get("kind", "")))
        if r is not None:
            md = o.get("metadata") or {}
            objects.setdefault(rkey(r), {})[
                okey(md.get("namespace") if r.namespaced else None, md.get("name", ""))
            ] = o
    return {"rv": 1, "objects": objects}
