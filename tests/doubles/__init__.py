"""Test doubles for the Kubernetes binaries that cannot exist on this machine.

``k8s_double.py`` is one stdlib-only Python 3 program that plays kubeadm, kubelet, kubectl and
(started by the kubelet double from the static pod manifest) kube-apiserver, chosen by the name
it runs under. :func:`write_doubles` writes the three bundle binaries (``kubeadm``, ``kubelet``,
``kubectl``) with the Kubernetes version baked in, like real release binaries.
"""

from __future__ import annotations

import re
from pathlib import Path

DOUBLES_DIR = Path(__file__).resolve().parent
SOURCE = DOUBLES_DIR / "k8s_double.py"
BINARIES: tuple[str, ...] = ("kubeadm", "kubelet", "kubectl")
_VERSION_LINE = re.compile(r'^DOUBLE_VERSION = "[^"]*"$', re.M)


def double_source(version: str) -> str:
    """The double's text with ``version`` (X.Y.Z) baked in."""
    if not re.match(r"^\d+\.\d+\.\d+$", version):
        raise ValueError(f"version must be X.Y.Z (got {version!r})")
    text = SOURCE.read_text()
    new, n = _VERSION_LINE.subn(f'DOUBLE_VERSION = "{version}"', text)
    if n != 1:
        raise RuntimeError("k8s_double.py: DOUBLE_VERSION line not found")
    return new


def write_doubles(dest: Path, version: str) -> dict[str, Path]:
    """Write kubeadm, kubelet and kubectl (mode 0755) into ``dest``; return name -> path.

    ``dest`` is what a bundle build takes as its ``--from`` directory for k8s/ binaries.
    """
    dest.mkdir(parents=True, exist_ok=True)
    text = double_source(version)
    out = {}
    for name in BINARIES:
        path = dest / name
        path.write_text(text)
        path.chmod(0o755)
        out[name] = path
    return out
