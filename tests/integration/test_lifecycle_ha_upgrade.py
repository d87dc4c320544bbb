"""HA upgrade end to end on local nodes: 3 control-plane nodes + 1 worker, UPGRADE_FROM -> UPGRADE_TO
(tests/versions.py).

`koral-play upgrade` with a new recorded bundle must: take the etcd snapshot first; run
`kubeadm upgrade apply` on the first control node only; `kubeadm upgrade node` on the other
control nodes one at a time; then the worker (drain, `kubeadm upgrade node`, new kubelet,
Ready, uncordon). The order is read from the kubeadm double's call records on each node
(/var/lib/kubeadm-double/calls.jsonl, host clock) and from ansible-runner's events of the run.
The Kubernetes binaries are the test doubles (tests/doubles).

Offline, the new version's images must be in every node's containerd before `kubeadm upgrade`
pre-pulls them, containerd's sandbox image follows the new version, and the kubelet units and
crictl come from the new bundle (each node's copies are made stale before the upgrade, so only
an upgrade that installs them passes); a second run of the upgrade playbook changes nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from koral_ansible.bundle import BuildResult, record_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge
from koral_ansible.providers.local.nodes import container_name
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.state import ClusterState
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home
from tests.versions import UPGRADE_FROM, UPGRADE_TO

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

NAME = "lhaup"
VERSION = UPGRADE_FROM
TARGET = UPGRADE_TO
CONTROLS = [f"{NAME}-control-{i}" for i in (1, 2, 3)]
WORKER = f"{NAME}-node-1"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
UNITS = {
    "kubelet.service": "/etc/systemd/system/kubelet.service",
    "10-kubeadm.conf": "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
}
CRICTL = "/usr/local/bin/crictl"
CONTAINERD_PID = "systemctl show -p MainPID --value containerd"
# The bundles of this module's cluster, by Kubernetes version.
BUNDLES: dict[str, BuildResult] = {}
# containerd's main PID on each node before the upgrade.
CONTAINERD_BEFORE: dict[str, str] = {}


def _bundle(tmp: pytest.TempPathFactory, version: str) -> tuple[Path, object]:
    root_dir = tmp.mktemp(f"bundle-{version}")
    result = make_double_bundle(root_dir, version, iso=True)
    assert result.iso is not None
    BUNDLES[version] = result
    return Path(result.iso), result.manifest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A 3+1 cluster made with `koral-play create --control-nodes 3`, the TARGET bundle recorded beside it."""
    with cli_home(tmp_path_factory.mktemp("koral-home"), NAME) as home:
        iso, _ = _bundle(tmp_path_factory, VERSION)
        target_iso, target_manifest = _bundle(tmp_path_factory, TARGET)
        record_bundle(home, target_manifest, None, target_iso)  # type: ignore[arg-type]
        started = time.monotonic()
        args = ["create", NAME, "--control-nodes", "3", "--size", "1", "--allowed-cidrs", "10.0.0.0/8"]
        args += ["--bundle", str(iso), "--kubernetes-version", VERSION]
        assert run_cli(root, args) == 0
        print(f"create 3+1: {time.monotonic() - started:.0f}s")
        yield Env.open(str(home), quiet=True)


