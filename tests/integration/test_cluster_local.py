"""End to end on local nodes, through the CLI: create 1+2, routes, kubeconfig, converge again, delete.

The Kubernetes binaries in the bundle are the test doubles from tests/doubles (no real kubeadm
can exist here); everything else is real: podman nodes with systemd, sshd, containerd, nftables
port forwards, haproxy, the ansible-runner run of playbooks/create.yml.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from koral_ansible import jobs
from koral_ansible.bundle import verify_bundle
from koral_ansible.cgroup import cgroup_version
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge
from koral_ansible.progress import LineProgress
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.state import ClusterRecord, ClusterState
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home
from tests.versions import DEFAULT, PAUSE

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

VERSION = DEFAULT
REGISTRY_SECRET = "it-registry-pass-1234"


REAL_BUNDLE_ENV = "KORAL_REAL_BUNDLE"


@pytest.fixture(scope="module", params=["doubles", "real"])
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test bundle (test-double control plane), or a real bundle given by KORAL_REAL_BUNDLE."""
    if request.param == "real":
        real = os.environ.get(REAL_BUNDLE_ENV)
        if not real:
            pytest.skip(f"no real Kubernetes bundle: set {REAL_BUNDLE_ENV}=PATH (directory or ISO)")
        return Path(real)
    root_dir = tmp_path_factory.mktemp("bundle")
    result = make_double_bundle(root_dir, VERSION, iso=True)
    assert result.iso is not None
    return Path(result.iso)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), "itest") as h:
        yield h


