"""Recover, and stop/start while a worker is still Joining, end to end on local nodes.

One 1+1 cluster: `koral-play scale --size 2` is killed (SIGKILL) in its join; its new worker's
machine then goes away (podman stop) and the re-run fails on it: cluster Alert, worker Joining.
`koral-play recover` brings the machines back and waits for the API and the joined nodes
(Running; the worker stays Joining, it never joined); `stop` and `start` keep it Joining; a later
`scale --size 2` (same size: nothing to provision) finishes its join. The Kubernetes binaries are
the test doubles (tests/doubles).
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

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.operations.lifecycle import JOINING
from koral_ansible.providers.local.nodes import container_name
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.state import ClusterState
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home
from tests.versions import DEFAULT

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

NAME = "lrec"
VERSION = DEFAULT
CONTROL = f"{NAME}-control-1"
NEW = f"{NAME}-node-2"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), NAME) as home:
        root_dir = tmp_path_factory.mktemp("bundle")
        bundle = make_double_bundle(root_dir, VERSION, iso=True)
        args = ["create", NAME, "--size", "1", "--bundle", str(bundle.iso), "--allowed-cidrs", "10.0.0.0/8"]
        assert run_cli(root, args) == 0
        yield Env.open(str(home), quiet=True)


def podman(env: Env, *args: str) -> str:
    proc = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **podman_env(env.paths)},
        timeout=120,
        check=True,
    )
    return proc.stdout.strip()


def api_nodes(env: Env) -> dict[str, bool]:
    out = podman(env, "exec", container_name(CONTROL), "sh", "-c", f"{KUBECTL} get nodes -o json")
    return {
        i["metadata"]["name"]: any(
            c["type"] == "Ready" and c["status"] == "True" for c in i["status"]["conditions"]
        )
        for i in json.loads(out)["items"]
    }


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


def states(env: Env) -> tuple[ClusterState, dict[str, str]]:
    record = env.store.get_cluster(NAME)
    return record.state, {n.name: n.state for n in record.nodes}


def test_recover_and_stop_start_keep_a_joining_worker(
    cluster: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env = cluster
    koral_play = Path(sys.executable).parent / "koral-play"
    proc = subprocess.Popen(
        [str(koral_play), "--quiet", "scale", NAME, "--size", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            op = env.store.last_operation(NAME)
            if op and op.phase == "join" and list(env.paths.runs(NAME).glob("*-scale-scale*")):
                break
            time.sleep(0.5)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert states(env) == (
        ClusterState.SCALING,
        {CONTROL: "Running", f"{NAME}-node-1": "Running", NEW: JOINING},
    )

    # The new machine goes away: the resumed scale fails on it, names it, and leaves Alert.
    podman(env, "stop", "-t", "2", container_name(NEW))
    code, err = koral(capsys, "scale", NAME, "--size", "2")
    assert code == 1 and NEW in err, err
    assert states(env) == (
        ClusterState.ALERT,
        {CONTROL: "Running", f"{NAME}-node-1": "Running", NEW: JOINING},
    )

    # recover: machines back, API and joined nodes Ready; the worker that never joined stays Joining.
    code, err = koral(capsys, "recover", NAME)
    assert code == 0, err
    assert states(env) == (
        ClusterState.RUNNING,
        {CONTROL: "Running", f"{NAME}-node-1": "Running", NEW: JOINING},
    )
    assert podman(env, "inspect", "-f", "{{.State.Running}}", container_name(NEW)) == "true"
    assert NEW not in api_nodes(env)

    code, err = koral(capsys, "stop", NAME)
    assert code == 0, err
    assert states(env) == (
        ClusterState.STOPPED,
        {CONTROL: "Stopped", f"{NAME}-node-1": "Stopped", NEW: JOINING},
    )
    code, err = koral(capsys, "start", NAME)
    assert code == 0, err
    assert states(env) == (
        ClusterState.RUNNING,
        {CONTROL: "Running", f"{NAME}-node-1": "Running", NEW: JOINING},
    )

    # A later scale to the same size provisions nothing and finishes the join.
    code, err = koral(capsys, "scale", NAME, "--size", "2")
    assert code == 0, err
    assert states(env) == (
        ClusterState.RUNNING,
        {CONTROL: "Running", f"{NAME}-node-1": "Running", NEW: "Running"},
    )
    assert api_nodes(env) == {CONTROL: True, f"{NAME}-node-1": True, NEW: True}
    phases = [e.phase for e in env.store.events(NAME) if e.operation == "scale" and e.result == "Started"]
    assert phases.count("provision") == 1, phases
