"""Role level: installing from a bundle with one byte changed fails, naming the file, before anything
is installed - and after a verified good copy, a tampered source never puts its bytes on the node.

The roles run as the create playbook orders them (bundle, container_runtime, kubeadm) with plain
``ansible-playbook`` against a node this test creates (koral's node image, podman connection).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.paths import Paths
from koral_ansible.providers.local.podman import Podman, podman_env
from tests.bundle_fixtures import make_double_bundle
from tests.integration.bundle_nodes import start_node, stop_node
from tests.versions import DEFAULT

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

REPO = Path(__file__).resolve().parents[2]
VERSION = DEFAULT
CONTAINER = "koral-ittamper-node"  # start_node names it koral-<cluster>-node
PLAYBOOK = """\
- name: Install Kubernetes from a bundle (the create playbook's order)
  hosts: node
  gather_facts: false
  roles:
    - role: bundle
    - role: container_runtime
    - role: kubeadm
"""
BUNDLE_ONLY = """\
- name: Ship and verify a bundle
  hosts: node
  gather_facts: false
  roles:
    - role: bundle
"""
# What the install would leave on the node (none of it may exist after a refused bundle).
INSTALLED = (
    "/usr/bin/kubeadm",
    "/usr/bin/kubelet",
    "/usr/bin/kubectl",
    "/etc/systemd/system/kubelet.service",
)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    return Paths.resolve(str(tmp_path_factory.mktemp("koral-home")))


@pytest.fixture(scope="module")
def node(paths: Paths) -> Iterator[Podman]:
    podman, container, _ip, net = start_node(paths, "ittamper")
    assert container == CONTAINER
    try:
        yield podman
    finally:
        stop_node(podman, container, net)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(good bundle directory, the same with one byte of k8s/kubectl changed)."""
    root = tmp_path_factory.mktemp("bundle")
    good = make_double_bundle(root, VERSION, iso=False).directory
    bad = root / "tampered" / good.name
    shutil.copytree(good, bad)
    target = bad / "k8s" / "kubectl"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    return Path(good), bad


def play(paths: Paths, tmp: Path, playbook: str, bundle: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "play.yml").write_text(playbook)
    (tmp / "hosts.ini").write_text(
        f"node ansible_connection=containers.podman.podman ansible_host={CONTAINER} "
        "ansible_python_interpreter=/usr/bin/python3\n"
    )
    env = {
        **os.environ,
        **podman_env(paths),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp / "hosts.ini"),
            str(tmp / "play.yml"), "-e", f"koral_bundle={bundle}",
            "-e", f"koral_kubernetes_version={VERSION}",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def installed(podman: Podman) -> list[str]:
    found = []
    for path in INSTALLED:
        if podman.run("exec", CONTAINER, "test", "-e", path, check=False).returncode == 0:
            found.append(path)
    config = podman.run("exec", CONTAINER, "cat", "/etc/containerd/config.toml", check=False).stdout
    if "Managed by koral-ansible" in config:
        found.append("/etc/containerd/config.toml")
    return found


def test_tampered_bundle_refused_before_install(
    paths: Paths, node: Podman, bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    good, bad = bundles
    proc = play(paths, tmp_path, PLAYBOOK, bad)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-4000:]
    assert "k8s/kubectl: FAILED" in output, output[-4000:]
    assert "(tampered or corrupted)" in output
    assert "Refuse a bundle whose files do not match its manifest" in output
    assert installed(node) == []

    # A good copy verified on the node first, then the tampered source: the tampered bytes never
    # reach the node - refused naming the file, or (the bundle role skips copying a verified,
    # unchanged bundle of the same manifest) the verified copy stays as it was.
    proc = play(paths, tmp_path, BUNDLE_ONLY, good)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    proc = play(paths, tmp_path, BUNDLE_ONLY, bad)
    output = proc.stdout + proc.stderr
    on_node = node.run(
        "exec", CONTAINER, "sh", "-c", "sha256sum /opt/koral/bundles/*/k8s/kubectl"
    ).stdout.split()
    good_sha = hashlib.sha256((good / "k8s" / "kubectl").read_bytes()).hexdigest()
    bad_sha = hashlib.sha256((bad / "k8s" / "kubectl").read_bytes()).hexdigest()
    assert bad_sha not in on_node, output[-4000:]
    if proc.returncode != 0:
        assert "k8s/kubectl: FAILED" in output, output[-4000:]
    else:
        assert on_node[0] == good_sha
