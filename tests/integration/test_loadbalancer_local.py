"""Services of type LoadBalancer on a local 1+1 cluster (koral_ansible.loadbalancer), end to end.

One cluster created through the CLI on ``LB_VERSION`` (tests/versions.py: the first supported minor
no other module creates on), which also gets that version's checks
(tests/integration/version_checks.py: nodes Ready on the kubelet version, kubeadm-config,
containerd 2.x with config version 3, nothing left after ``delete``), so test_versions_local.py
needs no create of its own; one network namespace (tests/integration/outside_netns.py: an outside
host with two addresses, a veth to the host). A Service applied with the real kubectl gets the
cluster's public address in ``status.loadBalancer.ingress``; a listener on each node's NodePort
(python3 in the node, through ``podman exec``) answers from the outside through that address and
the Service port, on the worker (kubeadm excludes the control plane from load
balancers); a UDP Service is forwarded too; ``loadBalancerSourceRanges`` keeps the other
address out; an ``externalTrafficPolicy: Local`` Service follows the node's health check
(kube-proxy's, played by the test); ``loadbalancer serve`` restarted keeps the same rules;
deleting the Service removes them; ``delete`` leaves no table and nothing else. Traffic goes only
to the cluster and the namespace this test creates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.bundle import find_bundle, verify_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.loadbalancer import hostnft, kubeapi, rules
from koral_ansible.operations.context import Env
from koral_ansible.providers.local.nodes import container_name
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.state import ClusterState
from tests.integration import version_checks
from tests.integration.cli_home import cli_home
from tests.integration.outside_netns import Outside, outside_netns
from tests.versions import LB_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

CLUSTER = "lbtest"
PORT = 8080

# Run in a node: answer every GET with the node's name (argv: port, name).
LISTEN = (
    "import http.server, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = sys.argv[2].encode(); self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])), H).serve_forever()\n"
)


# Run in a node: answer every UDP datagram with the node's name (argv: port, name).
LISTEN_UDP = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', int(sys.argv[1])))\n"
    "while True:\n"
    "    _data, peer = s.recvfrom(512); s.sendto(sys.argv[2].encode(), peer)\n"
)


# Run in a node: answer as kube-proxy's health server does for one Local Service
# (pkg/proxy/healthcheck/service_health.go: 200 with localEndpoints > 0, else 503), the count read
# from a file the test writes (argv: port, file).
HEALTH = (
    "import http.server, json, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        try: n = int(open(sys.argv[2]).read().strip() or 0)\n"
    "        except OSError: n = 0\n"
    "        body = json.dumps({'localEndpoints': n, 'serviceProxyHealthy': True}).encode()\n"
    "        self.send_response(200 if n else 503); self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])), H).serve_forever()\n"
)


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    with outside_netns("klb") as ns:
        yield ns


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, outside: Outside) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("koral-lb-home")
    from scripts.offline_bundle import main as record_bundle  # the bundle setup.sh records

    with cli_home(home, CLUSTER):
        old = os.environ.get("KORAL_KUBERNETES_VERSION")
        os.environ["KORAL_KUBERNETES_VERSION"] = LB_VERSION  # the bundle offline_bundle records
        try:
            record_bundle()
        finally:
            if old is None:
                os.environ.pop("KORAL_KUBERNETES_VERSION")
            else:
                os.environ["KORAL_KUBERNETES_VERSION"] = old
        started = time.monotonic()
        args = ["-q", "create", CLUSTER, "--size", "1", "--kubernetes-version", LB_VERSION]
        assert run_cli(root, args) == 0, "create failed"
        print(f"create 1+1 on {LB_VERSION}: {time.monotonic() - started:.0f}s")
        yield Env.open(str(home), quiet=True)


def test_nodes_ready_on_the_version(cluster: Env) -> None:
    assert cluster.store.get_cluster(CLUSTER).state is ClusterState.RUNNING
    version_checks.check_nodes_ready(cluster, CLUSTER, LB_VERSION)


def test_kubeadm_config_on_the_version(cluster: Env) -> None:
    version_checks.check_kubeadm_config(cluster, CLUSTER, LB_VERSION)


def test_containerd_2_with_config_version_3(cluster: Env) -> None:
    record = find_bundle(cluster.paths.home, LB_VERSION)
    assert record is not None and record.directory
    manifest = verify_bundle(Path(record.directory), deep=False)
    assert manifest.kubernetes_version == LB_VERSION
    version_checks.check_containerd(cluster, CLUSTER, manifest.runtime_versions["containerd"])


def _api(env: Env) -> kubeapi.KubeApi:
    rec = env.store.get_cluster(CLUSTER)
    return kubeapi.KubeApi(
        kubeapi.find_kubectl(env.paths.home, rec.spec.kubernetes_version), env.paths.kubeconfig(CLUSTER)
    )


def _kubectl(env: Env, *args: str, stdin: str | None = None) -> str:
    api = _api(env)
    proc = subprocess.run(
        [str(api.kubectl), "--kubeconfig", str(api.kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _service(ranges: list[str] | None = None) -> str:
    spec: dict[str, object] = {
        "type": "LoadBalancer",
        "selector": {"app": "web"},
        "ports": [{"port": PORT, "targetPort": 80}],
    }
    if ranges is not None:
        spec["loadBalancerSourceRanges"] = ranges
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        }
    )


def _reconcile() -> None:
    assert run_cli(root, ["-q", "loadbalancer", "reconcile", "--cluster", CLUSTER]) == 0


def _show_load_balancers() -> list[dict[str, str]]:
    """``koral-play show -o json``'s load_balancers (what the controller last recorded)."""
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("koral-play")), "show", CLUSTER, "-o", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows: list[dict[str, str]] = json.loads(proc.stdout)["load_balancers"]
    return rows


