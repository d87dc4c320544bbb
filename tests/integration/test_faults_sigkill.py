"""SIGKILL of `koral-play create` in each of its phases, chained on one local 1+1 cluster.

`koral-play create` runs as a subprocess in its own process group; the test watches the state
database (read-only) and the run's Ansible job events until a phase has started, then SIGKILLs
the whole process group. After each kill: the cluster is recorded in a non-Running state with
the create operation interrupted in that phase, the cluster lock is free, and no node is
duplicated. The same `koral-play create` is then re-run, resumes, and is killed in the next
phase: provision (once a node container exists), then the plays of create.yml (preflight,
bundle, container runtime, firewall, kubeadm), each once its first task finished on a node.
The run after the last kill completes: cluster Running, both nodes in the API (the bundle's
real kubectl with the cluster's kubeconfig), two containers, no Ansible left running, a
second converge changes nothing; `delete --yes` leaves nothing (containers, network, nft
table, haproxy, files).

Not killed: the boilerplate inventory checks (localhost only, a second) and the pod network
play (the last one: the run may end before a kill lands, so it is the completing run's).
The Ansible run lives in its own session (ansible-runner's pty), so it survives the process
group kill; the re-run stops what is left of it first (a "Cleaned" event), as the product does.
The Kubernetes binaries are the test doubles (tests/doubles), like every local-node test.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge
from koral_ansible.paths import Paths
from koral_ansible.providers.local.podman import LABEL_CLUSTER, LABEL_HOME, Podman, home_id
from koral_ansible.state import ClusterState
from tests.integration.test_faults_local import VERSION, assert_nothing_left, bundle_dir

__all__ = ["bundle_dir"]  # the module-scoped bundle fixture, shared with test_faults_local

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

NAME = "fkill"
NODES = [f"{NAME}-control-1", f"{NAME}-node-1"]
# The plays of create.yml killed in turn (each re-run replays the ones before it).
PLAYS = [
    "Prepare nodes",
    "Ship the Kubernetes binaries bundle",
    "Install container runtime",
    "Apply node firewall",
    "Install Kubernetes with kubeadm",
]
TIMEOUT = 600


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    h = tmp_path / "koral-home"
    h.mkdir()
    monkeypatch.setenv("KORAL_HOME", str(h))
    yield h
    run_cli(root, ["-q", "delete", NAME, "--yes"])


def _db_rows(paths: Paths, sql: str) -> list[sqlite3.Row]:
    """Rows of the state database, read-only (never taking a write lock from the running create)."""
    if not paths.db.exists():
        return []
    db = sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, (NAME,)).fetchall()
    except sqlite3.OperationalError:  # tables not made yet
        return []
    finally:
        db.close()


def _provisioning_started(paths: Paths) -> bool:
    """The provision phase started and made at least one node container (recorded with its id)."""
    started = _db_rows(
        paths, "SELECT 1 FROM events WHERE cluster=? AND phase='provision' AND result='Started'"
    )
    made = _db_rows(paths, "SELECT 1 FROM nodes WHERE cluster=? AND provider_id != ''")
    return bool(started and made)


Read = dict[Path, tuple[int, str] | None]


def _job_events(run_dirs: list[Path], read: Read) -> list[tuple[int, str]]:
    """(counter, "play:NAME" or "ok") of the runs' play starts and task results on a node, in
    order; ``read`` keeps the files parsed so far (job events are written once, whole)."""
    for path in (p for d in run_dirs for p in d.glob("artifacts/*/job_events/*.json")):
        if path in read:
            continue
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # still being written
        kind = event.get("event")
        counter = int(event.get("counter", 0))
        if kind == "playbook_on_play_start":
            read[path] = (counter, f"play:{event['event_data'].get('play')}")
        elif kind == "runner_on_ok" and event["event_data"].get("host") != "localhost":
            read[path] = (counter, "ok")
        else:
            read[path] = None
    return sorted(e for e in read.values() if e is not None)


def _plays_started(run_dirs: list[Path], read: Read) -> list[str]:
    return [e[5:] for _c, e in _job_events(run_dirs, read) if e.startswith("play:")]


def _inside_play(run_dirs: list[Path], read: Read, play: str) -> bool:
    """``play`` started and one of its tasks finished on a node: it is doing its work."""
    events = [e for _c, e in _job_events(run_dirs, read)]
    return f"play:{play}" in events and "ok" in events[events.index(f"play:{play}") :]


def _uses_runs(cmdline: Path, runs: Path) -> bool:
    try:
        return str(runs) in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def _containers(paths: Paths) -> list[object]:
    return list(Podman(paths).containers_by_labels({LABEL_CLUSTER: NAME, LABEL_HOME: home_id(paths)}))


def _create_killed_at(paths: Paths, args: list[str], phase: str) -> str:
    """Start `koral-play create`, SIGKILL its process group inside ``phase``; a summary."""
    before = set(paths.runs(NAME).glob("*-create-create")) if paths.runs(NAME).exists() else set()
    koral_play = Path(sys.executable).parent / "koral-play"
    err_file = paths.home.parent / f"create-{len(before)}.err"
    new: list[Path] = []
    read: Read = {}
    t0 = time.monotonic()
    with err_file.open("w") as err:
        proc = subprocess.Popen(
            [str(koral_play), "-q", *args], stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    try:
        while proc.poll() is None and time.monotonic() - t0 < TIMEOUT:
            if phase == "provision":
                if _provisioning_started(paths):
                    break
            elif paths.runs(NAME).exists():
                new = [d for d in paths.runs(NAME).glob("*-create-create") if d not in before]
                if _inside_play(new, read, phase):
                    break
            time.sleep(0.1)
        alive = proc.poll() is None
        if alive:
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert alive, f"create ended (exit {proc.returncode}) before {phase!r}: {err_file.read_text()[-2000:]}"
    if phase != "provision":  # killed inside that play: no later one had started
        plays = _plays_started(new, read)
        assert plays[-1] == phase, plays
    return f"create killed in {phase!r} after {time.monotonic() - t0:.0f}s"


def test_create_killed_in_each_phase_resumes_and_completes(
    home: Path, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = Paths.resolve(home=home)
    args = ["create", NAME, "--size", "1", "--bundle", str(bundle_dir), "--kubernetes-version", VERSION]
    started = time.monotonic()
    for phase in ["provision", *PLAYS]:
        summary = _create_killed_at(paths, args, phase)
        with capsys.disabled():
            print(f"\n{summary}", file=sys.stderr)
        env = Env.open(str(home), quiet=True)
        record = env.store.get_cluster(NAME)
        assert record.state in (ClusterState.STARTING, ClusterState.ERROR), record.state
        op = env.store.last_operation(NAME)
        assert op is not None and op.operation == "create" and op.status == "interrupted", op
        assert op.phase == ("provision" if phase == "provision" else "configure"), (phase, op)
        with env.store.lock(NAME, "probe"):  # free: a new command is not refused as locked
            pass
        names = [n.name for n in env.store.nodes(NAME)]
        assert len(names) == len(set(names)) and set(names) <= set(NODES), names
        assert len(_containers(paths)) <= len(NODES)

    t0 = time.monotonic()
    code = run_cli(root, ["-q", *args])
    _, err = capsys.readouterr()
    with capsys.disabled():
        print(
            f"\nlast re-run: exit {code} in {time.monotonic() - t0:.0f}s; "
            f"all {time.monotonic() - started:.0f}s",
            file=sys.stderr,
        )
    assert code == 0, err
    env = Env.open(str(home), quiet=True)
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING
    assert [n.name for n in record.nodes] == NODES and all(n.state == "Running" for n in record.nodes)
    assert len(_containers(paths)) == len(NODES)
    kubectl = bundle_dir / "k8s" / "kubectl"
    out = subprocess.run(
        [str(kubectl), "--kubeconfig", str(paths.kubeconfig(NAME)), "get", "nodes", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert sorted(i["metadata"]["name"] for i in json.loads(out)["items"]) == NODES
    events = [(e.phase, e.result, e.message) for e in env.store.events(NAME) if e.operation == "create"]
    assert ("start", "Started", "resumed") in events, events
    assert events[-1][:2] == ("end", "Completed"), events
    with capsys.disabled():
        cleaned = sum(1 for e in events if e[:2] == ("start", "Cleaned"))
        print(f"re-runs that stopped Ansible left by the killed one: {cleaned}", file=sys.stderr)
    # Every killed run was stopped by the next one's orphan sweep or died with its pty.
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if _uses_runs(p, paths.runs(NAME))]
    # The chain of kills left nothing half-done: a second converge changes nothing.
    t0 = time.monotonic()
    with OperationFrame(env, NAME, "converge", busy=None, failed=None) as frame:
        result = converge(env, frame, record, "create.yml")
    with capsys.disabled():
        print(f"second converge: changed={result.changed} in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    assert result.changed == 0, result.stats

    assert run_cli(root, ["-q", "delete", NAME, "--yes"]) == 0
    assert env.store.find_cluster(NAME) is None
    assert_nothing_left(paths, NAME)
