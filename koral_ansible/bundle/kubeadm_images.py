"""The control-plane images ``kubeadm config images list`` names for a Kubernetes version.

The pause, etcd and CoreDNS tags per release come from :mod:`koral_ansible.k8s_releases` (the
one home of those facts, each with its upstream source). When a runnable kubeadm binary is at
hand the bundle builder asks it instead (:func:`from_kubeadm`), which is always exact; the table
is the offline fallback and can be overridden image by image.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from koral_ansible import k8s_releases
from koral_ansible.versions import Version

REGISTRY = "registry.k8s.io"

_IMAGE_LINE_RE = re.compile(
    r"^[a-z0-9.-]+(:\d+)?/[A-Za-z0-9._/-]+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$"
)


def _step(v: Version, what: str) -> str:
    if v.major != 1 or v.minor not in k8s_releases.RELEASES:
        known = ", ".join(f"1.{m}" for m in sorted(k8s_releases.RELEASES))
        raise ValueError(f"no known {what} tag for Kubernetes {v}; known minors: {known}")
    rel = k8s_releases.RELEASES[v.minor]
    steps = {"pause": rel.pause, "etcd": rel.etcd, "CoreDNS": rel.coredns}[what]
    return k8s_releases.step(steps, v.patch)


def kubeadm_images(kubernetes_version: str, registry: str = REGISTRY) -> list[str]:
    """Images kubeadm needs for ``kubernetes_version``, in ``kubeadm config images list`` order."""
    v = Version.parse(kubernetes_version)
    tag = f"v{v}"
    return [
        f"{registry}/kube-apiserver:{tag}",
        f"{registry}/kube-controller-manager:{tag}",
        f"{registry}/kube-scheduler:{tag}",
        f"{registry}/kube-proxy:{tag}",
        f"{registry}/coredns/coredns:{_step(v, 'CoreDNS')}",
        f"{registry}/pause:{_step(v, 'pause')}",
        f"{registry}/etcd:{_step(v, 'etcd')}",
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