def _public_ip(env: Env) -> str:
    return str(env.store.get_cluster(CLUSTER).endpoint["public_ip"])


@pytest.fixture(scope="module")
def web(cluster: Env) -> Iterator[int]:
    """The ``web`` LoadBalancer Service applied, and a listener on its NodePort on every node."""
    _kubectl(cluster, "apply", "-f", "-", stdin=_service())
    svc = json.loads(_kubectl(cluster, "get", "svc", "web", "-o", "json"))
    node_port = int(svc["spec"]["ports"][0]["nodePort"])
    env = {**os.environ, **podman_env(cluster.paths)}
    for node in cluster.store.nodes(CLUSTER):
        cmd = [
            "podman",
            "exec",
            "-d",
            container_name(node.name),
            "python3",
            "-c",
            LISTEN,
            str(node_port),
            node.name,
        ]
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=60)
    time.sleep(1)
    yield node_port


def test_service_gets_the_public_address_and_is_reached_from_outside(
    cluster: Env, outside: Outside, web: int
) -> None:
    started = time.monotonic()
    _reconcile()
    print(f"reconcile: {time.monotonic() - started:.1f}s")
    pub = _public_ip(cluster)
    svc = json.loads(_kubectl(cluster, "get", "svc", "web", "-o", "json"))
    assert svc["status"]["loadBalancer"]["ingress"] == [
        {"ip": pub, "ipMode": "Proxy", "ports": [{"port": PORT, "protocol": "TCP"}]}
    ]
    assert pub in _kubectl(cluster, "get", "svc", "web")  # EXTERNAL-IP column
    shown = _show_load_balancers()
    assert [(r["service"], r["state"], r["address"], r["ports"]) for r in shown] == [
        ("default/web", "serving", pub, f"{PORT}/TCP")
    ]
    served = [e for e in cluster.store.events(CLUSTER) if e.operation == "loadbalancer"]
    assert [(e.result, e.message.split()[0]) for e in served] == [("Serving", "default/web")]
    answers = {outside.fetch(outside.allowed, pub, PORT) for _ in range(4)}
    # The worker only: kubeadm labels the control plane exclude-from-external-load-balancers.
    assert answers == {n.name for n in cluster.store.nodes(CLUSTER) if not n.is_control}, answers
    assert outside.fetch(outside.denied, pub, PORT) in answers  # no range: everyone


def test_source_ranges_keep_other_addresses_out(cluster: Env, outside: Outside, web: int) -> None:
    pub = _public_ip(cluster)
    _kubectl(cluster, "apply", "-f", "-", stdin=_service([f"{outside.allowed}/32"]))
    _reconcile()
    assert not outside.fetch(outside.allowed, pub, PORT).startswith("FAILED")
    assert outside.fetch(outside.denied, pub, PORT).startswith("FAILED")


def test_restarted_controller_keeps_the_rules(
    cluster: Env, outside: Outside, web: int, tmp_path: Path
) -> None:
    before = hostnft.current(CLUSTER)
    assert before is not None and "dnat" in before
    env = {**os.environ, "KORAL_HOME": str(cluster.paths.home)}
    koral_play = str(Path(sys.executable).with_name("koral-play"))
    cmd = [koral_play, "loadbalancer", "serve", "--cluster", CLUSTER, "--interval", "0.5"]
    for round_ in range(2):
        if round_ == 1:  # the host lost the table while no controller ran: the restarted one restores it
            subprocess.run(["nft", "delete", "table", "ip", rules.table_name(CLUSTER)], check=True)
        log = tmp_path / f"serve-{round_}.log"
        with log.open("w") as stderr:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        deadline = time.monotonic() + 60
        # up (its first pass done, the watches started), and the table as before
        while time.monotonic() < deadline and (
            "watching Services and Nodes" not in log.read_text() or hostnft.current(CLUSTER) != before
        ):
            time.sleep(0.5)
        time.sleep(2)  # a few more passes: nothing changes
        proc.terminate()
        proc.wait(timeout=60)
        err = log.read_text()
        assert proc.returncode == 0, err
        assert "watching Services and Nodes" in err
        assert hostnft.current(CLUSTER) == before, err
    assert not outside.fetch(outside.allowed, _public_ip(cluster), PORT).startswith("FAILED")


