"""State store: clusters, nodes, resources, events, operations, secrets apart, locking."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from koral_ansible.errors import LockedError, NotFoundError, OperationError
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState, NodeRecord, StateStore


@pytest.fixture()
def store(tmp_path: Path) -> StateStore:
    return StateStore(Paths.resolve(tmp_path / "home", tmp_path / "cache"))


def demo_spec(**kw: object):  # type: ignore[no-untyped-def]
    return validate_spec({"name": "demo", "size": 2, **kw})


def test_cluster_roundtrip_keeps_secrets_apart(store: StateStore) -> None:
    spec = demo_spec(registry={"url": "http://r:5000", "username": "u", "password": "registry-secret-1"})
    store.add_cluster(spec)
    rec = store.get_cluster("demo")
    assert rec.state is ClusterState.CREATED and rec.spec == spec
    assert b"registry-secret-1" not in store.paths.db.read_bytes()
    secrets = store.paths.secrets("demo")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.paths.home.stat().st_mode) == 0o700
    store.set_state("demo", ClusterState.RUNNING)
    assert store.get_cluster("demo").state is ClusterState.RUNNING


def test_not_found_names_known(store: StateStore) -> None:
    store.add_cluster(demo_spec())
    with pytest.raises(NotFoundError, match="known clusters: demo") as err:
        store.get_cluster("other")
    assert err.value.exit_code == 2


def test_nodes_resources_events(store: StateStore) -> None:
    store.add_cluster(demo_spec())
    store.upsert_node("demo", NodeRecord("demo-node-1", "worker", 1, "10.0.0.12", "10.0.0.1", 2223))
    store.upsert_node("demo", NodeRecord("demo-control-1", "control", 0, "10.0.0.11", "10.0.0.1", 2222))
    store.upsert_node(
        "demo", NodeRecord("demo-node-1", "worker", 1, "10.0.0.12", "10.0.0.1", 2223, state="Running")
    )
    rec = store.get_cluster("demo")
    assert [n.name for n in rec.nodes] == ["demo-control-1", "demo-node-1"]
    assert rec.workers[0].state == "Running" and rec.control_nodes[0].is_control
    store.add_resource("demo", "container", "abc", {"name": "x"})
    store.add_resource("demo", "network", "net1")
    assert [r.kind for r in store.resources("demo")] == ["container", "network"]
    store.remove_resource("demo", "container", "abc")
    assert [r.rid for r in store.resources("demo", "container")] == []
    store.event("demo", "create", "provision", "Started")
    assert store.events("demo")[0].phase == "provision"
    store.forget_cluster("demo")
    assert store.find_cluster("demo") is None and store.resources("demo") == []
    assert store.events("demo"), "events outlive the cluster (audit trail)"


def test_operation_resume_after_failure(store: StateStore) -> None:
    op = store.begin_operation("demo", "create")
    store.set_phase(op.id, "provision", done=True)
    store.finish_operation(op.id, "failed")
    again = store.begin_operation("demo", "create")
    assert again.id == op.id and again.done_phases == ["provision"]
    store.finish_operation(op.id, "succeeded")
    assert store.begin_operation("demo", "create").id != op.id


def _hold_lock(home: str, ready: multiprocessing.synchronize.Event) -> None:
    s = StateStore(Paths.resolve(home))
    op = s.begin_operation("demo", "scale")
    with s.lock("demo", "scale"):
        s.set_phase(op.id, "join")
        ready.set()
        time.sleep(60)


def test_lock_refuses_second_operation_and_dies_with_holder(store: StateStore) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(store.paths.home), ready))
    proc.start()
    try:
        assert ready.wait(20)
        with pytest.raises(LockedError, match=r"busy: scale \(pid"), store.lock("demo", "delete"):
            pass
        with store.lock("other", "create"):
            pass  # another cluster proceeds
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    last = store.last_operation("demo")
    assert last is not None and last.status == "interrupted" and last.phase == "join"
    with store.lock("demo", "delete"):
        pass  # SIGKILL released the lock


def test_disk_errors_are_operation_errors(tmp_path: Path) -> None:
    home = tmp_path / "ro"
    store = StateStore(Paths.resolve(home))
    store.close()
    store._db = __import__("sqlite3").connect(
        f"file:{home / 'koral.db'}?mode=ro", uri=True, isolation_level=None
    )
    with pytest.raises(OperationError, match="state database"):
        store.event("demo", "create", "x", "y")


def _open_store(home: str, barrier: Any, errors: Any) -> None:
    barrier.wait()
    try:
        StateStore(Paths.resolve(home=home))
    except Exception as exc:  # reported to the parent
        errors.put(str(exc))


def test_processes_opening_a_new_home_at_once_all_succeed(tmp_path: Path) -> None:
    """Two `koral-play create` in a new home raced on switching the new database to WAL."""
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    for round_ in range(15):
        home = str(tmp_path / f"home{round_}")
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_open_store, args=(home, barrier, errors)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