def ssh(env: Env, port: int, command: str) -> str:
    record = env.store.get_cluster("itest")
    host = record.endpoint["public_ip"]
    proc = subprocess.run(
        [
            "ssh",
            "-i",
            str(env.paths.ssh_key("itest")),
            "-p",
            str(port),
            "-o",
            f"UserKnownHostsFile={env.paths.known_hosts('itest')}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{host}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_create_routes_converge_delete(home: Path, bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret_file = home.parent / "registry-password"
    secret_file.write_text(REGISTRY_SECRET)
    # Images come from the bundle; the private registry is configured (hosts.toml + auth) but never needed.
    create_args = [
        "create", "itest", "--size", "2", "--bundle", str(bundle),
        "--kubernetes-version", verify_bundle(bundle, deep=False).kubernetes_version,
        "--allowed-cidrs", "10.0.0.0/8,127.0.0.0/8",
        "--registry-url", "http://registry.invalid:5000", "--registry-username", "koral",
        "--registry-password-file", str(secret_file),
    ]  # fmt: skip
    code = run_cli(root, create_args)
    _, err = capsys.readouterr()
    assert code == 0, err
    env = Env.open(str(home), quiet=True)
    record = env.store.get_cluster("itest")
    assert record.state is ClusterState.RUNNING
    assert [n.name for n in record.nodes] == ["itest-control-1", "itest-node-1", "itest-node-2"]
    assert all(n.state == "Running" for n in record.nodes)

    # Koral's port convention: 2222 -> control, 2223.. -> workers, over host keys recorded on first contact.
    for i, node in enumerate(record.nodes):
        assert ssh(env, 2222 + i, "hostname") == node.name
    # The node runtime is the bundle's (Debian's containerd 2.1.9, runc, CNI plugins), its config.toml
    # version 3 as containerd reads it, the sandbox tag from the bundle's kubeadm image list.
    assert " 2.1.9" in ssh(env, 2223, "containerd --version")
    dump = ssh(env, 2223, "containerd config dump")
    assert dump.startswith("version = 3") or "\nversion = 3\n" in dump
    assert f"sandbox = 'registry.invalid:5000/pause:{PAUSE}'" in dump
    assert "bin_dirs = ['/opt/cni/bin']" in dump
    assert set(ssh(env, 2223, "ls /opt/cni/bin").split()) >= {"bridge", "host-local", "loopback", "portmap"}
    # The API load balancer reaches the (double) API server on the control node.
    ep = record.endpoint
    with socket.create_connection((ep["public_ip"], ep["api_port"]), timeout=5):
        pass

    # kubeconfig: 0600, server = public endpoint; the Node objects registered through the LB.
    kc = env.paths.kubeconfig("itest")
    assert stat.S_IMODE(kc.stat().st_mode) == 0o600
    cfg = yaml.safe_load(kc.read_text())
    assert cfg["clusters"][0]["cluster"]["server"] == f"https://{ep['public_ip']}:{ep['api_port']}"
    nodes = json.loads(ssh(env, 2222, "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json"))
    assert sorted(i["metadata"]["name"] for i in nodes["items"]) == [n.name for n in record.nodes]

    # Events and show.
    code = run_cli(root, ["show", "itest", "-o", "json"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["state"] == "Running"
    phases = {(e.phase, e.result) for e in env.store.events("itest")}
    assert ("provision", "Completed") in phases and ("configure", "Completed") in phases

    # On a cgroup v1 host local nodes opt in by themselves: recorded in the spec, shown, a warning
    # event, and the kubelets run with failCgroupV1: false (a 1.35+ kubelet refuses cgroup v1
    # otherwise, KEP-5573; the kubelet double too). On a cgroup v2 host nothing changes.
    v1 = cgroup_version() == 1
    assert json.loads(out)["allow_cgroup_v1"] is v1
    assert record.spec.allow_cgroup_v1 is v1
    assert (("preflight", "warning") in phases) is v1
    assert ("failCgroupV1: false" in ssh(env, 2223, "cat /var/lib/kubelet/config.yaml")) is v1

    # A second converge of the unchanged cluster changes nothing.
    with OperationFrame(env, "itest", "converge", busy=None, failed=None) as frame:
        result = converge(env, frame, record, "create.yml")
    assert result.changed == 0, result.stats

    _job_and_node_usage(env)
    _dashboard_on_off(env, record, bundle, capsys)

    # Delete leaves nothing behind.
    code = run_cli(root, ["delete", "itest", "--yes"])
    assert code == 0
    assert env.store.find_cluster("itest") is None
    penv = {**os.environ, **podman_env(env.paths)}
    ps = subprocess.run(
        ["podman", "ps", "-a", "--filter", "label=koral.cluster=itest", "-q"],
        capture_output=True,
        text=True,
        env=penv,
        check=True,
    )
    assert ps.stdout.strip() == ""
    nets = subprocess.run(
        ["podman", "network", "ls", "-q"], capture_output=True, text=True, env=penv, check=True
    )
    assert "koral-itest" not in nets.stdout.split()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert "koral_itest" not in tables
    assert not env.paths.cluster_dir("itest").exists()
    assert run_cli(root, ["delete", "itest", "--yes"]) == 0  # twice is fine

    # No secret in any runner artifact.
    grep = subprocess.run(
        ["grep", "-rl", REGISTRY_SECRET, str(home)], capture_output=True, text=True, check=False
    )
    assert grep.stdout == ""


def _job_and_node_usage(env: Env) -> None:
    """The console's foundations on real nodes: each node's usage read over SSH, and ``start`` of
    the running cluster as a background job (the real worker, lock, Ansible run): its view holds
    the same per-host counters as the CLI's progress fed the run's own runner events."""
    usage = jobs.node_usage(env, "itest")
    assert [u.name for u in usage] == ["itest-control-1", "itest-node-1", "itest-node-2"]
    for u in usage:
        assert u.error == "" and u.cpus >= 1, u
        assert 0 < u.memory_used < u.memory_total and 0 < u.disk_used < u.disk_total, u
    runs_before = set(env.paths.runs("itest").iterdir())
    job = jobs.start_job(env, "start", "itest", {})
    deadline = time.monotonic() + 600
    while (done := jobs.get_job(env, job.id)).state == jobs.JobState.RUNNING:
        assert time.monotonic() < deadline, "start job still running"
        time.sleep(1)
    assert (done.state, done.exit_code) == (jobs.JobState.SUCCEEDED, 0), done.error
    view = jobs.job_view(env, job.id)
    assert view.phase == "wait-ready" and view.failures == []
    (run,) = set(env.paths.runs("itest").iterdir()) - runs_before
    events = sorted(
        (json.loads(p.read_text()) for p in run.glob("artifacts/*/job_events/*.json")),
        key=lambda e: int(e.get("counter", 0)),
    )
    cli = LineProgress("start", env.redactor, stream=io.StringIO())
    for event in events:
        cli.runner_event(event)
    assert cli.state.hosts and view.hosts == cli.state.hosts
    assert view.play == cli.state.play and view.task == cli.state.task


def _dashboard_on_off(
    env: Env, record: ClusterRecord, bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dashboard from the bundle on the running cluster: enabled (changed=0 on re-run), its
    Deployment and Service with the bundle's images moved to the cluster's registry, a login
    token that the real kubectl uses with --token, never kept in the koral home; disabled again."""
    from koral_ansible.dashboard.access import host_kubectl

    node_kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf --namespace kubernetes-dashboard"
    code = run_cli(root, ["dashboard", "itest", "--enable"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    with OperationFrame(env, "itest", "dashboard", busy=None, failed=None) as frame:
        again = converge(env, frame, record, "dashboard.yml", extra={"dashboard_state": "present"})
    assert again.changed == 0, again.stats
    deploy = json.loads(ssh(env, 2222, f"{node_kubectl} get deployment kubernetes-dashboard -o json"))
    images = [c["image"] for c in deploy["spec"]["template"]["spec"]["containers"]]
    assert images == ["registry.invalid:5000/kubernetesui/dashboard:v2.7.0"]
    svc = json.loads(ssh(env, 2222, f"{node_kubectl} get service kubernetes-dashboard -o json"))
    assert svc["spec"]["ports"][0]["port"] == 443 and svc["spec"]["ports"][0]["targetPort"] == 8443
    code = run_cli(root, ["show", "itest", "-o", "json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["dashboard"] is True

    code = run_cli(root, ["dashboard", "itest", "--duration", "15m", "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    info = json.loads(out)
    token = info["token"]
    assert token not in err
    ep = record.endpoint
    cfg = yaml.safe_load(env.paths.kubeconfig("itest").read_text())
    with host_kubectl(bundle) as kubectl, tempfile.TemporaryDirectory() as tmp:
        ca = Path(tmp) / "ca.crt"
        ca.write_bytes(base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]))
        used = subprocess.run(
            [
                str(kubectl), "--kubeconfig", "/dev/null",
                f"--server=https://{ep['public_ip']}:{ep['api_port']}", f"--certificate-authority={ca}",
                f"--token={token}", "--namespace", "kubernetes-dashboard",
                "get", "deployment,service", "-o", "name",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert used.returncode == 0, used.stderr
    assert "deployment.apps/kubernetes-dashboard" in used.stdout.split()
    assert "service/kubernetes-dashboard" in used.stdout.split()
    leaked = subprocess.run(["grep", "-rlF", token, str(env.paths.home)], capture_output=True, text=True)
    assert leaked.stdout == "", f"token written to {leaked.stdout}"

    code = run_cli(root, ["dashboard", "itest", "--disable"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    gone = ssh(env, 2222, "kubectl --kubeconfig /etc/kubernetes/admin.conf get namespaces -o name")
    assert "namespace/kubernetes-dashboard" not in gone.split()
    with OperationFrame(env, "itest", "dashboard", busy=None, failed=None) as frame:
        again = converge(env, frame, record, "dashboard.yml", extra={"dashboard_state": "absent"})
    assert again.changed == 0, again.stats
