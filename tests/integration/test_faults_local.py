"""Faults on local nodes: each ends in a clear error, a recorded state, a re-run that completes
and, after delete, nothing left behind (containers, networks, nft table, haproxy, state).

- a corrupted bundle at create is refused (exit 2, the file named) before any node exists;
- a worker lost mid-create (its container killed during the kubeadm play): create fails naming
  the worker, the cluster is recorded in Error, and re-running the same create completes;
- one worker partitioned from the host (nft drops its traffic) during an upgrade: the upgrade
  fails naming the worker, the cluster is in Alert; once healed, the same upgrade completes;
- a full state directory (a tiny tmpfs as KORAL_HOME): refused before anything changes (exit 2,
  a clear error), the database intact and nothing recorded; with space again the host checks that
  create runs first pass for that home. (A create after a refusal is any create: every other
  cluster test makes one; this one no longer pays for another.)

The Kubernetes binaries are the test doubles (tests/doubles), like every local-node test.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from koral_ansible import doctor
from koral_ansible.bundle import record_bundle, verify_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.providers.local import lb, nft
from koral_ansible.providers.local.nodes import container_name
from koral_ansible.providers.local.podman import LABEL_CLUSTER, LABEL_HOME, Podman, home_id, podman_env
from koral_ansible.state import ClusterState
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home
from tests.versions import UPGRADE_FROM, UPGRADE_TO

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

VERSION = UPGRADE_FROM
TARGET = UPGRADE_TO
NAME = "fault"
KUBEADM_PLAY = "Install Kubernetes with kubeadm"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test bundle as a directory (so a test can corrupt a copy of it)."""
    root_dir = tmp_path_factory.mktemp("fault-bundle")
    result = make_double_bundle(root_dir, VERSION, iso=False)
    return Path(result.directory)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-fault-home"), NAME) as h:
        yield h


def assert_nothing_left(paths: Paths, name: str) -> None:
    podman = Podman(paths)
    wanted = {LABEL_CLUSTER: name, LABEL_HOME: home_id(paths)}
    assert podman.containers_by_labels(wanted) == []
    assert podman.networks_by_labels(wanted) == []
    assert not nft.table_exists(name)
    assert lb.find_processes(paths.local_dir(name) / lb.CONFIG_NAME) == []
    assert not paths.local_dir(name).exists()


