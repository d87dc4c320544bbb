"""Run podman with koral's own configuration.

Koral never uses the host's default podman setup: every call gets ``CONTAINERS_CONF`` and
``CONTAINERS_STORAGE_CONF`` pointing at files under ``Paths.cache/podman``. That gives

- ``runtime = "runc"`` (crun fails on these hosts) and ulimits the host can grant
  (the defaults fail with setrlimit EPERM where CAP_SYS_RESOURCE is missing);
- one image store per cache (``graphroot`` under the cache) so the imported node image is
  shared by every koral home, test run and Molecule scenario using the same cache;
- its own network config dir, so koral's networks never mix with the host's.

Volatile state (``runroot``, ``tmp_dir``) lives under ``/run/koral`` as podman expects.
Other tools (Molecule) call :func:`podman_env` and merge it into their environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from koral_ansible.errors import OperationError
from koral_ansible.paths import Paths, private_dir

LABEL_CLUSTER = "koral.cluster"
LABEL_NODE = "koral.node"
LABEL_HOME = "koral.home"  # which koral home (state store) owns the object
DEFAULT_TIMEOUT = 120.0

CONTAINERS_CONF = """\
# Written by koral-ansible; regenerated when it differs.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "{base}/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{volatile}/tmp"
static_dir = "{base}/root/libpod"
volume_path = "{base}/root/volumes"
"""

STORAGE_CONF = """\
# Written by koral-ansible; regenerated when it differs.
[storage]
driver = "overlay"
graphroot = "{base}/root"
runroot = "{volatile}/run"
"""


def podman_base(paths: Paths) -> Path:
    """Persistent podman state of koral (images, container layers, network definitions)."""
    return paths.cache / "podman"


def _volatile(paths: Paths) -> Path:
    digest = hashlib.sha256(str(podman_base(paths).resolve()).encode()).hexdigest()[:12]
    return Path("/run/koral") / f"podman-{digest}"


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def podman_env(paths: Paths) -> dict[str, str]:
    """``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF`` for koral's podman (files written if needed).

    Merge into a process environment: ``env = {**os.environ, **podman_env(paths)}``.
    """
    base = private_dir(podman_base(paths))
    volatile = _volatile(paths)
    for sub in (base / "networks", base / "root", volatile / "tmp", volatile / "run"):
        private_dir(sub)
    fmt = {"base": str(base.resolve()), "volatile": str(volatile)}
    conf = base / "containers.conf"
    storage = base / "storage.conf"
    _write_if_changed(conf, CONTAINERS_CONF.format(**fmt))
    _write_if_changed(storage, STORAGE_CONF.format(**fmt))
    return {"CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}


class Podman:
    """A podman command line bound to koral's configuration."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._env = {**os.environ, **podman_env(paths)}

    @property
    def env(self) -> dict[str, str]:
        return dict(self._env)

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        stdin: Any = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["podman", *args]
        try:
            # Its own session: a signal to koral-play's process group (Ctrl-C, a killed job) must
            # not cut podman inside a non-atomic step. Podman 4.3 commits a container's static IP
            # to its IPAM database before it records the network namespace; killed in between,
            # the address stays allocated to that container and every later start is refused
            # ("requested ip address ... is already allocated to container ID ...").
            proc = subprocess.run(
                cmd,
                env=self._env,
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise OperationError(f"podman {args[0]} timed out after {timeout:.0f}s") from None
        except FileNotFoundError:
            raise OperationError("podman is not installed (apt-get install podman runc)") from None
        if check and proc.returncode != 0:
            raise OperationError(f"podman {' '.join(args[:2])} failed: {_last_line(proc.stderr)}")
        return proc

    def ok(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
        return self.run(*args, check=False, timeout=timeout).returncode == 0

    def json(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
        out = self.run(*args, timeout=timeout).stdout.strip()
        return json.loads(out) if out else []

    # ---- queries ----------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        return self.ok("image", "exists", ref)

    def container_state(self, name: str) -> str | None:
        """``running``, ``exited``, ``created``... or None when there is no such container."""
        proc = self.run("container", "inspect", "--format", "{{.State.Status}}", name, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def container_id(self, name: str) -> str | None:
        proc = self.run("container", "inspect", "--format", "{{.Id}}", name, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def containers_by_labels(self, wanted: dict[str, str]) -> list[str]:
        """Names of containers carrying every ``label=value`` of ``wanted``."""
        filters = [a for k, v in wanted.items() for a in ("--filter", f"label={k}={v}")]
        proc = self.run("ps", "-a", *filters, "--format", "{{.Names}}")
        return [n for n in proc.stdout.split() if n]

    def networks(self) -> list[dict[str, Any]]:
        data = self.json("network", "ls", "--format", "json")
        return list(data) if isinstance(data, list) else []

    def networks_by_labels(self, wanted: dict[str, str]) -> list[str]:
        filters = [a for k, v in wanted.items() for a in ("--filter", f"label={k}={v}")]
        proc = self.run("network", "ls", *filters, "--format", "{{.Name}}")
        return [n for n in proc.stdout.split() if n]


def home_id(paths: Paths) -> str:
    """Short stable id of a koral home: tells apart same-named clusters of two homes sharing a cache."""
    return hashlib.sha256(str(paths.home.resolve()).encode()).hexdigest()[:12]


def labels(cluster: str, home: str, node: str = "") -> list[str]:
    """``--label`` arguments every koral container/network carries."""
    out = ["--label", f"{LABEL_CLUSTER}={cluster}", "--label", f"{LABEL_HOME}={home}"]
    if node:
        out += ["--label", f"{LABEL_NODE}={node}"]
    return out


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:400] if lines else "(no error output)"