def node_exec(env: Env, node: str, command: str) -> str:
    proc = subprocess.run(
        ["podman", "exec", container_name(node), "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, **podman_env(env.paths)},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{node}: {command}: {proc.stderr}"
    return proc.stdout.strip()


def kubeadm_upgrades(env: Env, node: str) -> list[tuple[float, list[str]]]:
    """(time, argv) of every `kubeadm upgrade apply|node` the double recorded on ``node``."""
    lines = node_exec(env, node, "cat /var/lib/kubeadm-double/calls.jsonl").splitlines()
    calls = [json.loads(line) for line in lines]
    return [
        (float(c["time"]), c["argv"])
        for c in calls
        if c["argv"][:1] == ["upgrade"] and c["argv"][1:2] in (["apply"], ["node"]) and c["rc"] == 0
    ]


def role_spans(run: Path) -> dict[str, tuple[float, float, list[str]]]:
    """Per host: first and last event time of kubernetes_upgrade tasks, and their task names in order.

    Delegated tasks (drain, Ready, uncordon run on the first control node for the node being
    upgraded) are recorded under the upgraded node's name, which is what the order is about.
    """
    seen: dict[str, list[tuple[float, str]]] = {}
    for path in (run / "artifacts" / "run" / "job_events").glob("*.json"):
        ev = json.loads(path.read_text())
        data = ev.get("event_data") or {}
        if (
            ev.get("event") not in ("runner_on_ok", "runner_on_failed")
            or data.get("role") != "kubernetes_upgrade"
        ):
            continue
        stamp = datetime.fromisoformat(ev["created"]).timestamp()
        seen.setdefault(data["host"], []).append((stamp, str(data.get("task", ""))))
    spans = {}
    for host, items in seen.items():
        items.sort()
        spans[host] = (items[0][0], items[-1][0], [task for _, task in items])
    return spans


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bundle_crictl(bundle: BuildResult) -> bytes:
    with tarfile.open(bundle.directory / "cri-tools" / "crictl-linux-amd64.tar.gz") as tar:
        member = tar.extractfile("crictl")
        assert member is not None
        return member.read()


def _make_stale(env: Env) -> None:
    """Every node's kubelet units, crictl and containerd sandbox image as an older install left them."""
    for node in [*CONTROLS, WORKER]:
        for path in UNITS.values():
            node_exec(env, node, f"echo '# from the old bundle' >> {path}")
        node_exec(env, node, f"printf '#!/bin/sh\\necho crictl old\\n' > {CRICTL}")
        node_exec(
            env,
            node,
            "sed -i 's|^\\( *sandbox_image = \\).*|\\1\"registry.k8s.io/pause:3.8\"|' "
            "/etc/containerd/config.toml",
        )
        CONTAINERD_BEFORE[node] = node_exec(env, node, CONTAINERD_PID)


def test_ha_upgrade_order(cluster: Env) -> None:
    env = cluster
    _make_stale(env)
    started = time.monotonic()
    code = run_cli(root, ["upgrade", NAME, "--version", TARGET])
    print(f"upgrade 3+1: {time.monotonic() - started:.0f}s")
    assert code == 0
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING and record.spec.kubernetes_version == TARGET

    nodes = json.loads(node_exec(env, CONTROLS[0], f"{KUBECTL} get nodes -o json"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted([*CONTROLS, WORKER])
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {f"v{TARGET}"}
    assert not any(n["spec"].get("unschedulable") for n in nodes)

    # kubeadm: `upgrade apply` once, on the first control node only; `upgrade node` once on each
    # other node; one after the other in the order control-1, control-2, control-3, worker.
    calls = {n: kubeadm_upgrades(env, n) for n in [*CONTROLS, WORKER]}
    assert [argv[:3] for _, argv in calls[CONTROLS[0]]] == [["upgrade", "apply", f"v{TARGET}"]], calls
    for node in [*CONTROLS[1:], WORKER]:
        assert [argv[:2] for _, argv in calls[node]] == [["upgrade", "node"]], (node, calls[node])
    times = [calls[n][0][0] for n in [*CONTROLS, WORKER]]
    assert times == sorted(times), calls

    # The etcd snapshot was taken (on the first control node) before anything was upgraded.
    snapshots = node_exec(env, CONTROLS[0], "stat -c %Y /var/backups/koral/etcd/*.db").split()
    assert len(snapshots) == 1 and float(snapshots[0]) <= times[0], (snapshots, times)
    phases = [e.phase for e in env.store.events(NAME) if e.operation == "upgrade" and e.result == "Completed"]
    assert phases.index("etcd-backup") < phases.index("upgrade"), phases

    # Serially: each node's whole upgrade (its role tasks) ends before the next node's begins,
    # and the worker is drained, upgraded, Ready and uncordoned in that order.
    (run,) = sorted(env.paths.runs(NAME).glob("*-upgrade-upgrade*"))
    spans = role_spans(run)
    order = [*CONTROLS, WORKER]
    assert set(order) <= set(spans), spans.keys()
    for before, after in itertools.pairwise(order):
        assert spans[before][1] <= spans[after][0], (before, after, spans[before][:2], spans[after][:2])
    worker_tasks = spans[WORKER][2]

    def first(words: str) -> int:
        return next(i for i, t in enumerate(worker_tasks) if words in t)

    assert (
        first("drain | Drain")
        < first("kubeadm | Upgrade this node")
        < first("kubelet | Install")
        < first("ready | Wait")
        < first("ready | Uncordon")
    ), worker_tasks


def test_upgrade_brought_the_new_bundle_to_every_node(cluster: Env) -> None:
    """After the upgrade: the new images in containerd, its sandbox image, units and crictl."""
    env = cluster
    target = BUNDLES[TARGET]
    images = set(target.manifest.images)
    assert any(ref.endswith(f"/kube-apiserver:v{TARGET}") for ref in images), images
    (pause,) = [ref for ref in images if ref.rsplit(":", 1)[0].endswith("/pause")]
    crictl = _sha256(_bundle_crictl(target))
    units = {name: _sha256((target.directory / name).read_bytes()) for name in UNITS}
    for node in [*CONTROLS, WORKER]:
        have = set(node_exec(env, node, "ctr -n k8s.io images ls -q").split())
        assert images <= have, (node, sorted(images - have))
        sandbox = node_exec(env, node, "grep -E '^ *sandbox_image = ' /etc/containerd/config.toml")
        assert sandbox.split("=", 1)[1].strip() == json.dumps(pause), (node, sandbox)
        # config.toml changed, so containerd was restarted to read it
        assert node_exec(env, node, CONTAINERD_PID) != CONTAINERD_BEFORE[node], node
        for name, path in UNITS.items():
            assert node_exec(env, node, f"sha256sum {path}").split()[0] == units[name], (node, path)
        assert node_exec(env, node, f"sha256sum {CRICTL}").split()[0] == crictl, node
        assert node_exec(env, node, "systemctl is-active kubelet") == "active", node

    # The snapshot before the upgrade was taken with the etcdctl the old bundle ships (the nodes
    # have none in PATH, like real kubeadm nodes), when the bundle layout carries one.
    old = BUNDLES[VERSION]
    if "etcd/etcdctl" in old.manifest.files:
        assert node_exec(env, CONTROLS[0], "command -v etcdctl || echo none") == "none"
        (run,) = sorted(env.paths.runs(NAME).glob("*-upgrade-etcd-backup*"))
        used = [
            json.loads(p.read_text()).get("event_data", {}).get("task", "")
            for p in (run / "artifacts" / "run" / "job_events").glob("*.json")
            if json.loads(p.read_text()).get("event") == "runner_on_ok"
        ]
        assert any("bundle's etcdctl" in t for t in used), used

    # A second run of the upgrade playbook (new version and bundle recorded) changes nothing.
    record = env.store.get_cluster(NAME)
    with OperationFrame(env, NAME, "converge", busy=None, failed=None) as frame:
        result = converge(env, frame, record, "upgrade.yml")
    assert result.changed == 0, result.stats
