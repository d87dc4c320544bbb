"""Kubernetes protobuf request bodies read into the JSON objects the JSON path gets.

client-go's typed clients (kubectl create configmap|secret|namespace|serviceaccount|service|
role|rolebinding|priorityclass|token ...) send built-in kinds as
``application/vnd.kubernetes.protobuf``: the magic ``k8s\\0`` and a runtime.Unknown (typeMeta 1
{apiVersion 1, kind 2}, raw 2, contentEncoding 3, contentType 4) whose raw is the kind's message
(kubernetes/apimachinery pkg/runtime/serializer/protobuf/protobuf.go, pkg/runtime/generated.proto).
The field tables below carry the numbers of the kinds' generated.proto (kubernetes/api core/v1,
authentication/v1, rbac/v1, scheduling/v1; kubernetes/apimachinery pkg/apis/meta/v1) under their
JSON names.

JSON sameness: gogo-protobuf writes non-pointer scalars even when zero, which JSON's omitempty
leaves out, so zero scalars are dropped unless the Go field is a pointer or has no omitempty
(``?`` kinds); messages
on the wire are kept (empty structs are ``{}`` in JSON, a zero metav1.Time is ``null``).
A field or kind the tables lack raises ``Gap`` (the API server double answers 500 naming it)
rather than building a wrong object."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# a field's kind: "str", "int", "bool" (zero dropped), "str?", "int?", "bool?" (kept when zero: a
# Go pointer, or a JSON field without omitempty), "b64"
# (bytes, base64 in JSON), "time" (metav1.Time), "quantity", "intorstr", "gap:<Message>" (a message
# the tables lack: Gap when present), ("map", value kind), ("list", kind), or a message
# table: (message name, {number: (json name, kind)})
Kind = str | tuple[str, Any]
Table = tuple[str, dict[int, tuple[str, Kind]]]


class Gap(Exception):
    """A protobuf body the double's tables do not cover (not a client error)."""


class Malformed(ValueError):
    """Bytes that are not a protobuf message."""


TIME: Table = ("Time", {1: ("seconds", "int"), 2: ("nanos", "int")})
OBJECT_META: Table = (
    "ObjectMeta",
    {
        1: ("name", "str"),
        2: ("generateName", "str"),
        3: ("namespace", "str"),
        4: ("selfLink", "str"),
        5: ("uid", "str"),
        6: ("resourceVersion", "str"),
        7: ("generation", "int"),
        8: ("creationTimestamp", "time"),
        9: ("deletionTimestamp", "time"),
        10: ("deletionGracePeriodSeconds", "int?"),
        11: ("labels", ("map", "str")),
        12: ("annotations", ("map", "str")),
        14: ("finalizers", ("list", "str")),
    },
)
OBJECT_REFERENCE: Table = (
    "ObjectReference",
    {
        1: ("kind", "str"),
        2: ("namespace", "str"),
        3: ("name", "str"),
        4: ("uid", "str"),
        5: ("apiVersion", "str"),
        6: ("resourceVersion", "str"),
        7: ("fieldPath", "str"),
    },
)
LOCAL_OBJECT_REFERENCE: Table = ("LocalObjectReference", {1: ("name", "str")})

# kubernetes/api rbac/v1 generated.proto (PolicyRule, Subject, RoleRef; JSON names and omitempty
# from rbac/v1/types.go)
POLICY_RULE: Table = (
    "PolicyRule",
    {
        1: ("verbs", ("list", "str")),
        2: ("apiGroups", ("list", "str")),
        3: ("resources", ("list", "str")),
        4: ("resourceNames", ("list", "str")),
        5: ("nonResourceURLs", ("list", "str")),
    },
)
_BINDING: dict[int, tuple[str, Kind]] = {
    1: ("metadata", OBJECT_META),
    2: (
        "subjects",
        (
            "list",
            (
                "Subject",
                {1: ("kind", "str?"), 2: ("apiGroup", "str"), 3: ("name", "str?"), 4: ("namespace", "str")},
            ),
        ),
    ),
    3: ("roleRef", ("RoleRef", {1: ("apiGroup", "str?"), 2: ("kind", "str?"), 3: ("name", "str?")})),
}