def test_udp_service_is_forwarded_too(cluster: Env, outside: Outside, web: int) -> None:
    dns = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dns", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "dns"},
            "ports": [{"port": 5353, "protocol": "UDP"}],
        },
    }
    _kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(dns))
    node_port = int(
        json.loads(_kubectl(cluster, "get", "svc", "dns", "-o", "json"))["spec"]["ports"][0]["nodePort"]
    )
    env = {**os.environ, **podman_env(cluster.paths)}
    workers = [n.name for n in cluster.store.nodes(CLUSTER) if not n.is_control]
    for node in workers:
        cmd = [
            "podman",
            "exec",
            "-d",
            container_name(node),
            "python3",
            "-c",
            LISTEN_UDP,
            str(node_port),
            node,
        ]
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=60)
    time.sleep(1)
    _reconcile()
    svc = json.loads(_kubectl(cluster, "get", "svc", "dns", "-o", "json"))
    assert svc["status"]["loadBalancer"]["ingress"][0]["ports"] == [{"port": 5353, "protocol": "UDP"}]
    assert outside.ask_udp(outside.denied, _public_ip(cluster), 5353) in workers
    _kubectl(cluster, "delete", "svc", "dns")


def _exec(env: Env, node: str, *argv: str, detach: bool = False) -> None:
    cmd = ["podman", "exec", *(["-d"] if detach else []), container_name(node), *argv]
    subprocess.run(
        cmd, env={**os.environ, **podman_env(env.paths)}, check=True, capture_output=True, timeout=60
    )


def test_local_policy_follows_the_node_health_check(cluster: Env, outside: Outside, web: int) -> None:
    """``externalTrafficPolicy: Local``: traffic goes to a node only while its health check port
    (kube-proxy's, played by the test on the worker) answers 200; with no such node the Service
    keeps its address and its port takes no connection."""
    edge = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "edge", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": {"app": "edge"},
            "ports": [{"port": 9443, "targetPort": 80}],
        },
    }
    _kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(edge))
    spec = json.loads(_kubectl(cluster, "get", "svc", "edge", "-o", "json"))["spec"]
    node_port, hc = int(spec["ports"][0]["nodePort"]), int(spec["healthCheckNodePort"])
    worker = next(n for n in cluster.store.nodes(CLUSTER) if not n.is_control)
    count = "/tmp/edge-endpoints"
    _exec(cluster, worker.name, "sh", "-c", f"echo 1 > {count}")
    _exec(cluster, worker.name, "python3", "-c", LISTEN, str(node_port), worker.name, detach=True)
    _exec(cluster, worker.name, "python3", "-c", HEALTH, str(hc), count, detach=True)
    time.sleep(1)
    pub = _public_ip(cluster)

    def row() -> dict[str, str]:
        return next(r for r in _show_load_balancers() if r["service"] == "default/edge")

    _reconcile()
    assert outside.fetch(outside.allowed, pub, 9443) == worker.name
    assert (row()["backends"], row()["traffic_policy"]) == (worker.private_ip, "Local")
    _exec(cluster, worker.name, "sh", "-c", f"echo 0 > {count}")  # its endpoint went away
    _reconcile()
    assert outside.fetch(outside.allowed, pub, 9443).startswith("FAILED")
    assert row()["backends"] == "" and row()["state"] == "serving"
    svc = json.loads(_kubectl(cluster, "get", "svc", "edge", "-o", "json"))
    assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == pub
    _exec(cluster, worker.name, "sh", "-c", f"echo 2 > {count}")
    _reconcile()
    assert outside.fetch(outside.allowed, pub, 9443) == worker.name
    _kubectl(cluster, "delete", "svc", "edge")


def test_deleting_the_service_removes_its_rules(cluster: Env, outside: Outside, web: int) -> None:
    _kubectl(cluster, "delete", "svc", "web")
    _reconcile()
    table = hostnft.current(CLUSTER)
    assert table is not None and "dnat" not in table and "drop" not in table
    assert outside.fetch(outside.allowed, _public_ip(cluster), PORT).startswith("FAILED")


def test_cluster_delete_leaves_no_table(cluster: Env) -> None:
    assert hostnft.current(CLUSTER) is not None
    assert run_cli(root, ["-q", "delete", CLUSTER, "--yes"]) == 0
    assert hostnft.current(CLUSTER) is None
    assert not Path(cluster.paths.local_dir(CLUSTER)).exists()
    version_checks.check_nothing_left(cluster, CLUSTER)
