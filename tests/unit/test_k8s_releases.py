"""Per-release facts (koral_ansible/k8s_releases.py): the image tags match what upstream lists,
and the test doubles read the same facts once written (baked in, no koral_ansible on the node)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from koral_ansible import k8s_releases, versions
from koral_ansible.bundle.kubeadm_images import kubeadm_images
from tests.doubles import double_source, write_doubles


def _core(version: str, coredns: str, pause: str, etcd: str) -> list[str]:
    r = "registry.k8s.io"
    return [
        f"{r}/kube-apiserver:v{version}",
        f"{r}/kube-controller-manager:v{version}",
        f"{r}/kube-scheduler:v{version}",
        f"{r}/kube-proxy:v{version}",
        f"{r}/coredns/coredns:{coredns}",
        f"{r}/pause:{pause}",
        f"{r}/etcd:{etcd}",
    ]


# ablecloud-team/ablestack-kubernetes-iso scripts/util/kubernetes-iso/recipes/kubernetes-<v>-amd64.json
# "core_images", and kubernetes/minikube pkg/minikube/constants/constants_kubeadm_images.go.
UPSTREAM = [
    ("1.34.0", "v1.12.1", "3.10.1", "3.6.4-0"),
    ("1.34.1", "v1.12.1", "3.10.1", "3.6.4-0"),
    ("1.34.2", "v1.12.1", "3.10.1", "3.6.5-0"),
    ("1.34.10", "v1.12.1", "3.10.1", "3.6.5-0"),
    ("1.34.12", "v1.12.1", "3.10.1", "3.6.5-0"),
    ("1.35.0", "v1.13.1", "3.10.1", "3.6.6-0"),
    ("1.35.7", "v1.13.1", "3.10.1", "3.6.6-0"),
    ("1.35.9", "v1.13.1", "3.10.1", "3.6.6-0"),
    ("1.36.0", "v1.14.2", "3.10.2", "3.6.8-0"),
    ("1.36.3", "v1.14.2", "3.10.2", "3.6.8-0"),
    ("1.36.5", "v1.14.2", "3.10.2", "3.6.8-0"),
    ("1.37.1", "v1.14.6", "3.10.2", "3.7.0-0"),
]


@pytest.mark.parametrize(("version", "coredns", "pause", "etcd"), UPSTREAM)
def test_kubeadm_images_match_upstream(version: str, coredns: str, pause: str, etcd: str) -> None:
    assert kubeadm_images(version) == _core(version, coredns, pause, etcd)


def test_pinned_patches_and_skew() -> None:
    pinned = {m: versions.pinned_version((1, m)) for m in (34, 35, 36, 37)}
    assert pinned == {34: "1.34.12", 35: "1.35.9", 36: "1.36.5", 37: "1.37.1"}
    r = k8s_releases.release(37)
    assert (r.minimum_control_plane, r.minimum_kubelet) == ("1.36.0", "1.34.0")
    assert all(k8s_releases.release(m).kubeadm_api == "kubeadm.k8s.io/v1beta4" for m in (34, 35, 36, 37))
    with pytest.raises(
        ValueError, match=r"no release facts for Kubernetes 1\.99; known minors: 1\.28, .*1\.37$"
    ):
        k8s_releases.release(99)


def test_cgroup_v1_rule_per_minor() -> None:
    assert not k8s_releases.release(34).fail_cgroup_v1_default
    for m in (35, 36, 37):
        rel = k8s_releases.release(m)
        assert rel.fail_cgroup_v1_default
        assert rel.cgroup_v1_error.startswith("kubelet is configured to not run on a host using cgroup v1.")


def test_cri_losing_support_label_per_minor() -> None:
    """KEP-4033: the kubelet_cri_losing_support version a runtime without RuntimeConfig gets."""
    assert k8s_releases.release(33).cri_losing_support is None
    labels = {m: k8s_releases.release(m).cri_losing_support for m in (34, 35, 36, 37)}
    assert labels == {34: "1.36.0", 35: "1.36.0", 36: "1.37.0", 37: "1.38.0"}
    assert k8s_releases.double_data()["37"]["cri_losing_support"] == "1.38.0"


def test_baked_double_lists_the_same_images(tmp_path: Path) -> None:
    """The written kubeadm double runs with no koral_ansible importable and lists what koral lists."""
    for version in ("1.34.12", "1.35.9", "1.36.5", "1.37.1"):
        kubeadm = write_doubles(tmp_path / version, version)["kubeadm"]
        env = {"PATH": os.environ["PATH"], "KORAL_DOUBLE_STATE": str(tmp_path / "state")}
        proc = subprocess.run(
            [
                sys.executable,
                "-I",
                str(kubeadm),
                "config",
                "images",
                "list",
                "--kubernetes-version",
                f"v{version}",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == kubeadm_images(version)


def test_double_source_bakes_release_facts() -> None:
    text = double_source("1.37.1")
    assert "K8S_RELEASES: dict[str, Any] = {}" not in text
    assert repr(k8s_releases.double_data()) in text


def test_upgrade_only_minor_is_recorded_and_upgraded_but_not_created(monkeypatch: pytest.MonkeyPatch) -> None:
    from koral_ansible.errors import InputError
    from koral_ansible.spec import load_spec, validate_spec

    monkeypatch.setattr(versions, "SUPPORTED_MINORS", ((1, 35), (1, 36), (1, 37)))
    monkeypatch.setattr(versions, "UPGRADE_ONLY_MINORS", ((1, 34),))
    assert validate_spec({"name": "a", "kubernetes_version": "1.34.12"}).kubernetes_version == "1.34.12"
    with pytest.raises(InputError) as exc:
        load_spec(None, {"name": "a", "kubernetes_version": "1.34.12"})
    assert str(exc.value) == (
        "kubernetes_version: Kubernetes 1.34.12 can only be upgraded from, not created; "
        "supported: 1.35.x to 1.37.x (1.34.x clusters can still be upgraded)"
    )
    with pytest.raises(
        ValueError, match=r"supported: 1\.35\.x to 1\.37\.x \(1\.34\.x clusters can still be upgraded\)"
    ):
        versions.check_supported("1.33.9")
    assert str(versions.check_upgrade("1.34.12", "1.35.9")) == "1.35.9"
    assert str(versions.check_upgrade("1.36.5", "1.37.1")) == "1.37.1"
    with pytest.raises(ValueError, match=r"allowed targets are 1\.35\.x \(one minor version at a time\)"):
        versions.check_upgrade("1.34.12", "1.36.5")
    with pytest.raises(ValueError, match=r"can only be upgraded from, not created"):
        versions.check_upgrade("1.34.12", "1.34.13")  # 1.34 is no longer a target
    with pytest.raises(ValueError, match=r"only forward upgrades are allowed"):
        versions.check_upgrade("1.37.1", "1.36.5")


def test_older_recorded_cluster_stays_manageable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster recorded at a minor no longer supported still loads from the state; upgrading it
    is refused naming the minors koral upgrades from."""
    from koral_ansible.spec import restore_spec, validate_spec

    monkeypatch.setattr(versions, "SUPPORTED_MINORS", ((1, 35), (1, 36), (1, 37)))
    monkeypatch.setattr(versions, "UPGRADE_ONLY_MINORS", ((1, 34),))
    old = validate_spec({"name": "a", "kubernetes_version": "1.35.9"}).public_dict()
    old["kubernetes_version"] = "1.31.4"
    assert restore_spec(old, {}).kubernetes_version == "1.31.4"
    with pytest.raises(
        ValueError, match=r"^cannot upgrade from 1\.31\.4: koral upgrades clusters on 1\.34\.x to 1\.37\.x$"
    ):
        versions.check_upgrade("1.31.4", "1.35.9")
    with pytest.raises(ValueError, match=r"unsupported Kubernetes version 1\.20\.0"):
        versions.check_known("1.20.0")
