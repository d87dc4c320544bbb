"""The CLI's contract: --help everywhere, exit 2 + one line for bad input, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("KORAL_HOME", str(h))
    monkeypatch.delenv("KORAL_CLUSTER_MAX_SIZE", raising=False)
    return h


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(root, args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "command", [[], ["create"], ["list"], ["show"], ["kubeconfig"], ["delete"], ["events"]]
)
def test_help(command: list[str], home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli([*command, "--help"], capsys)
    assert code == 0 and "Usage: koral-play" in out
    assert not home.exists(), "--help must not touch the state directory"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["create", "demo", "--size", "0"], "size"),
        (["create", "demo", "--size", "11"], "size"),
        (["create", "demo", "--control-nodes", "4"], "control_nodes"),
        (["create", "My Cluster"], "name"),
        (["create", "demo", "--cni", "flannel"], "cni"),
        (["create", "demo", "--pod-cidr", "10.96.0.0/16"], "pod_cidr"),
        (["create", "demo", "--kubernetes-version", "2.0.0"], "kubernetes_version"),
        (["create", "demo", "--provider", "mold"], "compute_offering"),
        (["create", "demo", "--registry-url", "http://r:5000", "--registry-username", "u"], "registry"),
        (["create", "demo", "--nope"], "No such option"),
        (["--max-size", "3", "create", "demo", "--size", "4"], "size"),
        (["show", "ghost"], "NAME"),
        (["kubeconfig", "ghost"], "NAME"),
        (["events", "ghost"], "NAME"),
        (["list", "-o", "xml"], "--output"),
    ],
)
def test_bad_input_exit_2_nothing_created(
    args: list[str], field: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(args, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and field in lines[0], err
    assert out == ""
    if home.exists():
        env = Env.open(str(home))
        assert env.store.list_clusters() == []


def test_registry_password_never_echoed(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(
        [
            "create",
            "demo",
            "--registry-url",
            "ftp://bad",
            "--registry-username",
            "u",
            "--registry-password",
            "cli-secret-77",
        ],
        capsys,
    )
    assert code == 2 and "cli-secret-77" not in err


def test_list_show_events_formats(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = Env.open(str(home))
    env.store.add_cluster(validate_spec({"name": "demo", "size": 2, "description": "hello"}))
    env.store.set_state("demo", ClusterState.RUNNING)
    env.store.event("demo", "create", "provision", "Completed")
    code, out, _ = cli(["list", "-o", "json"], capsys)
    assert code == 0 and '"name": "demo"' in out and '"state": "Running"' in out
    code, out, _ = cli(["list"], capsys)
    assert code == 0 and "demo" in out and "Running" in out
    code, out, _ = cli(["show", "demo", "-o", "yaml"], capsys)
    assert code == 0
    for field in (
        "description: hello",
        "zone:",
        "version:",
        "autoscaling:",
        "size: 2",
        "control_nodes: 1",
        "cpu:",
        "memory:",
        "network:",
        "state: Running",
        "created:",
        "nodes:",
    ):
        assert field in out
    code, out, _ = cli(["events", "demo", "-o", "json"], capsys)
    assert code == 0 and '"phase": "provision"' in out
    code, _, err = cli(["kubeconfig", "demo"], capsys)
    assert code == 1 and "no kubeconfig yet" in err


def test_delete_needs_yes_without_tty(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = Env.open(str(home))
    env.store.add_cluster(validate_spec({"name": "demo"}))
    code, _, err = cli(["delete", "demo"], capsys)
    assert code == 2 and "--yes" in err
    assert env.store.find_cluster("demo") is not None
    code, _, err = cli(["delete", "ghost", "--yes"], capsys)
    assert code == 0 and "nothing to delete" in err


@pytest.mark.parametrize(
    ("args", "expected"), [(["--ha"], 3), (["--ha", "--control-nodes", "5"], 5), ([], 1)]
)
def test_ha_means_three_control_nodes_unless_given(
    args: list[str],
    expected: int,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asked: list[int] = []

    def fake_create(_env: Env, spec: object) -> None:
        asked.append(spec.control_nodes)  # type: ignore[attr-defined]
        raise _Stop

    monkeypatch.setattr("koral_ansible.operations.create", fake_create)
    with pytest.raises(_Stop):
        cli(["create", "demo", *args], capsys)
    assert asked == [expected]


class _Stop(Exception):
    """Stops create right after the spec is built."""
