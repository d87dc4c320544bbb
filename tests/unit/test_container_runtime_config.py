"""roles/container_runtime config.toml: version 3 for containerd 2.x and 2 for 1.x, decided from the
installed binary's ``containerd --version``; the real containerd 2.1.9 (Debian's, from the koral
cache) must accept the file (``containerd --config FILE config dump``) and read our settings.

The template is rendered by ansible-playbook on localhost with the role's defaults and vars, as
the role renders it on a node. tasks/support.yml refuses containerd 1.x from Kubernetes 1.36 on
(koral's rule, koral_ansible/k8s_releases.py CONTAINERD_2_FROM_MINOR), with the facts the
inventory passes for the version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from koral_ansible import k8s_releases
from koral_ansible.bundle.debian import write_runtime_sources
from koral_ansible.inventory import release_vars
from koral_ansible.versions import SUPPORTED_MINORS, pinned_version

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "container_runtime"
BIN = Path(sys.executable).parent
VERSIONS = {
    # containerd/containerd cmd/containerd (version.Package, version.Version, version.Revision)
    "2.x": "containerd github.com/containerd/containerd/v2 2.1.9+unknown \n",
    "1.x": "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n",
}


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's containerd 2.1.9 binary (fetched once into the koral cache)."""
    return write_runtime_sources(tmp_path_factory.mktemp("rt")).from_dir / "containerd" / "containerd"


def _render(tmp_path: Path, version_output: str, **extra: object) -> str:
    dest = tmp_path / "config.toml"
    play = [
        {
            "name": "Render config.toml as the role does",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "tasks": [
                {
                    "name": "Render",
                    "ansible.builtin.template": {
                        "src": str(ROLE / "templates" / "config.toml.j2"),
                        "dest": str(dest),
                        "mode": "0600",
                    },
                }
            ],
        }
    ]
    # extra vars: above the role's vars/main.yml, as the registered and set facts are on a node
    overrides = {
        "ansible_python_interpreter": sys.executable,
        "__container_runtime_probe": {"bundle_runtime": True},
        "__container_runtime_containerd_version": {"stdout": version_output},
        "__container_runtime_bundle_pause": "3.10.1",
        "koral_registry_url": "http://10.0.0.5:5000",
        "koral_registry_username": "koral",
        "container_runtime_registry_password": 'pa"ss',
        **extra,
    }
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    (tmp_path / "extra.json").write_text(json.dumps(overrides))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"@{tmp_path / 'extra.json'}", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return dest.read_text()


def _dump(containerd: Path, config: str, tmp_path: Path) -> str:
    path = tmp_path / "check.toml"
    path.write_text(config)
    proc = subprocess.run(
        [str(containerd), "--config", str(path), "config", "dump"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_containerd_2_gets_version_3_and_accepts_it(containerd: Path, tmp_path: Path) -> None:
    config = _render(tmp_path, VERSIONS["2.x"])
    assert config.splitlines()[3] == "version = 3"
    assert "io.containerd.grpc.v1.cri" not in config  # no v2 plugin names left
    dump = _dump(containerd, config, tmp_path)
    assert dump.startswith("version = 3\n")
    for expected in (
        "sandbox = '10.0.0.5:5000/pause:3.10.1'",
        "SystemdCgroup = true",
        "BinaryName = '/usr/local/sbin/runc'",
        "bin_dirs = ['/opt/cni/bin']",
        "conf_dir = '/etc/cni/net.d'",
        "config_path = '/etc/containerd/certs.d'",
        "[plugins.'io.containerd.cri.v1.images'.registry.configs.'10.0.0.5:5000'.auth]",
        "username = 'koral'",
        "snapshotter = 'overlayfs'",
        "address = '/run/containerd/containerd.sock'",
    ):
        assert expected in dump, expected


def test_containerd_1_gets_version_2(containerd: Path, tmp_path: Path) -> None:
    config = _render(tmp_path, VERSIONS["1.x"])
    assert config.splitlines()[3] == "version = 2"
    assert 'sandbox_image = "10.0.0.5:5000/pause:3.10.1"' in config
    assert 'bin_dir = "/opt/cni/bin"' in config
    # containerd 2.x still reads a version 2 file (converted on load): the same settings arrive.
    dump = _dump(containerd, config, tmp_path)
    assert "sandbox = '10.0.0.5:5000/pause:3.10.1'" in dump
    assert "SystemdCgroup = true" in dump


def test_no_bundle_runtime_leaves_runc_to_path(containerd: Path, tmp_path: Path) -> None:
    config = _render(tmp_path, VERSIONS["2.x"], __container_runtime_probe={"bundle_runtime": False})
    assert "BinaryName" not in config
    _dump(containerd, config, tmp_path)


def _support_check(
    tmp_path: Path, version_output: str, kubernetes_version: str
) -> subprocess.CompletedProcess[str]:
    """Run the role's tasks/support.yml on localhost with the facts koral passes for the version."""
    play = [
        {
            "name": "Check containerd support as the role does",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "tasks": [{"name": "Check", "ansible.builtin.import_tasks": str(ROLE / "tasks" / "support.yml")}],
        }
    ]
    overrides = {
        "ansible_python_interpreter": sys.executable,
        "__container_runtime_containerd_version": {"stdout": version_output},
        "koral_kubernetes_version": kubernetes_version,
        **release_vars(kubernetes_version),
    }
    path = tmp_path / "support.yml"
    path.write_text(yaml.safe_dump(play))
    (tmp_path / "support.json").write_text(json.dumps(overrides))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"@{tmp_path / 'support.json'}", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize(
    "minor", [m for _, m in SUPPORTED_MINORS if m >= k8s_releases.CONTAINERD_2_FROM_MINOR]
)
def test_containerd_1_refused_from_1_36(minor: int, tmp_path: Path) -> None:
    version = pinned_version((1, minor)) or f"1.{minor}.0"
    proc = _support_check(tmp_path, VERSIONS["1.x"], version)
    assert proc.returncode != 0
    assert (
        f"node localhost: containerd 1.6.20 found, Kubernetes {version} needs containerd "
        f"{k8s_releases.CONTAINERD_2_MINIMUM} or newer (Kubernetes 1.35 was the last release supporting "
        "containerd 1.x); use a bundle that carries the node runtime"
    ) in proc.stdout, proc.stdout[-3000:]


@pytest.mark.parametrize(
    ("runtime", "minor"),
    [("1.x", m) for _, m in SUPPORTED_MINORS if m < k8s_releases.CONTAINERD_2_FROM_MINOR]
    + [("2.x", m) for _, m in SUPPORTED_MINORS],
)
def test_containerd_accepted(runtime: str, minor: int, tmp_path: Path) -> None:
    version = pinned_version((1, minor)) or f"1.{minor}.0"
    proc = _support_check(tmp_path, VERSIONS[runtime], version)
    assert proc.returncode == 0, proc.stdout[-3000:]