def test_corrupted_bundle_refused_before_any_node(
    home: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad-bundle"
    shutil.copytree(bundle_dir, bad)
    victim = bad / "k8s" / "kubeadm"
    victim.write_bytes(victim.read_bytes() + b"\n# tampered\n")
    code = run_cli(
        root, ["-q", "create", "fbad", "--size", "1", "--bundle", str(bad), "--kubernetes-version", VERSION]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "--bundle" in err[0] and "kubeadm" in err[0], err
    env = Env.open(str(home), quiet=True)
    assert env.store.find_cluster("fbad") is None
    assert not env.paths.cluster_dir("fbad").exists()
    assert_nothing_left(env.paths, "fbad")


def _kubeadm_play_started(runs: Path, seen: set[Path]) -> bool:
    """Whether a create run's job events show the kubeadm play starting (new event files only)."""
    for path in runs.glob("*/artifacts/*/job_events/*.json"):
        if path in seen:
            continue
        seen.add(path)
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            seen.discard(path)  # still being written
            continue
        if (
            event.get("event") == "playbook_on_play_start"
            and event.get("event_data", {}).get("play") == KUBEADM_PLAY
        ):
            return True
    return False


def test_node_lost_mid_create_then_rerun_completes(home: Path, bundle_dir: Path) -> None:
    paths = Paths.resolve(home=home)
    worker = f"{NAME}-node-1"
    args = ["create", NAME, "--size", "1", "--bundle", str(bundle_dir), "--kubernetes-version", VERSION]
    cmd = [sys.executable, "-c", "from koral_ansible.cli import main; main()", "-q", *args]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = paths.runs(NAME)
    killed = False
    seen: set[Path] = set()
    try:
        while proc.poll() is None and time.monotonic() - started < 900:
            if runs.exists() and _kubeadm_play_started(runs, seen):
                subprocess.run(
                    ["podman", "kill", container_name(worker)],
                    env={**os.environ, **podman_env(paths)},
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                killed = True
                break
            time.sleep(0.5)
        _out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"\ncreate with a worker lost: exit {proc.returncode} in {time.monotonic() - started:.0f}s")
    assert killed, f"the kubeadm play never started: {err[-2000:]}"
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and worker in last, err[-2000:]
    env = Env.open(str(home), quiet=True)
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.ERROR
    assert any(e.result == "Failed" for e in env.store.events(NAME))

    # The same create resumes: the lost worker's machine comes back and joins.
    t0 = time.monotonic()
    code = run_cli(root, ["-q", *args])
    print(f"re-run create: exit {code} in {time.monotonic() - t0:.0f}s")
    assert code == 0
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING
    assert {n.name for n in record.nodes} == {f"{NAME}-control-1", worker}


@pytest.fixture
def partition() -> Iterator[Callable[[str], None]]:
    """Cut one node off the host (the cloud): an nft table of the test's own dropping every
    packet to or from the node's address; removed by healing or at teardown."""
    table = "koral_test_partition"

    def cut(ip: str) -> None:
        rules = (
            f"table inet {table} {{\n"
            f"  chain input {{ type filter hook input priority -300; ip saddr {ip} drop; }}\n"
            # after the DNAT of the host's own traffic to public_ip:port (nat output, -100)
            f"  chain output {{ type filter hook output priority 0; ip daddr {ip} drop; }}\n"
            f"  chain forward {{ type filter hook forward priority 0; ip saddr {ip} drop; "
            f"ip daddr {ip} drop; }}\n"
            "}\n"
        )
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, capture_output=True)

    yield cut
    subprocess.run(["nft", "delete", "table", "inet", table], check=False, capture_output=True)


def test_partitioned_worker_fails_upgrade_then_resumes(
    home: Path,
    tmp_path_factory: pytest.TempPathFactory,
    partition: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = Env.open(str(home), quiet=True)
    assert env.store.get_cluster(NAME).state is ClusterState.RUNNING  # made by the test above
    root_dir = tmp_path_factory.mktemp("fault-bundle-target")
    target = make_double_bundle(root_dir, TARGET, iso=True)
    record_bundle(home, target.manifest, None, target.iso)
    # No SSH master connection from an earlier run may outlive the cut (they would only hang).
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", tempfile.mkdtemp(prefix="kcp-"))
    worker = next(n for n in env.store.nodes(NAME) if n.role == "worker")
    partition(worker.private_ip)
    t0 = time.monotonic()
    code = run_cli(root, ["-q", "upgrade", NAME, "--version", TARGET])
    err = capsys.readouterr().err.strip().splitlines()
    with capsys.disabled():
        took = time.monotonic() - t0
        print(f"\nupgrade with {worker.name} partitioned: exit {code} in {took:.0f}s: {err[-1:]}")
    assert code == 1 and err[-1].startswith("error: ") and worker.name in err[-1], err
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.ALERT and record.spec.kubernetes_version == VERSION

    subprocess.run(["nft", "delete", "table", "inet", "koral_test_partition"], check=True)  # heal
    t0 = time.monotonic()
    code = run_cli(root, ["-q", "upgrade", NAME, "--version", TARGET])
    err = capsys.readouterr().err.strip().splitlines()
    with capsys.disabled():
        print(f"upgrade after healing: exit {code} in {time.monotonic() - t0:.0f}s")
    assert code == 0, err
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING and record.spec.kubernetes_version == TARGET


def test_delete_leaves_nothing(home: Path) -> None:
    paths = Paths.resolve(home=home)
    assert run_cli(root, ["-q", "delete", NAME, "--yes"]) == 0
    assert Env.open(str(home), quiet=True).store.find_cluster(NAME) is None
    assert_nothing_left(paths, NAME)


@pytest.fixture
def tiny_home(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "koral-test-tiny", str(mount)], check=True)
    old = os.environ.get("KORAL_HOME")
    os.environ["KORAL_HOME"] = str(mount)
    try:
        yield mount
    finally:
        run_cli(root, ["-q", "delete", "fdisk", "--yes"])
        if old is None:
            os.environ.pop("KORAL_HOME", None)
        else:
            os.environ["KORAL_HOME"] = old
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_state_dir_clear_error_db_intact(
    tiny_home: Path, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = Env.open(str(tiny_home), quiet=True)
    assert env.store.list_clusters() == []
    # Fill the state directory but for a few blocks.
    filler = tiny_home / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    create = ["-q", "create", "fdisk", "--size", "1", "--bundle", str(bundle_dir)]
    create += ["--kubernetes-version", VERSION]
    code = run_cli(root, create)
    err = capsys.readouterr().err.strip().splitlines()
    with capsys.disabled():
        print(f"\nfull state dir: exit {code}: {err[-1] if err else ''}")
    assert code == 2, err  # create's host checks refuse it before anything is created
    assert len(err) == 1 and err[0].startswith("error: FAIL disk: "), err
    assert "Traceback" not in "\n".join(err)
    db = sqlite3.connect(tiny_home / "koral.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    assert env.store.find_cluster("fdisk") is None  # refused before anything was recorded
    assert_nothing_left(Paths.resolve(home=tiny_home), "fdisk")
    # With space again, the disk check create runs first passes for this home.
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,size=1g", str(tiny_home)], check=True)
    disk = doctor.check_disk(doctor.Host(), Paths.resolve(home=tiny_home))
    assert disk.status is doctor.Status.PASS, disk
    assert verify_bundle(bundle_dir, deep=False).kubernetes_version == VERSION
