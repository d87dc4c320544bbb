"""The control-plane images ``kubeadm config images list`` names for a Kubernetes version.

Facts from kubeadm's constants (pause, etcd and CoreDNS tags per release), as published;
etcd and CoreDNS were bumped inside some patch series, so each minor lists
``(first_patch, tag)`` steps. When a runnable kubeadm binary is at hand the bundle builder
asks it instead (:func:`from_kubeadm`), which is always exact; the table is the offline
fallback and can be overridden image by image.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from koral_ansible.versions import Version

REGISTRY = "registry.k8s.io"

# minor -> [(first patch, tag), ...] ascending; the last step whose first patch <= patch wins.
PAUSE: dict[int, list[tuple[int, str]]] = {
    28: [(0, "3.9")],
    29: [(0, "3.9")],
    30: [(0, "3.9")],
    31: [(0, "3.10")],
    32: [(0, "3.10")],
    33: [(0, "3.10")],
    34: [(0, "3.10.1")],
}
ETCD: dict[int, list[tuple[int, str]]] = {
    28: [(0, "3.5.9-0"), (6, "3.5.10-0"), (8, "3.5.12-0"), (14, "3.5.15-0")],
    29: [(0, "3.5.10-0"), (3, "3.5.12-0"), (9, "3.5.15-0")],
    30: [(0, "3.5.12-0"), (5, "3.5.15-0")],
    31: [(0, "3.5.15-0")],
    32: [(0, "3.5.16-0")],
    33: [(0, "3.5.21-0")],
    34: [(0, "3.6.4-0")],
}
COREDNS: dict[int, list[tuple[int, str]]] = {
    28: [(0, "v1.10.1")],
    29: [(0, "v1.11.1")],
    30: [(0, "v1.11.1"), (5, "v1.11.3")],
    31: [(0, "v1.11.1"), (1, "v1.11.3")],
    32: [(0, "v1.11.3")],
    33: [(0, "v1.12.0")],
    34: [(0, "v1.12.1")],
}

_IMAGE_LINE_RE = re.compile(
    r"^[a-z0-9.-]+(:\d+)?/[A-Za-z0-9._/-]+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$"
)


def _step(table: dict[int, list[tuple[int, str]]], v: Version, what: str) -> str:
    if v.major != 1 or v.minor not in table:
        known = ", ".join(f"1.{m}" for m in sorted(table))
        raise ValueError(f"no known {what} tag for Kubernetes {v}; known minors: {known}")
    tag = table[v.minor][0][1]
    for first, candidate in table[v.minor]:
        if v.patch >= first:
            tag = candidate
    return tag


def kubeadm_images(kubernetes_version: str, registry: str = REGISTRY) -> list[str]:
    """Images kubeadm needs for ``kubernetes_version``, in ``kubeadm config images list`` order."""
    v = Version.parse(kubernetes_version)
    tag = f"v{v}"
    return [
        f"{registry}/kube-apiserver:{tag}",
        f"{registry}/kube-controller-manager:{tag}",
        f"{registry}/kube-scheduler:{tag}",
        f"{registry}/kube-proxy:{tag}",
        f"{registry}/coredns/coredns:{_step(COREDNS, v, 'CoreDNS')}",
        f"{registry}/pause:{_step(PAUSE, v, 'pause')}",
        f"{registry}/etcd:{_step(ETCD, v, 'etcd')}",
    ]


def from_kubeadm(kubeadm: Path, kubernetes_version: str, timeout: float = 30.0) -> list[str] | None:
    """Ask a kubeadm binary; ``None`` when it cannot run here (other arch, not executable, ...)."""
    try:
        proc = subprocess.run(
            [str(kubeadm), "config", "images", "list", "--kubernetes-version", f"v{kubernetes_version}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    images = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if not images or not all(_IMAGE_LINE_RE.match(i) for i in images):
        return None
    return images


def kubeadm_version(kubeadm: Path, timeout: float = 30.0) -> str | None:
    """``kubeadm version -o short`` without the ``v``; ``None`` when it cannot run here."""
    try:
        proc = subprocess.run(
            [str(kubeadm), "version", "-o", "short"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout.strip()
    if proc.returncode != 0 or not re.match(r"^v?\d+\.\d+\.\d+$", text):
        return None
    return text.lstrip("v")
