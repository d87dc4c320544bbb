"""Built-in kinds that the real kubectl's typed clients send as protobuf (``kubectl create
configmap|secret|namespace|serviceaccount``): the API server double reads them into the JSON
object (tests/doubles/apiserver_protobuf.py) and creates them through the same path as JSON."""

from __future__ import annotations

import base64
import http.client
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_apiserver_double import Cluster, start_cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import apiserver_protobuf as pb
import apiserver_protobuf_workloads as pbw
import k8s_double as kd

# kubectl 1.36.4 `create configmap x --from-literal=a=b -v=8`: its request body, as sent
CONFIGMAP_BODY = bytes.fromhex(
    "6b3873000a0f0a0276311209436f6e6669674d6170121b0a110a0178120"
    "01a00220"
    "02a0032003800420012060a01611201621a002200"
)

CREATES = [
    # (resource, name, namespace, kubectl create arguments: {pki} the cluster's pki, {bin} a binary file)
    (
        "configmap",
        "cm1",
        "default",
        ["configmap", "cm1", "--from-literal=a=b", "--from-file=bin={bin}", "--save-config"],
    ),
    ("secret", "s1", "default", ["secret", "generic", "s1", "--from-literal=p=q", "--from-literal=r="]),
    ("secret", "s2", "default", ["secret", "generic", "s2", "--from-literal=p=q", "--type=example.com/x"]),
    (
        "secret",
        "t1",
        "default",
        ["secret", "tls", "t1", "--cert={pki}/apiserver.crt", "--key={pki}/apiserver.key"],
    ),
    (
        "secret",
        "d1",
        "default",
        [
            "secret",
            "docker-registry",
            "d1",
            "--docker-server=r.example",
            "--docker-username=u",
            "--docker-password=p",
        ],
    ),
    ("namespace", "n1", None, ["namespace", "n1"]),
    ("serviceaccount", "sa1", "default", ["serviceaccount", "sa1"]),
    ("role", "r1", "default", ["role", "r1", "--verb=get,list", "--resource=pods,deployments.apps"]),
    ("clusterrole", "cr1", None, ["clusterrole", "cr1", "--verb=get", "--non-resource-url=/healthz"]),
    (
        "rolebinding",
        "rb1",
        "default",
        ["rolebinding", "rb1", "--role=r1", "--user=u", "--serviceaccount=default:sa1"],
    ),
    (
        "clusterrolebinding",
        "crb1",
        None,
        ["clusterrolebinding", "crb1", "--clusterrole=cluster-admin", "--group=g"],
    ),
    (
        "priorityclass",
        "pc1",
        None,
        ["priorityclass", "pc1", "--value=0", "--description=d", "--preemption-policy=Never"],
    ),
    ("priorityclass", "pc2", None, ["priorityclass", "pc2", "--value=-7", "--global-default"]),
]


RBAC = "rbac.authorization.k8s.io"
GROUPS = {r: RBAC for r in ("role", "clusterrole", "rolebinding", "clusterrolebinding")} | {
    "priorityclass": "scheduling.k8s.io"
}