# kubernetes/api core/v1 Service (numbers, JSON names, omitempty from the protobuf/json tags of
# core/v1/types.go; targetPort an IntOrString: kubernetes/apimachinery pkg/util/intstr)
SERVICE_PORT: Table = (
    "ServicePort",
    {
        1: ("name", "str"),
        2: ("protocol", "str"),
        6: ("appProtocol", "str?"),
        3: ("port", "int?"),
        4: ("targetPort", "intorstr"),
        5: ("nodePort", "int"),
    },
)
SERVICE_SPEC: Table = (
    "ServiceSpec",
    {
        1: ("ports", ("list", SERVICE_PORT)),
        2: ("selector", ("map", "str")),
        3: ("clusterIP", "str"),
        18: ("clusterIPs", ("list", "str")),
        4: ("type", "str"),
        5: ("externalIPs", ("list", "str")),
        7: ("sessionAffinity", "str"),
        8: ("loadBalancerIP", "str"),
        9: ("loadBalancerSourceRanges", ("list", "str")),
        10: ("externalName", "str"),
        11: ("externalTrafficPolicy", "str"),
        12: ("healthCheckNodePort", "int"),
        13: ("publishNotReadyAddresses", "bool"),
        14: ("sessionAffinityConfig", "gap:SessionAffinityConfig"),
        19: ("ipFamilies", ("list", "str")),
        17: ("ipFamilyPolicy", "str?"),
        20: ("allocateLoadBalancerNodePorts", "bool?"),
        21: ("loadBalancerClass", "str?"),
        22: ("internalTrafficPolicy", "str?"),
        23: ("trafficDistribution", "str?"),
    },
)
LOAD_BALANCER_INGRESS: Table = (
    "LoadBalancerIngress",
    {
        1: ("ip", "str"),
        2: ("hostname", "str"),
        3: ("ipMode", "str?"),
        4: ("ports", ("list", "gap:PortStatus")),
    },
)
LOAD_BALANCER_STATUS: Table = (
    "LoadBalancerStatus",
    {
        1: ("ingress", ("list", LOAD_BALANCER_INGRESS)),
    },
)
SERVICE_STATUS: Table = (
    "ServiceStatus",
    {
        1: ("loadBalancer", LOAD_BALANCER_STATUS),
        2: ("conditions", ("list", "gap:Condition")),
    },
)
SERVICE: Table = (
    "Service",
    {
        1: ("metadata", OBJECT_META),
        2: ("spec", SERVICE_SPEC),
        3: ("status", SERVICE_STATUS),
    },
)

# kubernetes/api core/v1 ResourceQuota (core/v1/types.go tags; hard/used are ResourceLists)
RESOURCE_QUOTA: Table = (
    "ResourceQuota",
    {
        1: ("metadata", OBJECT_META),
        2: (
            "spec",
            (
                "ResourceQuotaSpec",
                {
                    1: ("hard", ("map", "quantity")),
                    2: ("scopes", ("list", "str")),
                    3: ("scopeSelector", "gap:ScopeSelector"),
                },
            ),
        ),
        3: (
            "status",
            ("ResourceQuotaStatus", {1: ("hard", ("map", "quantity")), 2: ("used", ("map", "quantity"))}),
        ),
    },
)

# kubernetes/apimachinery pkg/apis/meta/v1 DeleteOptions (all pointers but dryRun) and kubernetes/api
# policy/v1 Eviction: what client-go's typed Delete and kubectl drain send
DELETE_OPTIONS: Table = (
    "DeleteOptions",
    {
        1: ("gracePeriodSeconds", "int?"),
        2: ("preconditions", ("Preconditions", {1: ("uid", "str?"), 2: ("resourceVersion", "str?")})),
        3: ("orphanDependents", "bool?"),
        4: ("propagationPolicy", "str?"),
        5: ("dryRun", ("list", "str")),
        6: ("ignoreStoreReadErrorWithClusterBreakingPotential", "bool?"),
    },
)

