"""Day-2 operations end to end on local nodes, through the CLI, on one cluster reused step by step.

The tests run in file order on one module-scoped cluster (1 control + 1 worker to start):
scale up to 3 (koral-play killed with SIGKILL mid-join and re-run; a second operation refused
by the lock meanwhile; only the first control node and the new nodes contacted), scale down to
2, a user's port-forward rule to the first worker still reaching it from an outside network
namespace (tests/integration/outside_netns.py) after both scales, upgrade refusals, an upgrade
that fails on the second worker and resumes from it, removal of a dead worker, stop/start,
reset. The Kubernetes binaries are the test doubles (tests/doubles).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from koral_ansible.bundle import record_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge
from koral_ansible.providers.local.nodes import container_name
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.state import ClusterState
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home
from tests.integration.outside_netns import Outside, outside_netns
from tests.versions import OLDER, TOO_FAR, TOO_FAR_WORDS, UPGRADE_FROM, UPGRADE_TO

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

NAME = "ltest"
VERSION = UPGRADE_FROM
TARGET = UPGRADE_TO
CONTROL = f"{NAME}-control-1"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


def _bundle(tmp: pytest.TempPathFactory, version: str) -> tuple[Path, object]:
    root_dir = tmp.mktemp(f"bundle-{version}")
    result = make_double_bundle(root_dir, version, iso=True)
    assert result.iso is not None
    return Path(result.iso), result.manifest


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), NAME) as h:
        yield h


@pytest.fixture(scope="module")
def cluster(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """A 1+1 cluster made with `koral-play create`, and the upgrade bundle recorded beside it."""
    iso, _ = _bundle(tmp_path_factory, VERSION)
    target_iso, target_manifest = _bundle(tmp_path_factory, TARGET)
    record_bundle(home, target_manifest, None, target_iso)  # type: ignore[arg-type]
    started = time.monotonic()
    code = run_cli(
        root,
        [
            "create",
            NAME,
            "--size",
            "1",
            "--bundle",
            str(iso),
            "--allowed-cidrs",
            "10.0.0.0/8",
            "--kubernetes-version",
            VERSION,
        ],
    )
    assert code == 0
    print(f"create 1+1: {time.monotonic() - started:.0f}s")
    return Env.open(str(home), quiet=True)


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    with outside_netns("kl") as ns:  # inside the cluster's allowed 10.0.0.0/8
        yield ns


RULE_PORT, LISTEN_PORT, WORKER = 18080, 30080, f"{NAME}-node-1"


def _rule_reaches_worker(env: Env, outside: Outside) -> None:
    pub = str(env.store.get_cluster(NAME).endpoint["public_ip"])
    assert outside.connect(outside.allowed, pub, RULE_PORT) == "OPEN"
    assert outside.connect(outside.denied, pub, RULE_PORT).startswith("FAILED")


def node_exec(env: Env, node: str, command: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["podman", "exec", container_name(node), "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, **podman_env(env.paths)},
        timeout=120,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"{node}: {command}: {proc.stderr}"
    return proc.stdout.strip()


def api_nodes(env: Env) -> dict[str, dict[str, object]]:
    items = json.loads(node_exec(env, CONTROL, f"{KUBECTL} get nodes -o json"))["items"]
    return {i["metadata"]["name"]: i for i in items}


def run_hosts(env: Env, playbook_stem: str) -> list[set[str]]:
    """Hosts that had events in each run of ``playbook_stem`` (oldest first)."""
    out = []
    for run in sorted(env.paths.runs(NAME).glob(f"*-{playbook_stem}*")):
        hosts = set()
        for f in (run / "artifacts" / "run" / "job_events").glob("*.json"):
            host = (json.loads(f.read_text()).get("event_data") or {}).get("host")
            if host:
                hosts.add(host)
        out.append(hosts)
    return out


# Actions that run on the controller only (no connection to the host they are recorded under).
LOCAL_ACTIONS = {
    f"ansible.builtin.{a}"
    for a in (
        "assert",
        "debug",
        "fail",
        "group_by",
        "include_role",
        "include_tasks",
        "meta",
        "set_fact",
        "validate_argument_spec",
    )
}
GATHER_ACTIONS = {"ansible.builtin.setup", "ansible.builtin.gather_facts"}
TOKEN_TASK = "join_worker | Create a bootstrap token for the joining workers"
CNI_WAITS = {"wait | Wait for the CNI DaemonSet to roll out", "wait | Wait for every node to be Ready"}


def run_events(run: Path) -> list[dict[str, Any]]:
    """The event_data of every task result of one run (ok, changed, failed, unreachable)."""
    out = []
    for f in (run / "artifacts" / "run" / "job_events").glob("*.json"):
        ev = json.loads(f.read_text())
        if ev.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            out.append({**ev["event_data"], "event": ev["event"]})
    return out


def control_touches(run: Path, control_port: int) -> tuple[set[str], int]:
    """Tasks of a run that reached the first control node, and how often the join token was made.

    A task reaches it when recorded under it with an action that connects, or when delegated to
    its SSH port. The token task is no_log (its result, delegation included, is censored), so it
    is counted by name: the kubeadm role delegates it to the first control node.
    """
    touched, tokens = set(), 0
    for data in run_events(run):
        res = data.get("res")
        delegated = (res.get("_ansible_delegated_vars") if isinstance(res, dict) else None) or {}
        action = str(data.get("resolved_action") or data.get("task_action"))
        on_control = data["host"] == CONTROL and action not in LOCAL_ACTIONS
        to_control = (
            delegated.get("ansible_connection") != "local" and delegated.get("ansible_port") == control_port
        )
        if on_control or to_control:
            touched.add(str(data["task"]))
        tokens += data["task"] == TOKEN_TASK
    return touched, tokens


def _processes_using(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline and "ansible" in cmdline:
                pids.append(int(proc.name))
    return pids


def koral(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    started = time.monotonic()
    code = run_cli(root, list(args))
    _, err = capsys.readouterr()
    with capsys.disabled():
        print(
            f"\nkoral-play {' '.join(args)}: exit {code} in {time.monotonic() - started:.0f}s",
            file=sys.stderr,
        )
    return code, err


def test_port_forward_rule_to_a_worker(
    cluster: Env, outside: Outside, capsys: pytest.CaptureFixture[str]
) -> None:
    """A listener on the first worker's NodePort range (koral's node firewall admits the allowed
    CIDRs there), forwarded from the public address to the outside namespace's first address."""
    listen = f"systemd-run --unit=koral-rule-test python3 -m http.server {LISTEN_PORT} --bind 0.0.0.0"
    node_exec(cluster, WORKER, listen)
    deadline = time.monotonic() + 60  # systemd-run returns before python3 listens
    while not node_exec(cluster, WORKER, f"ss -Hltn 'sport = :{LISTEN_PORT}'", check=False):
        assert time.monotonic() < deadline, "the test listener never came up"
        time.sleep(0.5)
    code, err = koral(
        capsys, "port-forward", "add", NAME, "--public-port", str(RULE_PORT), "--private-port",
        str(LISTEN_PORT), "--node", WORKER, "--cidr", f"{outside.allowed}/32",
    )  # fmt: skip
    assert code == 0, err
    _rule_reaches_worker(cluster, outside)


