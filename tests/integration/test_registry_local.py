"""Private registry end to end on local nodes: push a bundle, create a cluster that pulls everything.

A node this test creates runs Debian's docker-registry with htpasswd auth; ``koral-play registry
push`` copies the bundle's (locally built) images into it; ``koral-play create --registry-url``
makes 1+1 nodes whose containerd pulls every image from it (kubeadm's images as
``HOST:PORT/<path>``, the others by upstream name through hosts.toml mirrors) - none is imported
from the bundle's archives. Checked on the nodes (containerd's image list), in the registry's
access log, and: the password appears nowhere under the koral home (state, runner artifacts).
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from koral_ansible.bundle import verify_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge
from koral_ansible.paths import Paths
from koral_ansible.providers.local.podman import Podman
from tests.bundle_fixtures import make_double_bundle
from tests.integration.bundle_nodes import start_node, stop_node
from tests.integration.cli_home import cli_home
from tests.versions import DEFAULT

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

VERSION = DEFAULT
USER = "koral"
PASSWORD = f"reg-{secrets.token_hex(8)}"
CLUSTER = "itreg"
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: :5000
auth:
  htpasswd:
    realm: koral-test
    path: /etc/docker/registry/htpasswd
"""


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the htpasswd format docker-registry reads is bcrypt

    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("no bcrypt in this Python's crypt module")
    return hashed


@dataclass
class RegistryNode:
    podman: Podman
    container: str
    ip: str

    @property
    def url(self) -> str:
        return f"http://{self.ip}:5000"

    def sh(self, script: str, check: bool = True) -> str:
        proc = self.podman.run("exec", self.container, "sh", "-c", script, check=False, timeout=120)
        if check:
            assert proc.returncode == 0, f"{script!r}: {proc.stderr}"
        return proc.stdout

    def log(self) -> list[str]:
        return self.sh("journalctl -u docker-registry -o cat --no-pager").splitlines()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), CLUSTER) as h:
        yield h


@pytest.fixture(scope="module")
def registry(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryNode]:
    """A node of this test (own podman network) serving docker-registry with htpasswd auth."""
    paths = Paths.resolve(str(home))
    podman, container, ip, net = start_node(paths, "itreg-registry")
    try:
        node = RegistryNode(podman, container, ip)
        files = tmp_path_factory.mktemp("registry-files")
        (files / "config.yml").write_text(REGISTRY_CONFIG)
        (files / "htpasswd").write_text(f"{USER}:{_bcrypt(PASSWORD)}\n")
        node.sh("mkdir -p /etc/docker/registry /var/lib/docker-registry")
        for name in ("config.yml", "htpasswd"):
            podman.run("cp", str(files / name), f"{container}:/etc/docker/registry/{name}")
        node.sh(
            "chown -R docker-registry /var/lib/docker-registry 2>/dev/null || true; "
            "systemctl start docker-registry"
        )
        for _ in range(60):
            code = node.sh(
                'python3 -c "import urllib.request as u, urllib.error as e\n'
                "try: u.urlopen('http://127.0.0.1:5000/v2/', timeout=2); print(200)\n"
                "except e.HTTPError as x: print(x.code)\n"
                'except OSError: print(0)"',
                check=False,
            ).strip()
            if code == "401":
                break
            time.sleep(1)
        assert code == "401", f"registry did not come up with auth (GET /v2/ -> {code})"
        yield node
    finally:
        stop_node(podman, container, net)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root_dir = tmp_path_factory.mktemp("bundle")
    result = make_double_bundle(root_dir, VERSION, iso=False)
    return Path(result.directory)


def _ssh(env: Env, port: int, command: str) -> str:
    host = env.store.get_cluster(CLUSTER).endpoint["public_ip"]
    proc = subprocess.run(
        [
            "ssh", "-i", str(env.paths.ssh_key(CLUSTER)), "-p", str(port),
            "-o", f"UserKnownHostsFile={env.paths.known_hosts(CLUSTER)}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{host}", command,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_push_then_create_pulls_everything_from_the_registry(
    home: Path, registry: RegistryNode, bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password_file = home.parent / "registry-password"
    password_file.write_text(PASSWORD)
    password_file.chmod(0o600)
    manifest = verify_bundle(bundle, deep=False)
    host = registry.url.removeprefix("http://")

    # 1. Push: every image of the bundle lands in the registry (auth required, password via file).
    code = run_cli(
        root,
        ["registry", "push", str(bundle), "--registry", registry.url, "--username", USER,
         "--password-file", str(password_file)],
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    pushed = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if line.strip()}
    assert sorted(pushed) == sorted(manifest.images)
    assert PASSWORD not in out + err

    # 2. Create with the registry: nodes pull every image from it.
    before = len(registry.log())
    code = run_cli(
        root,
        ["create", CLUSTER, "--size", "1", "--bundle", str(bundle), "--kubernetes-version", VERSION,
         "--allowed-cidrs", "10.0.0.0/8,127.0.0.0/8", "--registry-url", registry.url,
         "--registry-username", USER, "--registry-password-file", str(password_file)],
    )  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
    env = Env.open(str(home), quiet=True)
    record = env.store.get_cluster(CLUSTER)
    assert len(record.nodes) == 2

    # What each node must hold: kubeadm's images under the registry, the others by upstream name.
    expected = sorted(
        ref.replace("registry.k8s.io/", f"{host}/", 1) if ref.startswith("registry.k8s.io/") else ref
        for ref in manifest.images
    )
    for i in range(len(record.nodes)):
        listed = _ssh(env, 2222 + i, "ctr -n k8s.io images ls -q").split()
        names = sorted(n for n in listed if not n.startswith("sha256:"))  # CRI's image-id entries
        # Nothing else: an import from the bundle would have added registry.k8s.io/... names.
        assert names == expected, names
        hosts_toml = _ssh(env, 2222 + i, f"stat -c %a /etc/containerd/certs.d/{host}/hosts.toml").strip()
        assert hosts_toml == "600"

    # The registry resolved every image's tag for the nodes (containerd: HEAD or GET of the tag's
    # manifest, then blobs by digest), at least once per node.
    log = registry.log()[before:]
    for ref, target in pushed.items():
        path, _, tag = target.removeprefix(f"{host}/").rpartition(":")
        wanted = re.compile(rf'"(HEAD|GET) /v2/{re.escape(path)}/manifests/{re.escape(tag)}[? ][^"]*" 200 ')
        hits = [line for line in log if wanted.search(line)]
        sample = "\n".join(line for line in log if "/manifests/" in line)[-2000:]
        assert len(hits) >= len(record.nodes), f"{ref}: {len(hits)} tag lookups in the log:\n{sample}"

    # A second converge pulls nothing and changes nothing.
    with OperationFrame(env, CLUSTER, "converge", busy=None, failed=None) as frame:
        result = converge(env, frame, record, "create.yml")
    assert result.changed == 0, result.stats

    # 3. The password (or its basic-auth form) is nowhere under the koral home - runner artifacts,
    # state, events - but in the cluster's 0600 secrets file (kept for later converges) ...
    secrets_file = env.paths.cluster_dir(CLUSTER) / "secrets.json"
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def holders(secret: str) -> list[str]:
        grep = subprocess.run(["grep", "-rl", secret, str(home)], capture_output=True, text=True, check=False)
        return grep.stdout.split()

    assert holders(PASSWORD) == [str(secrets_file)]
    assert secrets_file.stat().st_mode & 0o077 == 0
    assert holders(basic) == []

    # ... which goes with the cluster.
    assert run_cli(root, ["delete", CLUSTER, "--yes"]) == 0
    assert holders(PASSWORD) == []
