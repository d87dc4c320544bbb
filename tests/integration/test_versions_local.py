"""Create on each supported minor that no other module creates on, past the first, on local nodes
through the CLI: 1 control + 1 worker on the pinned patch, then delete.

The first such minor (tests/versions.py ``LB_VERSION``) is checked on the cluster
test_loadbalancer_local.py creates, so one create serves both; this module takes the rest
(none while three minors are supported). The checks are tests/integration/version_checks.py: every
node Ready on that kubelet version, kubeadm-config on that version and its kubeadm config API, the
bundle's containerd 2.x with a version 3 config.toml that ``containerd config dump`` accepts,
``delete`` leaving nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.bundle import verify_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.state import ClusterState
from koral_ansible.versions import Version
from tests.bundle_fixtures import make_double_bundle
from tests.integration import version_checks
from tests.integration.cli_home import cli_home
from tests.versions import VERSIONS_TO_CHECK

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]


VERSIONS = VERSIONS_TO_CHECK[1:]


def _name(version: str) -> str:
    v = Version.parse(version)
    return f"ver{v.major}{v.minor}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), *(_name(v) for v in VERSIONS)) as h:
        yield h


@pytest.mark.parametrize("version", VERSIONS)
def test_create_on_version(
    version: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name(version)
    bundle = Path(make_double_bundle(tmp_path / "bundle", version, iso=False).directory)
    manifest = verify_bundle(bundle, deep=False)
    assert manifest.kubernetes_version == version
    args = [
        "create", name, "--size", "1", "--bundle", str(bundle), "--kubernetes-version", version,
        "--allowed-cidrs", "10.0.0.0/8,127.0.0.0/8",
    ]  # fmt: skip
    started = time.monotonic()
    code = run_cli(root, args)
    elapsed = time.monotonic() - started
    _, err = capsys.readouterr()
    assert code == 0, err
    print(f"create {name} on {version}: {elapsed:.0f} s")
    env = Env.open(str(home), quiet=True)
    record = env.store.get_cluster(name)
    assert record.state is ClusterState.RUNNING
    assert [n.name for n in record.nodes] == [f"{name}-control-1", f"{name}-node-1"]

    version_checks.check_nodes_ready(env, name, version)
    version_checks.check_kubeadm_config(env, name, version)
    version_checks.check_containerd(env, name, manifest.runtime_versions["containerd"])
    assert run_cli(root, ["delete", name, "--yes"]) == 0
    version_checks.check_nothing_left(env, name)
