"""Image facts for bundles: kubeadm's image list per version, references, YAML parsing, policies."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from koral_ansible.bundle import images_in, kubeadm_images, normalize_image, pin_pull_policy
from koral_ansible.bundle.images import index_archives, lookup, read_archive
from koral_ansible.bundle.manifests import ManifestError
from tests.bundle_fixtures import write_docker_archive, write_oci_archive


def test_kubeadm_images_for_1_31() -> None:
    assert kubeadm_images("1.31.4") == [
        "registry.k8s.io/kube-apiserver:v1.31.4",
        "registry.k8s.io/kube-controller-manager:v1.31.4",
        "registry.k8s.io/kube-scheduler:v1.31.4",
        "registry.k8s.io/kube-proxy:v1.31.4",
        "registry.k8s.io/coredns/coredns:v1.11.3",
        "registry.k8s.io/pause:3.10",
        "registry.k8s.io/etcd:3.5.15-0",
    ]


@pytest.mark.parametrize(
    ("version", "pause", "etcd", "coredns"),
    [
        ("1.28.0", "3.9", "3.5.9-0", "v1.10.1"),
        ("1.28.15", "3.9", "3.5.15-0", "v1.10.1"),
        ("1.29.2", "3.9", "3.5.10-0", "v1.11.1"),
        ("1.30.0", "3.9", "3.5.12-0", "v1.11.1"),
        ("1.30.6", "3.9", "3.5.15-0", "v1.11.3"),
        ("1.31.0", "3.10", "3.5.15-0", "v1.11.1"),
        ("1.32.0", "3.10", "3.5.16-0", "v1.11.3"),
        ("1.33.0", "3.10", "3.5.21-0", "v1.12.0"),
        ("1.34.0", "3.10.1", "3.6.4-0", "v1.12.1"),
    ],
)
def test_kubeadm_image_tags_per_release(version: str, pause: str, etcd: str, coredns: str) -> None:
    listed = kubeadm_images(version)
    assert f"registry.k8s.io/pause:{pause}" in listed
    assert f"registry.k8s.io/etcd:{etcd}" in listed
    assert f"registry.k8s.io/coredns/coredns:{coredns}" in listed
    assert (
        kubeadm_images(version, registry="reg.local:5000/k8s")[0]
        == f"reg.local:5000/k8s/kube-apiserver:v{version}"
    )


def test_kubeadm_images_unknown_minor() -> None:
    with pytest.raises(ValueError, match="known minors"):
        kubeadm_images("1.20.0")


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("weaveworks/weave-kube:2.8.1", "docker.io/weaveworks/weave-kube:2.8.1"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost/node:bookworm", "localhost/node:bookworm"),
        ("reg.local:5000/a/b", "reg.local:5000/a/b:latest"),
        ("quay.io/calico/node:v3.28.0@sha256:" + "a" * 64, "quay.io/calico/node:v3.28.0@sha256:" + "a" * 64),
        (" docker.io/library/nginx ", "docker.io/library/nginx:latest"),
    ],
)
def test_normalize(ref: str, full: str) -> None:
    assert normalize_image(ref) == full


def test_images_in_walks_every_container_kind() -> None:
    text = """
apiVersion: v1
kind: List
items:
- kind: CronJob
  spec:
    jobTemplate:
      spec:
        template:
          spec:
            initContainers: [{name: i, image: "a/init:1"}]
            containers: [{name: c, image: "a/job:1"}]
---
kind: Pod
spec:
  containers:
  - {name: x, image: "a/job:1"}
  ephemeralContainers:
  - {name: d, image: busybox}
---
kind: ConfigMap
data: {image: "not/a-container:1"}
"""
    assert images_in(text) == ["a/init:1", "a/job:1", "busybox"]


def test_pin_pull_policy_in_place_and_structural() -> None:
    in_place = "containers:\n- name: a\n  image: x\n  imagePullPolicy: Always  # keep me\n"
    assert (
        pin_pull_policy(in_place)
        == "containers:\n- name: a\n  image: x\n  imagePullPolicy: IfNotPresent  # keep me\n"
    )
    missing = "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: x:latest\n"
    doc = yaml.safe_load(pin_pull_policy(missing))
    assert doc["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    with pytest.raises(ManifestError, match="line"):
        pin_pull_policy("a: [\n")


def test_archives_are_indexed_by_full_name(tmp_path: Path) -> None:
    digest = write_oci_archive(tmp_path / "img" / "one.tar", "weaveworks/weave-kube:2.8.1")
    assert digest.startswith("sha256:")
    write_docker_archive(tmp_path / "img" / "two.tar", "registry.k8s.io/pause:3.10")
    (tmp_path / "img" / "junk.tar").write_bytes(b"not a tar")
    found = index_archives(tmp_path / "img")
    assert set(found) == {"docker.io/weaveworks/weave-kube:2.8.1", "registry.k8s.io/pause:3.10"}
    assert found["registry.k8s.io/pause:3.10"].format == "docker-archive"
    one = read_archive(tmp_path / "img" / "one.tar")
    assert one is not None and one.format == "oci-archive"
    pinned = "weaveworks/weave-kube:2.8.1@sha256:" + "b" * 64
    assert lookup(pinned, found) is found["docker.io/weaveworks/weave-kube:2.8.1"]
    assert lookup("weaveworks/weave-kube:2.8.2", found) is None
    assert read_archive(tmp_path / "img" / "junk.tar") is None
    assert index_archives(tmp_path / "nothing") == {}


@pytest.mark.skipif(not shutil.which("skopeo"), reason="needs skopeo")
def test_fixture_archives_are_real_images(tmp_path: Path) -> None:
    """Standard tools read the pure-Python archives (no image store is touched)."""
    write_oci_archive(tmp_path / "oci.tar", "registry.k8s.io/pause:3.10")
    write_docker_archive(tmp_path / "docker.tar", "registry.k8s.io/pause:3.10")
    for transport in ("oci-archive", "docker-archive"):
        proc = subprocess.run(
            ["skopeo", "inspect", f"{transport}:{tmp_path / transport.split('-')[0]}.tar"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert info["Architecture"] == "amd64" and info["Os"] == "linux" and len(info["Layers"]) == 1


@pytest.mark.skipif(not Path("/bin/busybox").is_file(), reason="needs busybox-static")
def test_fixture_image_with_busybox_can_run(tmp_path: Path) -> None:
    write_oci_archive(tmp_path / "bb.tar", "localhost/koral/busybox:test", busybox=True)
    with tarfile.open(tmp_path / "bb.tar") as outer:
        index = json.load(outer.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(outer.extractfile(f"blobs/sha256/{manifest_digest}"))  # type: ignore[arg-type]
        layer = outer.extractfile(f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}")
        assert layer is not None
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.read()))) as inner:
            member = inner.getmember("bin/busybox")
            assert member.mode & 0o111 and member.size == Path("/bin/busybox").stat().st_size
