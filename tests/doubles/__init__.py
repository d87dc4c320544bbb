"""Test doubles for the Kubernetes binaries that cannot exist on this machine.

``k8s_double.py`` is one stdlib-only Python 3 program that plays kubeadm, kubelet, kubectl and
(started by the kubelet double from the static pod manifest) kube-apiserver, chosen by the name
it runs under. :func:`write_doubles` writes the three bundle binaries (``kubeadm``, ``kubelet``,
``kubectl``) with the Kubernetes version baked in, like real release binaries, and with the
per-release facts of :mod:`koral_ansible.k8s_releases` (image tags, kubeadm config API, the
kubelet's cgroup v1 rule) baked in too, so the double on a node reads the same data as koral.
"""

from __future__ import annotations

import re
from pathlib import Path

from koral_ansible.k8s_releases import double_data

DOUBLES_DIR = Path(__file__).resolve().parent
SOURCE = DOUBLES_DIR / "k8s_double.py"
BINARIES: tuple[str, ...] = ("kubeadm", "kubelet", "kubectl")
_VERSION_LINE = re.compile(r'^DOUBLE_VERSION = "[^"]*"$', re.M)
_RELEASES_LINE = re.compile(r"^K8S_RELEASES: dict\[str, Any\] = \{\}$", re.M)


def double_source(version: str) -> str:
    """The double's text with ``version`` (X.Y.Z) baked in."""
    if not re.match(r"^\d+\.\d+\.\d+$", version):
        raise ValueError(f"version must be X.Y.Z (got {version!r})")
    text = SOURCE.read_text()
    new, n = _VERSION_LINE.subn(f'DOUBLE_VERSION = "{version}"', text)
    if n != 1:
        raise RuntimeError("k8s_double.py: DOUBLE_VERSION line not found")
    baked = f"K8S_RELEASES: dict[str, Any] = {double_data()!r}"
    new, n = _RELEASES_LINE.subn(lambda _m: baked, new)
    if n != 1:
        raise RuntimeError("k8s_double.py: K8S_RELEASES line not found")
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
