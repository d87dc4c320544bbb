"""roles/container_runtime/files/import_images.py: image names read from archives, name normalisation."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


imp = _load(REPO / "roles/container_runtime/files/import_images.py", "import_images")


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("weaveworks/weave-kube:2.8.1", "docker.io/weaveworks/weave-kube:2.8.1"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("10.0.0.5:5000/koral/app", "10.0.0.5:5000/koral/app:latest"),
        ("localhost/koral/offline:1.0", "localhost/koral/offline:1.0"),
        ("registry.k8s.io/pause@sha256:abc", "registry.k8s.io/pause@sha256:abc"),
    ],
)
def test_normalize(ref: str, full: str) -> None:
    assert imp.normalize(ref) == full


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _index(annotations: dict[str, str]) -> bytes:
    return json.dumps({"schemaVersion": 2, "manifests": [{"annotations": annotations}]}).encode()


def test_oci_containerd_name(tmp_path: Path) -> None:
    path = _tar(
        tmp_path / "a.tar", {"index.json": _index({"io.containerd.image.name": "registry.k8s.io/pause:3.10"})}
    )
    assert imp.archive_names(path) == (["registry.k8s.io/pause:3.10"], "")


def test_oci_full_ref_name_needs_base_name(tmp_path: Path) -> None:
    path = _tar(
        tmp_path / "b.tar",
        {"index.json": _index({"org.opencontainers.image.ref.name": "localhost/koral/x:1.0"})},
    )
    assert imp.archive_names(path) == (["localhost/koral/x:1.0"], "localhost/koral/x")


def test_oci_tag_only_is_unnamed(tmp_path: Path) -> None:
    path = _tar(tmp_path / "c.tar", {"index.json": _index({"org.opencontainers.image.ref.name": "latest"})})
    assert imp.archive_names(path) == ([], "")


def test_docker_archive_repo_tags(tmp_path: Path) -> None:
    manifest = json.dumps([{"RepoTags": ["weaveworks/weave-npc:2.8.1"]}]).encode()
    path = _tar(tmp_path / "d.tar", {"manifest.json": manifest})
    assert imp.archive_names(path) == (["docker.io/weaveworks/weave-npc:2.8.1"], "")


def test_aliases_name_kubeadm_images_after_the_private_registry() -> None:
    present = {
        "registry.k8s.io/pause:3.10.1",
        "registry.k8s.io/coredns/coredns:v1.12.1",
        "registry.example:5000/pause:3.10.1",
        "docker.io/weaveworks/weave-kube:2.8.1",
    }
    assert imp.aliases(present, "registry.example:5000") == [
        ("registry.k8s.io/coredns/coredns:v1.12.1", "registry.example:5000/coredns/coredns:v1.12.1"),
    ]
    tagged = present | {"registry.example:5000/coredns/coredns:v1.12.1"}
    assert imp.aliases(tagged, "registry.example:5000") == []