def test_scale_up_killed_locked_resumed_limited(cluster: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env = cluster
    koral_play = Path(sys.executable).parent / "koral-play"
    proc = subprocess.Popen(
        [str(koral_play), "--quiet", "scale", NAME, "--size", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            op = env.store.last_operation(NAME)
            runs = list(env.paths.runs(NAME).glob("*-scale-scale*"))
            if op and op.operation == "scale" and op.phase == "join" and runs:
                break
            time.sleep(1)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(10)  # well inside the join play
        # A second scale (which a Scaling cluster accepts, to resume) is refused by the lock at
        # once; an operation the state forbids is refused by the state check. Nothing changes.
        code, err = koral(capsys, "scale", NAME, "--size", "3")
        assert code == 1 and "is busy" in err and "scale (pid" in err, err
        code, err = koral(capsys, "stop", NAME)
        assert code == 2 and "Scaling" in err, err
        assert env.store.get_cluster(NAME).state is ClusterState.SCALING
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # SIGKILL leaves the run's ansible-playbook orphaned; the re-run (holding the lock) stops it
    # before anything else, so nothing keeps changing the nodes behind its back.
    killed_run = sorted(env.paths.runs(NAME).glob("*-scale-scale*"))[-1]
    orphans = _processes_using(killed_run)
    assert env.store.last_operation(NAME).status == "interrupted"  # type: ignore[union-attr]

    code, err = koral(capsys, "scale", NAME, "--size", "3")
    assert code == 0, err
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING and record.spec.size == 3
    names = [n.name for n in record.nodes]
    assert names == [CONTROL, f"{NAME}-node-1", f"{NAME}-node-2", f"{NAME}-node-3"]
    assert all(n.state == "Running" for n in record.nodes)
    nodes = api_nodes(env)
    assert sorted(nodes) == sorted(names)
    # Both scale runs (killed and resumed) touched only the first control node and the new nodes:
    # the untouched worker has no event at all, no host gathered facts, and the first control
    # node got only the join token (once) and the kubectl waits for the network and Ready nodes.
    for hosts in run_hosts(env, "scale-scale"):
        assert hosts <= {CONTROL, f"{NAME}-node-2", f"{NAME}-node-3"}, hosts
        assert f"{NAME}-node-1" not in hosts
    control_port = record.control_nodes[0].ssh_port
    scale_runs = sorted(env.paths.runs(NAME).glob("*-scale-scale*"))
    for run in scale_runs:
        gathered = [
            e["host"]
            for e in run_events(run)
            if str(e.get("resolved_action") or e.get("task_action")) in GATHER_ACTIONS
        ]
        assert not gathered, (run.name, gathered)
        touched, tokens = control_touches(run, control_port)
        assert touched <= CNI_WAITS and tokens <= 1, (run.name, touched, tokens)
    touched, tokens = control_touches(scale_runs[-1], control_port)
    assert touched == CNI_WAITS and tokens == 1, (touched, tokens)
    assert not _processes_using(killed_run)
    # SIGKILL leaves no event; the re-run says it resumed the interrupted operation.
    events = [(e.phase, e.result, e.message) for e in env.store.events(NAME) if e.operation == "scale"]
    assert ("start", "Started", "resumed") in events, events
    assert not orphans or any(e[:2] == ("start", "Cleaned") for e in events), (orphans, events)
    assert events[-1][:2] == ("end", "Completed")


def test_scale_down_drains_and_removes_newest(cluster: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env = cluster
    code, err = koral(capsys, "scale", NAME, "--size", "2")
    assert code == 0, err
    record = env.store.get_cluster(NAME)
    assert [n.name for n in record.workers] == [f"{NAME}-node-1", f"{NAME}-node-2"]
    assert sorted(api_nodes(env)) == sorted(n.name for n in record.nodes)
    ps = subprocess.run(
        ["podman", "ps", "-a", "-q", "--filter", f"name={container_name(NAME + '-node-3')}"],
        capture_output=True,
        text=True,
        env={**os.environ, **podman_env(env.paths)},
        check=True,
    )
    assert ps.stdout.strip() == ""
    hosts = run_hosts(env, "scale-remove-node")[-1]
    assert hosts <= {CONTROL, f"{NAME}-node-3"}, hosts


def test_port_forward_rule_still_reaches_the_worker_after_scaling(
    cluster: Env, outside: Outside, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scaling up (a new node, the provider's table rendered again) and down (a node removed) kept
    the user's rule: the network rules are applied again for the nodes there are now."""
    _rule_reaches_worker(cluster, outside)
    code, err = koral(capsys, "port-forward", "delete", NAME, "pf-1")
    assert code == 0, err
    node_exec(cluster, WORKER, "systemctl stop koral-rule-test")
    pub = str(cluster.store.get_cluster(NAME).endpoint["public_ip"])
    assert outside.connect(outside.allowed, pub, RULE_PORT).startswith("FAILED")


def test_upgrade_refusals_change_nothing(cluster: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env = cluster
    before = env.store.last_operation(NAME)
    events_before = len(env.store.events(NAME))
    refused = ((TOO_FAR, TOO_FAR_WORDS), (OLDER, "only forward"), (VERSION, "only forward"))
    for version, words in refused:
        code, err = koral(capsys, "upgrade", NAME, "--version", version)
        assert code == 2, err
        assert words in err, err
    assert env.store.last_operation(NAME) == before
    assert len(env.store.events(NAME)) == events_before
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING and record.spec.kubernetes_version == VERSION


def test_upgrade_fails_on_second_worker_then_resumes(
    cluster: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env = cluster
    second = f"{NAME}-node-2"
    # Break the second worker the way a node breaks: its kubelet kubeconfig is gone, so
    # `kubeadm upgrade node` there cannot reach the cluster.
    node_exec(env, second, "mv /etc/kubernetes/kubelet.conf /root/kubelet.conf.saved")
    code, err = koral(capsys, "upgrade", NAME, "--version", TARGET)
    assert code == 1, err
    assert second in err, err
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.ALERT and record.spec.kubernetes_version == VERSION
    nodes = api_nodes(env)
    versions = {n: i["status"]["nodeInfo"]["kubeletVersion"] for n, i in nodes.items()}  # type: ignore[index]
    assert versions[CONTROL] == versions[f"{NAME}-node-1"] == f"v{TARGET}", versions
    assert versions[second] == f"v{VERSION}", versions

    node_exec(env, second, "mv /root/kubelet.conf.saved /etc/kubernetes/kubelet.conf")
    code, err = koral(capsys, "upgrade", NAME, "--version", TARGET)
    assert code == 0, err
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING and record.spec.kubernetes_version == TARGET
    nodes = api_nodes(env)
    assert {i["status"]["nodeInfo"]["kubeletVersion"] for i in nodes.values()} == {f"v{TARGET}"}  # type: ignore[index]
    assert not any(i["spec"].get("unschedulable") for i in nodes.values())  # type: ignore[attr-defined]

    # The resume did not redo finished nodes: one `upgrade apply` on the control node, one
    # `upgrade node` on the first worker; the etcd snapshot was taken once, before the first run.
    def upgrade_calls(node: str) -> list[list[str]]:
        lines = node_exec(env, node, "cat /var/lib/kubeadm-double/calls.jsonl").splitlines()
        calls = [json.loads(x)["argv"] for x in lines]
        return [c for c in calls if "upgrade" in c and c[-1] != "plan"]

    assert len([c for c in upgrade_calls(CONTROL) if "apply" in c]) == 1
    assert len(upgrade_calls(f"{NAME}-node-1")) == 1
    phases = [(e.phase, e.result) for e in env.store.events(NAME) if e.operation == "upgrade"]
    assert phases.count(("etcd-backup", "Completed")) == 1, phases
    assert node_exec(env, CONTROL, "ls /var/backups/koral/etcd | grep -c 'db$'") == "1"


def test_remove_dead_worker(cluster: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env = cluster
    dead = f"{NAME}-node-2"
    subprocess.run(
        ["podman", "stop", "-t", "2", container_name(dead)],
        env={**os.environ, **podman_env(env.paths)},
        capture_output=True,
        check=True,
    )
    code, err = koral(capsys, "remove-node", NAME, dead, "--ungraceful")
    assert code == 0, err
    record = env.store.get_cluster(NAME)
    assert [n.name for n in record.nodes] == [CONTROL, f"{NAME}-node-1"] and record.spec.size == 1
    assert sorted(api_nodes(env)) == [CONTROL, f"{NAME}-node-1"]
    assert run_hosts(env, "remove-node-remove-node")[-1] == {CONTROL}
    # The last worker and the control node are refused before anything changes.
    code, err = koral(capsys, "remove-node", NAME, f"{NAME}-node-1")
    assert code == 2 and "last worker" in err, err
    code, err = koral(capsys, "remove-node", NAME, CONTROL)
    assert code == 2 and "control-plane" in err, err


def test_stop_start(cluster: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env = cluster
    code, err = koral(capsys, "stop", NAME)
    assert code == 0, err
    assert env.store.get_cluster(NAME).state is ClusterState.STOPPED
    code, err = koral(capsys, "start", NAME)
    assert code == 0, err
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING
    nodes = api_nodes(env)
    for item in nodes.values():
        ready = [c for c in item["status"]["conditions"] if c["type"] == "Ready"]  # type: ignore[index]
        assert ready and ready[0]["status"] == "True"
    assert run_hosts(env, "start-wait-ready")[-1] == {CONTROL}


def test_reset(cluster: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env = cluster
    record = env.store.get_cluster(NAME)
    # Without the confirmation the playbook refuses before touching a node.
    with (
        pytest.raises(Exception, match="reset_confirmation=true"),
        OperationFrame(env, NAME, "converge", busy=None, failed=None) as frame,
    ):
        converge(env, frame, record, "reset.yml")
    assert node_exec(env, CONTROL, "test -f /etc/kubernetes/admin.conf && echo yes") == "yes"

    code, err = koral(capsys, "reset", NAME, "--yes")
    assert code == 0, err
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.CREATED
    for node in record.nodes:
        left = node_exec(
            env,
            node.name,
            "ls -d /etc/kubernetes /var/lib/etcd 2>/dev/null; ls -A /etc/cni/net.d 2>/dev/null; true",
        )
        assert left == "", (node.name, left)
        assert node_exec(env, node.name, "systemctl is-active kubelet", check=False) != "active"
    # Machines stay; a second reset changes nothing.
    with OperationFrame(env, NAME, "converge", busy=None, failed=None) as frame:
        result = converge(env, frame, record, "reset.yml", extra={"reset_confirmation": True})
    assert result.changed == 0, result.stats
