"""HA upgrade end to end on local nodes: 3 control-plane nodes + 1 worker, UPGRADE_FROM -> UPGRADE_TO
(tests/versions.py).

`koral-play upgrade` with a new recorded bundle must: take the etcd snapshot first; run
`kubeadm upgrade apply` on the first control node only; `kubeadm upgrade node` on the other
control nodes one at a time; then the worker (drain, `kubeadm upgrade node`, new kubelet,
Ready, uncordon). The order is read from the kubeadm double's call records on each node
(/var/lib/kubeadm-double/calls.jsonl, host clock) and from ansible-runner's events of the run.
The Kubernetes binaries are the test doubles (tests/doubles).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from koral_ansible.bundle import record_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
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


def _bundle(tmp: pytest.TempPathFactory, version: str) -> tuple[Path, object]:
    root_dir = tmp.mktemp(f"bundle-{version}")
    result = make_double_bundle(root_dir, version, iso=True)
    assert result.iso is not None
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


def test_ha_upgrade_order(cluster: Env) -> None:
    env = cluster
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
        assert [argv for _, argv in calls[node]] == [["upgrade", "node"]], (node, calls[node])
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
