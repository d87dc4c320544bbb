"""The kubelet double on a cgroup v1 host does what the real kubelet does (KEP-5573): from 1.35 on
it exits unless the KubeletConfiguration says failCgroupV1: false; up to 1.34 it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from koral_ansible import k8s_releases

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import k8s_double as kd

CONFIG = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n"
NO_CRI = "validate service connection"  # the next check after the cgroup one: it got past it


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, v2: bool, extra: str = "") -> str:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG + extra)
    monkeypatch.setattr(kd, "DOUBLE_VERSION", version)
    monkeypatch.setattr(kd, "_cgroup2_unified", lambda: v2)
    with pytest.raises(kd.DoubleError) as exc:
        kd.kubelet_main(
            ["--config", str(cfg), "--container-runtime-endpoint", f"unix://{tmp_path}/none.sock"]
        )
    return str(exc.value)


@pytest.mark.parametrize("version", ["1.35.9", "1.36.5", "1.37.1"])
def test_refuses_cgroup_v1_by_default_from_1_35(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    msg = _run(tmp_path, monkeypatch, version, v2=False)
    assert msg == (
        "failed to validate kubelet configuration, error: kubelet is configured to not run on a host "
        "using cgroup v1. cgroup v1 support is unsupported and will be removed in a future release, "
        "path: &TypeMeta{Kind:,APIVersion:,}"
    )
    assert k8s_releases.release(int(version.split(".")[1])).cgroup_v1_error in msg


@pytest.mark.parametrize("version", ["1.35.9", "1.37.1"])
def test_fail_cgroup_v1_false_opts_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    assert NO_CRI in _run(tmp_path, monkeypatch, version, v2=False, extra="failCgroupV1: false\n")


def test_1_34_starts_on_cgroup_v1_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert NO_CRI in _run(tmp_path, monkeypatch, "1.34.12", v2=False)
    msg = _run(tmp_path, monkeypatch, "1.34.12", v2=False, extra="failCgroupV1: true\n")
    assert msg.endswith(
        "error: kubelet is configured to not run on a host using cgroup v1. cgroup v1 support is in "
        "maintenance mode, path: &TypeMeta{Kind:,APIVersion:,}"
    )


def test_cgroup_v2_host_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert NO_CRI in _run(tmp_path, monkeypatch, "1.37.1", v2=True)


def test_detection_matches_statfs_of_sys_fs_cgroup() -> None:
    """The double's statfs reading agrees with `stat -f` (cgroup2fs on v2, tmpfs on v1)."""
    kind = subprocess.run(
        ["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert kd._cgroup2_unified() is (kind == "cgroup2fs")


@pytest.mark.parametrize(("version", "refused"), [("1.34.12", False), ("1.35.9", True), ("1.37.1", True)])
def test_pod_infra_container_image_flag_removed_in_1_35(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, refused: bool
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    monkeypatch.setattr(kd, "DOUBLE_VERSION", version)
    monkeypatch.setattr(kd, "_cgroup2_unified", lambda: True)
    with pytest.raises(kd.DoubleError) as exc:
        kd.kubelet_main(
            [
                "--config",
                str(cfg),
                "--pod-infra-container-image",
                "registry.k8s.io/pause:3.10",
                "--container-runtime-endpoint",
                f"unix://{tmp_path}/none.sock",
            ]
        )
    msg = str(exc.value)
    if refused:
        assert "unknown flag: --pod-infra-container-image" in msg
    else:
        assert NO_CRI in msg
