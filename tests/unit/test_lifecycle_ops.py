"""Day-2 operations without nodes: refusals before anything changes, scale membership on resume."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from koral_ansible.autoscaler import settings
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.errors import InputError
from koral_ansible.operations import lifecycle
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.runner import stop_orphans
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState, NodeRecord, StateStore
from tests.versions import RECORD_FROM, RECORD_OLDER, RECORD_TOO_FAR, RECORD_TOO_FAR_WORDS


@pytest.fixture
def env(koral_home: Paths) -> Env:
    e = Env(paths=koral_home, store=StateStore(koral_home), quiet=True)
    e.store.add_cluster(
        validate_spec({"name": "demo", "size": 2, "kubernetes_version": RECORD_FROM}), ClusterState.RUNNING
    )
    for idx, (name, role) in enumerate(
        [("demo-control-1", "control"), ("demo-node-1", "worker"), ("demo-node-2", "worker")]
    ):
        e.store.upsert_node("demo", NodeRecord(name=name, role=role, idx=idx, state="Running"))
    return e


def test_limit_is_first_control_plus_nodes(env: Env) -> None:
    record = env.store.get_cluster("demo")
    assert lifecycle._limit(record, record.workers[1:]) == "demo-control-1,demo-node-2"
    assert lifecycle._limit(record, []) == "demo-control-1"


def test_scale_members_survive_a_killed_run(env: Env) -> None:
    record = env.store.get_cluster("demo")
    assert lifecycle._members_before(env, record) == ["demo-control-1", "demo-node-1", "demo-node-2"]
    # A scale that added demo-node-3 and was killed: the re-run still knows node-3 is new,
    # although the provider recorded its machine as Running.
    op = env.store.begin_operation("demo", "scale", {"size": 3, "members": ["demo-control-1", "demo-node-1"]})
    env.store.finish_operation(op.id, "interrupted")
    env.store.upsert_node("demo", NodeRecord(name="demo-node-3", role="worker", idx=3, state="Running"))
    assert lifecycle._members_before(env, env.store.get_cluster("demo")) == ["demo-control-1", "demo-node-1"]
    # Once that scale finished, a new one starts from the nodes that joined (not Joining ones).
    env.store.finish_operation(op.id, "succeeded")
    env.store.set_node_state("demo", "demo-node-3", lifecycle.JOINING)
    assert "demo-node-3" not in lifecycle._members_before(env, env.store.get_cluster("demo"))


@pytest.mark.parametrize(
    ("version", "words"),
    [
        (RECORD_TOO_FAR, RECORD_TOO_FAR_WORDS),
        (RECORD_OLDER, "only forward"),
        (RECORD_FROM, "only forward"),
        ("2.0", "X.Y.Z"),
    ],
)
def test_upgrade_refusals_change_nothing(env: Env, version: str, words: str) -> None:
    with pytest.raises(InputError, match=words):
        lifecycle.upgrade(env, "demo", version)
    assert env.store.last_operation("demo") is None
    assert env.store.get_cluster("demo").state is ClusterState.RUNNING


@pytest.mark.parametrize(
    ("node", "words"),
    [("ghost", "has no node"), ("demo-control-1", "last control-plane node")],
)
def test_remove_node_refusals(env: Env, node: str, words: str) -> None:
    with pytest.raises(InputError, match=words):
        lifecycle.remove_node(env, "demo", node)
    assert env.store.last_operation("demo") is None


def test_remove_last_worker_refused(env: Env) -> None:
    env.store.remove_node("demo", "demo-node-2")
    with pytest.raises(InputError, match="last worker"):
        lifecycle.remove_node(env, "demo", "demo-node-1", ungraceful=True)


def test_scale_refused_while_stopped(env: Env) -> None:
    env.store.set_state("demo", ClusterState.STOPPED)
    with pytest.raises(InputError, match="Stopped; scale needs"):
        lifecycle.scale(env, "demo", 3)
    assert env.store.last_operation("demo") is None


def test_stop_orphans_stops_only_ansible_of_that_cluster(tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "demo"
    run_dir = runs / "20260101T000000-scale-scale"
    run_dir.mkdir(parents=True)
    code = "import time; time.sleep(120)"
    # An orphaned "ansible-playbook" of this cluster, one of another cluster, a log viewer.
    orphan = subprocess.Popen(
        [sys.executable, "-c", code, "ansible-playbook", f"{run_dir}/inventory/hosts.yml"]
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code, "ansible-playbook", f"{tmp_path}/runs/other/x/hosts.yml"]
    )
    viewer = subprocess.Popen([sys.executable, "-c", code, f"{run_dir}/artifacts/run/stdout"])
    try:
        time.sleep(0.3)
        assert stop_orphans(runs, grace=5) == [orphan.pid]
        assert orphan.wait(5) is not None
        assert other.poll() is None and viewer.poll() is None
        assert stop_orphans(runs) == []
    finally:
        for p in (orphan, other, viewer):
            p.kill()
            p.wait()


def test_manual_scale_refused_while_autoscaling(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    settings.enable(env.paths, "demo", 1, 4)
    assert run_cli(root, ["scale", "demo", "--size", "3"]) == 2
    err = capsys.readouterr().err
    assert "autoscaled (workers 1..4)" in err and "autoscale demo --disable" in err, err
    assert env.store.last_operation("demo") is None and env.store.get_cluster("demo").spec.size == 2
    # Once autoscaling is off, the same command passes the refusal (it then fails on the stopped
    # cluster's state, before anything changes: no nodes exist in this test).
    settings.disable(env.paths, "demo")
    env.store.set_state("demo", ClusterState.STOPPED)
    assert run_cli(root, ["scale", "demo", "--size", "3"]) == 2
    assert "Stopped; scale needs" in capsys.readouterr().err
    assert env.store.last_operation("demo") is None


def test_stop_start_keep_a_joining_worker_joining(env: Env) -> None:
    # A scale that failed or was killed left demo-node-2 Joining; stop/start/recover record machine
    # states (the provider writes them over every node) but keep it Joining, so the next scale
    # still joins it, even when a stop that recorded it was itself interrupted.
    env.store.set_node_state("demo", "demo-node-2", lifecycle.JOINING)
    joining = lifecycle._joining_workers(env, env.store.get_cluster("demo"))
    assert joining == ["demo-node-2"]
    op = env.store.begin_operation("demo", "stop", {"joining": joining})
    env.store.set_node_state("demo", "demo-node-2", "Stopped")  # what the provider's stop does
    env.store.finish_operation(op.id, "interrupted")
    assert lifecycle._joining_workers(env, env.store.get_cluster("demo")) == ["demo-node-2"]
    for state in ("Stopped", "Running"):
        lifecycle._set_machine_state(env, "demo", state, joining)
        nodes = {n.name: n.state for n in env.store.get_cluster("demo").nodes}
        assert nodes == {"demo-control-1": state, "demo-node-1": state, "demo-node-2": lifecycle.JOINING}
    env.store.finish_operation(op.id, "succeeded")
    record = env.store.get_cluster("demo")
    assert "demo-node-2" not in lifecycle._members_before(env, record)
    assert lifecycle._joining_workers(env, record) == ["demo-node-2"]


@pytest.mark.parametrize(("version", "pause"), [("1.31.4", "3.10"), ("1.34.1", "3.10.1")])
def test_pause_tag_without_a_bundle_is_kubeadms(koral_home: Paths, version: str, pause: str) -> None:
    """No bundle (online install): the plays get kubeadm's pause tag for the version; with a bundle
    the role reads it from the bundle's manifest, so nothing is passed."""
    from koral_ansible.operations.create import playbook_vars

    e = Env(paths=koral_home, store=StateStore(koral_home), quiet=True)
    extra = playbook_vars(e, validate_spec({"name": "demo", "size": 1, "kubernetes_version": version}))
    assert extra["container_runtime_pause_version"] == pause
    assert "koral_bundle" not in extra
