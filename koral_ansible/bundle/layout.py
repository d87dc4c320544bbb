"""Where each artifact lives inside a bundle (Koral's binaries ISO layout) and where it is
found in a ``--from`` directory.

Bundle tree (every path is relative to the bundle root, the same in the directory and the ISO)::

    manifest.json                    koral-ansible's manifest (versions, sha256 of every file)
    k8s/kubeadm k8s/kubelet k8s/kubectl
    kubelet.service 10-kubeadm.conf
    cni/cni-plugins-<arch>.tgz
    cri-tools/crictl-linux-<arch>.tar.gz
    containerd/containerd containerd/containerd-shim-runc-v2 containerd/ctr   (optional, together
    runc/runc                                                                  with runc)
    etcd/etcdctl                     (optional)
    network.yaml dashboard.yaml [autoscaler.yaml] [provider.yaml]
    images/<name>.tar                OCI (or docker) archives, see manifest "images"
"""

from __future__ import annotations

import re
from pathlib import Path

from koral_ansible.errors import InputError

ARCHES: tuple[str, ...] = ("amd64", "arm64")
FORMAT = "koral-bundle/v1"
MANIFEST = "manifest.json"
K8S_BINARIES: tuple[str, ...] = ("kubeadm", "kubelet", "kubectl")
KUBELET_SERVICE = "kubelet.service"
KUBEADM_DROPIN = "10-kubeadm.conf"
NETWORK_YAML = "network.yaml"
DASHBOARD_YAML = "dashboard.yaml"
AUTOSCALER_YAML = "autoscaler.yaml"
PROVIDER_YAML = "provider.yaml"
IMAGES_DIR = "images"
# The node runtime (optional; containerd, its shim, ctr and runc come together).
CONTAINERD = "containerd/containerd"
CONTAINERD_SHIM = "containerd/containerd-shim-runc-v2"
CTR = "containerd/ctr"
RUNC = "runc/runc"
RUNTIME_BINARIES: tuple[str, ...] = (CONTAINERD, CONTAINERD_SHIM, CTR, RUNC)
ETCDCTL = "etcd/etcdctl"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_COMPONENT_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+$")


def check_arch(arch: str) -> str:
    if arch not in ARCHES:
        raise InputError("--arch", f"must be one of {', '.join(ARCHES)} (got {arch!r})")
    return arch


def check_build_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InputError(
            "--name",
            f"must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit (got {name!r})",
        )
    return name


def check_component_version(option: str, text: str) -> str:
    """A CNI plugins / crictl version ``X.Y.Z`` (a leading ``v`` is accepted and dropped)."""
    if not _COMPONENT_VERSION_RE.match(text.strip()):
        raise InputError(option, f"must be a version of the form X.Y.Z (got {text!r})")
    return text.strip().lstrip("v")


def binary_path(name: str) -> str:
    return f"k8s/{name}"


def cni_path(arch: str) -> str:
    return f"cni/cni-plugins-{arch}.tgz"


def crictl_path(arch: str) -> str:
    return f"cri-tools/crictl-linux-{arch}.tar.gz"


def image_file_name(ref: str) -> str:
    """File name (under ``images/``) for an archive holding ``ref``: ISO- and shell-safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ref.split("@", 1)[0]).strip("_")
    return f"{safe[:90]}.tar"


def source_candidates(kind: str, arch: str, version: str) -> tuple[str, ...]:
    """Relative paths tried, in order, inside a ``--from`` directory for one artifact.

    Both the bundle's own names and the upstream release file names are accepted, so a
    directory of downloaded release files or an unpacked older bundle can be used as is.
    """
    if kind in K8S_BINARIES:
        return (f"k8s/{kind}", kind, f"bin/{kind}", f"{arch}/{kind}")
    if kind == "cni":
        return (
            cni_path(arch),
            f"cni-plugins-linux-{arch}-v{version}.tgz",
            f"cni/cni-plugins-linux-{arch}-v{version}.tgz",
            f"cni-plugins-{arch}.tgz",
        )
    if kind == "crictl":
        return (
            crictl_path(arch),
            f"crictl-v{version}-linux-{arch}.tar.gz",
            f"cri-tools/crictl-v{version}-linux-{arch}.tar.gz",
            f"crictl-linux-{arch}.tar.gz",
        )
    if kind in (KUBELET_SERVICE, KUBEADM_DROPIN):
        return (kind, f"systemd/{kind}")
    raise ValueError(f"unknown artifact kind {kind!r}")


def find_source(from_dir: Path, kind: str, arch: str, version: str = "") -> Path | None:
    for rel in source_candidates(kind, arch, version):
        candidate = from_dir / rel
        if candidate.is_file():
            return candidate
    return None


def default_build_name(kubernetes_version: str, arch: str) -> str:
    return f"kubernetes-{kubernetes_version}-{arch}"


def volume_id(kubernetes_version: str) -> str:
    """ISO volume label (at most 32 characters)."""
    return f"KORAL_K8S_{kubernetes_version.replace('.', '_')}"[:32]