# (apiVersion, kind) -> the kind's message
KINDS: dict[tuple[str, str], Table] = {
    ("v1", "ConfigMap"): (
        "ConfigMap",
        {
            1: ("metadata", OBJECT_META),
            2: ("data", ("map", "str")),
            3: ("binaryData", ("map", "b64")),
            4: ("immutable", "bool?"),
        },
    ),
    ("v1", "Secret"): (
        "Secret",
        {
            1: ("metadata", OBJECT_META),
            2: ("data", ("map", "b64")),
            3: ("type", "str"),
            4: ("stringData", ("map", "str")),
            5: ("immutable", "bool?"),
        },
    ),
    ("v1", "Namespace"): (
        "Namespace",
        {
            1: ("metadata", OBJECT_META),
            2: ("spec", ("NamespaceSpec", {1: ("finalizers", ("list", "str"))})),
            3: ("status", ("NamespaceStatus", {1: ("phase", "str")})),
        },
    ),
    ("v1", "DeleteOptions"): DELETE_OPTIONS,
    ("meta.k8s.io/v1", "DeleteOptions"): DELETE_OPTIONS,
    ("policy/v1", "Eviction"): (
        "Eviction",
        {1: ("metadata", OBJECT_META), 2: ("deleteOptions", DELETE_OPTIONS)},
    ),
    ("v1", "Service"): SERVICE,
    ("v1", "ResourceQuota"): RESOURCE_QUOTA,
    ("v1", "ServiceAccount"): (
        "ServiceAccount",
        {
            1: ("metadata", OBJECT_META),
            2: ("secrets", ("list", OBJECT_REFERENCE)),
            3: ("imagePullSecrets", ("list", LOCAL_OBJECT_REFERENCE)),
            4: ("automountServiceAccountToken", "bool?"),
        },
    ),
    ("rbac.authorization.k8s.io/v1", "Role"): (
        "Role",
        {1: ("metadata", OBJECT_META), 2: ("rules", ("list", POLICY_RULE))},
    ),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): (
        "ClusterRole",
        {
            1: ("metadata", OBJECT_META),
            2: ("rules", ("list", POLICY_RULE)),
            3: ("aggregationRule", "gap:AggregationRule"),
        },
    ),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("RoleBinding", _BINDING),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("ClusterRoleBinding", _BINDING),
    ("scheduling.k8s.io/v1", "PriorityClass"): (
        "PriorityClass",
        {
            1: ("metadata", OBJECT_META),
            2: ("value", "int?"),
            3: ("globalDefault", "bool"),
            4: ("description", "str"),
            5: ("preemptionPolicy", "str?"),
        },
    ),
    ("authentication.k8s.io/v1", "TokenRequest"): (
        "TokenRequest",
        {
            1: ("metadata", OBJECT_META),
            2: (
                "spec",
                (
                    "TokenRequestSpec",
                    {
                        1: ("audiences", ("list", "str")),
                        3: (
                            "boundObjectRef",
                            (
                                "BoundObjectReference",
                                {
                                    1: ("kind", "str"),
                                    2: ("apiVersion", "str"),
                                    3: ("name", "str"),
                                    4: ("uid", "str"),
                                },
                            ),
                        ),
                        4: ("expirationSeconds", "int?"),
                    },
                ),
            ),
            3: (
                "status",
                ("TokenRequestStatus", {1: ("token", "str"), 2: ("expirationTimestamp", "time")}),
            ),
        },
    ),
}


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of one message: varints (wire type 0) and
    length-delimited fields (2); the kinds above use no other wire type."""
    out: list[tuple[int, int | bytes]] = []
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            if i >= len(data) or shift > 63:
                raise Malformed("truncated varint")
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, varint()))
        elif wire == 2:
            n = varint()
            if i + n > len(data):
                raise Malformed("truncated length-delimited field")
            out.append((number, data[i : i + n]))
            i += n
        else:
            raise Malformed(f"wire type {wire} of field {number} not read")
    return out


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _scalar(kind: str, v: int | bytes, where: str) -> Any:
    if kind in ("int", "int?") and isinstance(v, int):
        return _int64(v)
    if kind in ("bool", "bool?") and isinstance(v, int):
        return bool(v)
    if kind in ("str", "str?") and isinstance(v, bytes):
        return v.decode()
    if kind == "b64" and isinstance(v, bytes):
        return base64.b64encode(v).decode()
    raise Malformed(f"{where}: wrong wire type for a {kind}")


SCALARS = ("str", "str?", "int", "int?", "bool", "bool?", "b64")


def _zero(kind: str, value: Any) -> bool:
    return not kind.endswith("?") and value in ("", 0, False)


def _time(v: bytes) -> str | None:
    import datetime as _dt

    t = message(v, TIME)
    if not t:
        return None
    when = _dt.datetime.fromtimestamp(int(t.get("seconds", 0)), _dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantity(v: bytes) -> str:
    """resource.Quantity: message {string 1}, a string in JSON (kubernetes/apimachinery
    pkg/api/resource/generated.proto)."""
    return next((s.decode() for n, s in fields(v) if n == 1 and isinstance(s, bytes)), "")


def _int_or_string(v: bytes) -> int | str:
    """intstr.IntOrString: type 1 (0 int, 1 string), intVal 2, strVal 3; a number or a string in
    JSON (kubernetes/apimachinery pkg/util/intstr/generated.proto)."""
    f = dict(fields(v))
    if f.get(1, 0) == 1:
        s = f.get(3, b"")
        return s.decode() if isinstance(s, bytes) else ""
    n = f.get(2, 0)
    return _int64(n) if isinstance(n, int) else 0


def _value(kind: Kind, v: int | bytes, where: str) -> Any:
    if isinstance(kind, str) and kind.startswith("gap:"):
        raise Gap(f"{where} ({kind[4:]}) is not in the double's protobuf tables")
    if kind in ("time", "quantity", "intorstr") and not isinstance(v, bytes):
        raise Malformed(f"{where}: a {kind} needs a length-delimited field")
    if kind == "quantity" and isinstance(v, bytes):
        return _quantity(v)
    if kind == "intorstr" and isinstance(v, bytes):
        return _int_or_string(v)
    if isinstance(kind, tuple):
        if not isinstance(v, bytes):
            raise Malformed(f"{where}: a message needs a length-delimited field")
        return message(v, kind)
    if kind == "time" and isinstance(v, bytes):
        return _time(v)
    return _scalar(kind, v, where)


def message(data: bytes, table: Table) -> dict[str, Any]:
    """One message as its JSON object, by ``table``."""
    name, numbers = table
    out: dict[str, Any] = {}
    for number, v in fields(data):
        if number not in numbers:
            raise Gap(f"field {number} of {name} is not in the double's protobuf tables")
        key, kind = numbers[number]
        where = f"{name}.{key}"
        if isinstance(kind, tuple) and kind[0] == "map":
            if not isinstance(v, bytes):
                raise Malformed(f"{where}: a map entry needs a length-delimited field")
            entry = dict(fields(v))
            k = entry.get(1, b"")
            if not isinstance(k, bytes):
                raise Malformed(f"{where}: a map key must be a string")
            out.setdefault(key, {})[k.decode()] = _value(kind[1], entry.get(2, b""), where)
        elif isinstance(kind, tuple) and kind[0] == "list":
            out.setdefault(key, []).append(_value(kind[1], v, where))
        else:
            value = _value(kind, v, where)
            if isinstance(kind, str) and kind in SCALARS and _zero(kind, value):
                continue
            out[key] = value
    return out


def decode(raw: bytes, kinds: Mapping[tuple[str, str], Table] = KINDS) -> dict[str, Any]:
    """A protobuf request body as the JSON object of its kind (``kinds``: (apiVersion, kind) ->
    the kind's table; these of this module by default).

    Raises Malformed for bytes that are no Kubernetes protobuf (the caller answers 400 as the
    real decoder does) and Gap for a kind or field the tables lack."""
    if not raw.startswith(MAGIC):
        raise Malformed(
            "provided data does not appear to be a protobuf message, expected prefix "
            f"[{' '.join(str(b) for b in MAGIC)}]"
        )
    envelope = dict(fields(raw[len(MAGIC) :]))
    type_meta, inner = envelope.get(1, b""), envelope.get(2, b"")
    if not isinstance(type_meta, bytes) or not isinstance(inner, bytes):
        raise Malformed("runtime.Unknown: typeMeta and raw must be length-delimited")
    tm = {k: v.decode() for k, v in fields(type_meta) if isinstance(v, bytes)}
    api_version, kind = tm.get(1, ""), tm.get(2, "")
    encoding = envelope.get(3, b"")
    if encoding not in (b"", 0):
        raise Gap(f"runtime.Unknown contentEncoding {encoding!r} is not read by the double")
    table = kinds.get((api_version, kind))
    if table is None:
        raise Gap(f"protobuf {api_version} {kind} is not in the double's protobuf tables")
    return {"kind": kind, "apiVersion": api_version, **message(inner, table)}
