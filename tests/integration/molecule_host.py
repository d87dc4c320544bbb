"""Run the role Molecule scenarios (molecule/<role>/) against koral's own node image.

Sets what every scenario needs and Molecule cannot find by itself: the node image reference
(``KORAL_NODE_IMAGE``, built once and cached by koral_ansible.providers.local.image), koral's podman
configuration (``CONTAINERS_CONF``/``CONTAINERS_STORAGE_CONF``: runc, ulimits, its own store and
networks) and the venv's bin directory on PATH. Used by tests/integration/test_molecule.py, and by
hand::

    python tests/integration/molecule_host.py preflight            # molecule test -s preflight
    python tests/integration/molecule_host.py firewall converge    # any molecule subcommand
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from koral_ansible.cgroup import cgroup_version
from koral_ansible.paths import Paths
from koral_ansible.providers.local.image import ensure_image
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.versions import DEFAULT_VERSION

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("preflight", "container_runtime", "firewall", "etcd_backup", "kubeadm")


def molecule_env(paths: Paths | None = None) -> dict[str, str]:
    """Environment for ``molecule`` (the node image is built first when missing)."""
    paths = paths or Paths.resolve()
    env = {**os.environ, **podman_env(paths)}
    env["KORAL_NODE_IMAGE"] = ensure_image(paths)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    env.setdefault("KORAL_KUBERNETES_VERSION", DEFAULT_VERSION)
    env.setdefault("KORAL_ALLOW_CGROUP_V1", "true" if cgroup_version() == 1 else "false")
    env["MOLECULE_GLOB"] = "molecule/*/molecule.yml"  # the repo is also a collection: keep molecule/
    env.setdefault("ANSIBLE_FORCE_COLOR", "false")
    env.setdefault("PY_COLORS", "0")
    return env


def run_molecule(
    scenario: str, command: str = "test", extra: list[str] | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``molecule <command> -s <scenario>`` from the repository root; the process and seconds taken."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}")
    env = env or molecule_env()
    start = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "molecule"), command, "-s", scenario, *(extra or [])],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc, time.monotonic() - start


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SCENARIOS:
        choices = "|".join(SCENARIOS)
        print(f"usage: molecule_host.py {{{choices}}} [molecule-command [args...]]", file=sys.stderr)
        return 2
    env = molecule_env()
    command = argv[1] if len(argv) > 1 else "test"
    cmd = [str(Path(sys.executable).parent / "molecule"), command, "-s", argv[0]]
    return subprocess.call([*cmd, *argv[2:]], cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
