"""Online path: download a bundle's sources into a directory laid out for ``--from``.

Release files come from the upstream release locations (overridable per artifact with
``KORAL_BUNDLE_<KIND>_URL`` templates); images are copied with ``skopeo copy`` into
``images/*.tar`` OCI archives. Offline builds never call this module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from koral_ansible.bundle import kubeadm_images, layout
from koral_ansible.bundle.images import normalize
from koral_ansible.bundle.manifests import images_in
from koral_ansible.errors import OperationError

URLS = {
    "K8S": "https://dl.k8s.io/release/v{version}/bin/linux/{arch}/{name}",
    "CNI": "https://github.com/containernetworking/plugins/releases/download/v{version}/"
    "cni-plugins-linux-{arch}-v{version}.tgz",
    "CRICTL": "https://github.com/kubernetes-sigs/cri-tools/releases/download/v{version}/"
    "crictl-v{version}-linux-{arch}.tar.gz",
}


def _url(kind: str, **values: str) -> str:
    template = os.environ.get(f"KORAL_BUNDLE_{kind}_URL", URLS[kind])
    return template.format(**values)


def _download(url: str, dest: Path, timeout: float = 300.0) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, tmp.open("wb") as fh:
            shutil.copyfileobj(resp, fh)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OperationError(f"download of {url} failed: {exc}") from exc
    tmp.replace(dest)


def _copy_image(ref: str, dest: Path) -> None:
    skopeo = shutil.which("skopeo")
    if not skopeo:
        raise OperationError("skopeo is not installed; it is needed to download images (--online)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [skopeo, "copy", f"docker://{ref}", f"oci-archive:{dest}:{ref}"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise OperationError(f"skopeo could not copy {ref}: {proc.stderr.strip()[-300:]}")


def download_sources(
    target: Path,
    *,
    kubernetes_version: str,
    cni_version: str,
    crictl_version: str,
    arch: str,
    yamls: Sequence[str | Path],
    extra_images: Sequence[str] = (),
    progress: Callable[[str], None],
) -> Path:
    """Fill ``target`` with everything a bundle needs; return ``target``."""
    version = kubernetes_version.lstrip("v")
    cni = cni_version.lstrip("v")
    crictl = crictl_version.lstrip("v")
    for name in layout.K8S_BINARIES:
        dest = target / layout.binary_path(name)
        if not dest.exists():
            progress(f"downloading {name} v{version}")
            _download(_url("K8S", version=version, arch=arch, name=name), dest)
        dest.chmod(0o755)
    for kind, rel, ver in (("CNI", layout.cni_path(arch), cni), ("CRICTL", layout.crictl_path(arch), crictl)):
        if not (target / rel).exists():
            progress(f"downloading {rel}")
            _download(_url(kind, version=ver, arch=arch), target / rel)
    refs = kubeadm_images.from_kubeadm(target / "k8s" / "kubeadm", version) or kubeadm_images.kubeadm_images(
        version
    )
    for yaml_path in yamls:
        path = Path(yaml_path)
        if path.is_file():
            refs += images_in(path.read_text(encoding="utf-8"))
    refs += list(extra_images)
    for ref in dict.fromkeys(normalize(r) for r in refs):
        dest = target / layout.IMAGES_DIR / layout.image_file_name(ref)
        if not dest.exists():
            progress(f"copying image {ref}")
            _copy_image(ref, dest)
    return target
