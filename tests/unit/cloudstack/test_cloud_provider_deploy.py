"""``create``'s cloud-provider step (koral_ansible.operations.cloud_provider) against the test cloud:
only CloudStack clusters whose bundle has provider.yaml; the dedicated key pair reaches the play
through the secrets file only, is redacted, and appears in no extravar or event."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from koral_ansible.operations import cloud_provider
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.state import NodeRecord
from tests.cloudsim import CloudSim, SimConfig
from tests.integration.cloudstack.helpers import harness


def _bundle(*files: str) -> Any:
    return SimpleNamespace(manifest=SimpleNamespace(files={f: object() for f in files}))


def _record(provider: str) -> Any:
    return SimpleNamespace(spec=SimpleNamespace(provider=provider))


def test_wanted_only_on_cloudstack_with_provider_yaml() -> None:
    assert cloud_provider.wanted(_record("cloudstack"), _bundle("network.yaml", "provider.yaml"))
    assert not cloud_provider.wanted(_record("cloudstack"), _bundle("network.yaml"))
    assert not cloud_provider.wanted(_record("cloudstack"), None)
    assert not cloud_provider.wanted(_record("local"), _bundle("provider.yaml"))


class _Frame:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, phase: str, result: str, message: str = "") -> None:
        self.events.append((phase, result, message))


@pytest.mark.parametrize("role", ["Admin", "User"])
def test_deploy_passes_the_keys_as_secrets_only(
    role: str, tmp_path: Path, koral_home: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CloudSim(SimConfig(job_latency=0, role=role)) as sim:
        h = harness(sim, koral_home)
        h.store.upsert_node("demo", NodeRecord("demo-control-1", "control", 0, state="Running"))
        record = h.store.get_cluster("demo")
        env = Env(paths=koral_home, store=h.store)
        seen: dict[str, Any] = {}

        def fake_converge(_env: Env, _frame: Any, _rec: Any, name: str, **kw: Any) -> None:
            seen.update(kw, playbook=name)

        # the module (koral_ansible.operations re-exports a function named create)
        monkeypatch.setattr(
            importlib.import_module("koral_ansible.operations.create"), "converge", fake_converge
        )
        frame = _Frame()
        done = cloud_provider.deploy_cloud_provider(
            env,
            frame,
            record,
            h.provider,
            _bundle("provider.yaml"),  # type: ignore[arg-type]
        )
        assert done and seen["playbook"] == "cloud_provider.yml" and seen["limit"] == "demo-control-1"
        assert seen["extra"] == {"cloud_provider_api_url": sim.endpoint}
        key, secret = seen["secrets"]["cloud_provider_api_key"], seen["secrets"]["cloud_provider_secret_key"]
        masked = env.redactor.text(f"key {key} secret {secret}")
        assert key not in masked and secret not in masked  # both halves redacted from now on
        if role == "Admin":  # a dedicated user's pair
            assert key != sim.config.api_key and frame.events == []
        else:  # the cloud refused: the operator's pair, said so in a warning without any key
            assert key == sim.config.api_key
            assert [e[:2] for e in frame.events] == [("cloud-provider", "warning")] * 2
            # cloudstack.go getManagementServerVersion: the provider would exit at start-up
            assert "listManagementServersMetrics" in frame.events[1][2]
        for event in frame.events:
            assert secret not in event[2] and key not in event[2]


@pytest.mark.parametrize(
    ("state", "files", "words"),
    [
        ("Stopped", ("provider.yaml",), "cloud-provider needs one of: Alert, Running"),
        ("Running", ("network.yaml",), "carries no provider.yaml"),
    ],
)
def test_cloud_provider_command_refuses_before_anything_changes(
    state: str,
    files: tuple[str, ...],
    words: str,
    koral_home: Paths,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``koral-play cloud-provider``: a CloudStack cluster that is not running, or whose bundle has
    no provider.yaml, is bad input (exit 2, one line naming NAME), and nothing is called."""
    from koral_ansible.cli import root
    from koral_ansible.cli.common import run_cli
    from koral_ansible.state import ClusterState

    with CloudSim(SimConfig(job_latency=0)) as sim:
        h = harness(sim, koral_home)
        h.store.set_state("demo", ClusterState(state))
        create = importlib.import_module("koral_ansible.operations.create")
        monkeypatch.setattr(create, "resolve_spec_bundle", lambda _env, _spec: _bundle(*files))
        monkeypatch.setenv("KORAL_HOME", str(koral_home.home))
        calls = len(sim.calls)
        capsys.readouterr()
        assert run_cli(root, ["cloud-provider", "demo", "--rotate-keys"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: NAME") and words in err[0], err
        assert len(sim.calls) == calls