# the fields besides metadata that kubectl create sets for these kinds
CONTENT = (
    "data",
    "binaryData",
    "immutable",
    "secrets",
    "imagePullSecrets",
    "rules",
    "subjects",
    "roleRef",
    "value",
    "globalDefault",
    "description",
    "preemptionPolicy",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("apiserver-protobuf")
    (root / "bin.dat").write_bytes(bytes(range(256)))
    yield from start_cluster(root)


def _args(c: Cluster, args: list[str]) -> list[str]:
    return [a.format(pki=c.root / "pki", bin=c.root / "bin.dat") for a in args]


@pytest.mark.parametrize(("resource", "name", "ns", "args"), CREATES, ids=[c[1] for c in CREATES])
def test_create_keeps_what_kubectl_printed(
    cluster: Cluster, resource: str, name: str, ns: str | None, args: list[str]
) -> None:
    dry = json.loads(
        cluster.kubectl("create", *_args(cluster, args), "--dry-run=client", "-o", "json").stdout
    )
    out = cluster.kubectl("create", *_args(cluster, args))
    prefix = f"{resource}.{GROUPS[resource]}" if resource in GROUPS else resource
    assert out.stdout.strip() == f"{prefix}/{name} created"
    got = json.loads(cluster.kubectl("get", resource, name, "-o", "json").stdout)
    for key in CONTENT:
        assert got.get(key) == dry.get(key), key
    # a Secret without a type is Opaque (pkg/apis/core/v1/defaults.go SetDefaults_Secret)
    assert got.get("type") == (dry.get("type") or "Opaque" if resource == "secret" else None)
    for key in ("name", "labels", "annotations"):
        assert got["metadata"].get(key) == dry["metadata"].get(key), key
    assert got["metadata"].get("namespace") == ns
    assert got["metadata"]["uid"] and got["metadata"]["creationTimestamp"]


def test_save_config_annotation_and_binary_data(cluster: Cluster) -> None:
    """ObjectMeta annotations (map field 12) and ConfigMap binaryData (map of bytes, field 3)
    arrive whole: the bytes of the file, the last-applied configuration kubectl wrote."""
    cluster.kubectl(
        "create", "configmap", "cm2", "--from-file=bin=" + str(cluster.root / "bin.dat"), "--save-config"
    )
    got = json.loads(cluster.kubectl("get", "configmap", "cm2", "-o", "json").stdout)
    assert base64.b64decode(got["binaryData"]["bin"]) == bytes(range(256))
    last = json.loads(got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["metadata"]["name"] == "cm2"


@pytest.mark.parametrize(
    ("args", "err"),
    [
        # kubectl's create configmap / serviceaccount / secret wrap the server's error in text
        # (%v), create namespace returns it (CheckErr prints the StatusError): kubernetes/kubectl
        # pkg/cmd/create/create_configmap.go, create_serviceaccount.go, create_secret.go,
        # create_namespace.go
        (
            ["configmap", "dup", "--from-literal=a=b"],
            'error: failed to create configmap: configmaps "dup" already exists',
        ),
        (
            ["serviceaccount", "dup"],
            'error: failed to create serviceaccount: serviceaccounts "dup" already exists',
        ),
        (
            ["secret", "generic", "dup", "--from-literal=a=b"],
            'error: failed to create secret secrets "dup" already exists',
        ),
        (["namespace", "dup"], 'Error from server (AlreadyExists): namespaces "dup" already exists'),
    ],
    ids=["configmap", "serviceaccount", "secret", "namespace"],
)
def test_second_create_already_exists(cluster: Cluster, args: list[str], err: str) -> None:
    cluster.kubectl("create", *args)
    second = cluster.kubectl("create", *args, check=False)
    assert second.returncode == 1
    assert second.stderr.strip() == err


def test_create_deployment(cluster: Cluster) -> None:
    """apps/v1 Deployment with its PodTemplateSpec (apiserver_protobuf_workloads): what kubectl
    printed, plus the server's defaults."""
    args = ["deployment", "web", "--image=nginx:1.25", "--replicas=2", "--port=80", "-n", "default"]
    dry = json.loads(cluster.kubectl("create", *args, "--dry-run=client", "-o", "json").stdout)
    assert cluster.kubectl("create", *args).stdout.strip() == "deployment.apps/web created"
    got = json.loads(cluster.kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert got["metadata"]["labels"] == dry["metadata"]["labels"] == {"app": "web"}
    assert got["spec"]["replicas"] == 2
    assert got["spec"]["selector"] == dry["spec"]["selector"]
    assert got["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    [c] = got["spec"]["template"]["spec"]["containers"]
    [d] = dry["spec"]["template"]["spec"]["containers"]
    assert (c["name"], c["image"], c["ports"][0]["containerPort"]) == (d["name"], d["image"], 80)
    assert c["resources"] == {}
    assert got["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted after decoding


@pytest.mark.parametrize(
    "args",
    [
        ["clusterip", "svc-c", "--tcp=80:8080"],
        ["nodeport", "svc-n", "--tcp=81:http", "--node-port=30081"],
        ["loadbalancer", "svc-l", "--tcp=82:8082,83"],
    ],
    ids=["clusterip", "nodeport", "loadbalancer"],
)
def test_create_service(cluster: Cluster, args: list[str]) -> None:
    """core/v1 Service: ports (targetPort an IntOrString, a number or a name), selector and type
    as kubectl printed them; then the Service path allocates the cluster IP (and node ports)."""
    dry = json.loads(cluster.kubectl("create", "service", *args, "--dry-run=client", "-o", "json").stdout)
    assert cluster.kubectl("create", "service", *args).stdout.strip() == f"service/{args[1]} created"
    got = json.loads(cluster.kubectl("get", "service", args[1], "-o", "json").stdout)
    for key in ("selector", "type"):
        assert got["spec"].get(key) == dry["spec"].get(key), key
    keys = ("name", "port", "targetPort", "protocol", "nodePort")
    assert [
        {k: p[k] for k in keys if k in q}
        for p, q in zip(got["spec"]["ports"], dry["spec"]["ports"], strict=True)
    ] == [{k: q[k] for k in keys if k in q} for q in dry["spec"]["ports"]]
    assert got["spec"]["clusterIP"].startswith("10.")
    if args[0] == "nodeport":
        assert got["spec"]["ports"][0]["nodePort"] == 30081


def test_a_kind_the_double_cannot_read_is_a_500_naming_the_gap(cluster: Cluster) -> None:
    out = cluster.kubectl(
        "create", "clusterrole", "agg", "--aggregation-rule=rbac.example.com/aggregate=true", check=False
    )
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "Error from server (InternalError): kube-apiserver double: "
        "ClusterRole.aggregationRule (AggregationRule) is not in the double's protobuf tables"
    )


def test_create_quota_and_pdb(cluster: Cluster) -> None:
    """core/v1 ResourceQuota (hard: a map of Quantities) and policy/v1 PodDisruptionBudget
    (minAvailable / maxUnavailable IntOrString, selector)."""
    cluster.kubectl(
        "create", "quota", "q1", "--hard=pods=10,requests.cpu=500m,limits.memory=1Gi", "--scopes=BestEffort"
    )
    quota = json.loads(cluster.kubectl("get", "quota", "q1", "-o", "json").stdout)
    assert quota["spec"] == {
        "hard": {"pods": "10", "requests.cpu": "500m", "limits.memory": "1Gi"},
        "scopes": ["BestEffort"],
    }
    cluster.kubectl("create", "pdb", "p1", "--selector=app=web", "--min-available=50%")
    cluster.kubectl("create", "pdb", "p2", "--selector=app=web", "--max-unavailable=1")
    p1 = json.loads(cluster.kubectl("get", "pdb", "p1", "-o", "json").stdout)
    p2 = json.loads(cluster.kubectl("get", "pdb", "p2", "-o", "json").stdout)
    assert p1["spec"] == {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}
    assert p2["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}


def test_media_type_415_not_protobuf_400_unserved_404(cluster: Cluster) -> None:
    client = cluster.client()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cbor"}}
    with pytest.raises(kd.ApiError) as err:
        client.request("POST", "/api/v1/namespaces/default/configmaps", cm, content_type="application/cbor")
    assert err.value.status == 415
    assert str(err.value) == (
        "Error from server (Unsupported Media Type): the body of the request was in an unknown format - "
        "accepted media types include: application/json, application/yaml, "
        "application/vnd.kubernetes.protobuf"
    )
    with pytest.raises(kd.ApiError) as err:
        client.request("POST", "/api/v1/namespaces/default/configmaps", cm, content_type=pb.MEDIA_TYPE)
    assert err.value.status == 400
    assert "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]" in str(
        err.value
    )
    with pytest.raises(kd.ApiError) as err:  # an unserved resource: 404 before the body is read
        client.request("POST", "/apis/batch/v1/namespaces/default/jobs", cm, content_type=pb.MEDIA_TYPE)
    assert err.value.status == 404
    assert str(err.value) == "Error from server (Not Found): the server could not find the requested resource"


def _raw(cluster: Cluster, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """A request with a protobuf body as given; the status code and the JSON answer."""
    client = cluster.client()
    conn = http.client.HTTPSConnection(client.host, client.port, context=client.ctx, timeout=10)
    try:
        conn.request(
            method, path, body=body, headers={"Content-Type": pb.MEDIA_TYPE, "Accept": "application/json"}
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_a_string_not_utf8_is_refused_without_its_bytes(cluster: Cluster) -> None:
    secret = _ld(1, _ld(1, b"bad")) + _ld(4, _ld(1, b"k") + _ld(2, b"\xffhunter2"))  # stringData
    code, status = _raw(
        cluster, "POST", "/api/v1/namespaces/default/secrets", _envelope("v1", "Secret", secret)
    )
    assert (code, status["message"]) == (500, "kube-apiserver double: a protobuf string field is not UTF-8")


def test_protobuf_delete_options_preconditions(cluster: Cluster) -> None:
    """A protobuf DeleteOptions body (client-go's typed Delete) is read: a stale
    preconditions.uid is the real 409 Conflict, the right one deletes."""
    cluster.kubectl("create", "configmap", "del1", "--from-literal=a=b")
    uid = json.loads(cluster.kubectl("get", "configmap", "del1", "-o", "json").stdout)["metadata"]["uid"]
    path = "/api/v1/namespaces/default/configmaps/del1"

    def delete(precondition: str) -> tuple[int, dict[str, Any]]:
        return _raw(
            cluster, "DELETE", path, _envelope("v1", "DeleteOptions", _ld(2, _ld(1, precondition.encode())))
        )

    code, status = delete("stale-uid")
    assert (code, status["reason"]) == (409, "Conflict")
    assert status["message"] == (
        'Operation cannot be fulfilled on configmaps "del1": Precondition failed: '
        f"UID in precondition: stale-uid, UID in object meta: {uid}"
    )
    assert delete(uid)[0] == 200
    assert cluster.kubectl("get", "configmap", "del1", check=False).returncode == 1


# the reader alone


def _ld(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(v: int) -> bytes:
    out = b""
    v &= (1 << 64) - 1
    while True:
        b, v = v & 0x7F, v >> 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return pb.MAGIC + _ld(1, _ld(1, api_version.encode()) + _ld(2, kind.encode())) + _ld(2, raw)


def test_decode_the_configmap_kubectl_sent() -> None:
    """Zero scalars gogo writes (generateName "", generation 0) are left out as JSON's omitempty
    does; the zero creationTimestamp is null, as kubectl's JSON has it."""
    assert pb.decode(CONFIGMAP_BODY) == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "x", "creationTimestamp": None},
        "data": {"a": "b"},
    }


def test_decode_pointers_maps_lists_and_long_fields() -> None:
    meta = _ld(1, b"n") + _ld(11, _ld(1, b"k") + _ld(2, b"v")) + _ld(12, _ld(1, b"note") + _ld(2, b"x" * 300))
    body = pb.decode(
        _envelope("v1", "ConfigMap", _ld(1, meta) + _ld(3, _ld(1, b"b") + _ld(2, b"\x00\xff")) + b"\x20\x00")
    )
    assert body["metadata"] == {"name": "n", "labels": {"k": "v"}, "annotations": {"note": "x" * 300}}
    assert body["binaryData"] == {"b": "AP8="}
    assert body["immutable"] is False  # a *bool: false is said, not omitted
    tr = pb.decode(
        _envelope(
            "authentication.k8s.io/v1",
            "TokenRequest",
            _ld(2, _ld(1, b"a1") + _ld(1, b"a2") + b"\x20" + _varint(-5)),
        )
    )
    assert tr["spec"] == {"audiences": ["a1", "a2"], "expirationSeconds": -5}


def test_decode_int_or_string_and_quantities() -> None:
    """IntOrString (type 1, intVal 2, strVal 3) is a number or a string in JSON, a Quantity
    (string 1) a string."""
    strategy = _ld(1, b"RollingUpdate") + _ld(
        2, _ld(1, b"\x08\x00\x10\x01") + _ld(2, b"\x08\x01" + _ld(3, b"25%"))
    )
    container = _ld(1, b"c") + _ld(8, _ld(1, _ld(1, b"cpu") + _ld(2, _ld(1, b"100m"))))
    template = _ld(2, _ld(2, container))
    body = pbw_decode(_envelope("apps/v1", "Deployment", _ld(2, _ld(3, template) + _ld(4, strategy))))
    assert body["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"},
    }
    assert body["spec"]["template"]["spec"]["containers"] == [
        {"name": "c", "resources": {"limits": {"cpu": "100m"}}}
    ]


def test_decode_a_pod_field_the_tables_lack_is_a_gap() -> None:
    template = _ld(2, _ld(18, b""))  # PodSpec affinity
    with pytest.raises(pb.Gap, match=r"PodSpec.affinity \(Affinity\) is not in the double's protobuf tables"):
        pbw_decode(_envelope("apps/v1", "Deployment", _ld(2, _ld(3, template))))


def pbw_decode(raw: bytes) -> dict[str, Any]:
    return pb.decode(raw, {**pb.KINDS, **pbw.KINDS})


def test_decode_eviction() -> None:
    opts = b"\x08\x00" + _ld(4, b"Foreground")  # gracePeriodSeconds 0 (a pointer: kept)
    body = pb.decode(_envelope("policy/v1", "Eviction", _ld(1, _ld(1, b"p") + _ld(3, b"ns")) + _ld(2, opts)))
    assert body == {
        "kind": "Eviction",
        "apiVersion": "policy/v1",
        "metadata": {"name": "p", "namespace": "ns"},
        "deleteOptions": {"gracePeriodSeconds": 0, "propagationPolicy": "Foreground"},
    }


@pytest.mark.parametrize(
    ("raw", "error", "text"),
    [
        (_envelope("apps/v1", "StatefulSet", b""), pb.Gap, "protobuf apps/v1 StatefulSet is not in"),
        (_envelope("v1", "ConfigMap", _ld(1, _ld(13, b""))), pb.Gap, "field 13 of ObjectMeta"),
        (_envelope("v1", "ConfigMap", b"\x12\x05ab"), pb.Malformed, "truncated"),
        (b"{}", pb.Malformed, "expected prefix [107 56 115 0]"),
    ],
    ids=["kind", "field", "truncated", "json"],
)
def test_decode_refuses_what_it_cannot_read(raw: bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=None) as err:
        pb.decode(raw)
    assert text in str(err.value)
