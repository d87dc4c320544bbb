"""The kubeadm double's SystemVerification preflight on a cgroup v1 host, as the real kubeadm's
cgroups validator (k8s.io/system-validators validators/cgroup_validator_linux.go, v1.12.1 in
kubeadm 1.35+): an error when the installed kubelet is 1.35+, a warning for an older kubelet, and a
warning when the check is ignored (koral's opt-in: ignorePreflightErrors SystemVerification)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.versions import DEFAULT, OTHER_SUPPORTED

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import k8s_double as kd

V1_MOUNTS = "tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0\n" + "".join(
    f"cgroup /sys/fs/cgroup/{c} cgroup rw,nosuid,nodev,noexec,relatime,{c} 0 0\n" for c in ("cpu", "memory")
)
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
HEADER = "[preflight] The system verification failed. Printing the output from the verification:"


def _host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mounts: str | None) -> None:
    root = tmp_path / "rootfs"
    (root / "proc").mkdir(parents=True)
    if mounts is not None:
        (root / "proc" / "mounts").write_text(mounts)
    if mounts == V1_MOUNTS:
        (root / "sys" / "fs" / "cgroup" / "memory").mkdir(parents=True)
    monkeypatch.setattr(kd, "ROOTFS", str(root))


@pytest.mark.parametrize("version", [*OTHER_SUPPORTED, DEFAULT])
def test_cgroup_v1_is_an_error_for_a_1_35_kubelet(
    version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _host(tmp_path, monkeypatch, V1_MOUNTS)
    checks = kd.system_verification_checks(version, version)
    assert capsys.readouterr().out.strip() == HEADER
    with pytest.raises(kd.DoubleError) as exc:
        kd._preflight([], checks)
    assert (
        "\t[ERROR SystemVerification]: cgroups v1 support is deprecated and will be removed in a future "
        "release. Please migrate to cgroups v2. To explicitly enable cgroups v1 support for kubelet v1.35 or "
        "newer, you must set the kubelet configuration option 'FailCgroupV1' to 'false'. You must also "
        "explicitly skip this validation. For more information, see "
        "https://git.k8s.io/enhancements/keps/sig-node/5573-remove-cgroup-v1"
    ) in str(exc.value)
    # koral's opt-in (roles/kubeadm: ignorePreflightErrors [SystemVerification]): a warning, as upstream.
    kd._preflight(["SystemVerification"], checks)
    assert capsys.readouterr().err.startswith(
        "\t[WARNING SystemVerification]: cgroups v1 support is deprecated"
    )


def test_cgroup_v1_is_a_warning_for_an_older_or_unknown_kubelet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _host(tmp_path, monkeypatch, V1_MOUNTS)
    for kubelet in ("1.34.12", ""):
        checks = kd.system_verification_checks("1.35.9", kubelet)
        kd._preflight([], checks)
        out = capsys.readouterr()
        assert HEADER not in out.out
        assert out.err.startswith("\t[WARNING SystemVerification]: cgroups v1 support is deprecated")
    # kubeadm 1.34 (system-validators before v1.12): the maintenance-mode warning.
    kd._preflight([], kd.system_verification_checks("1.34.12", "1.34.12"))
    assert capsys.readouterr().err == (
        "\t[WARNING SystemVerification]: cgroups v1 support is in maintenance mode, "
        "please migrate to cgroups v2\n"
    )


def test_cgroup_v2_passes_and_no_mounts_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _host(tmp_path, monkeypatch, V2_MOUNTS)
    assert kd.system_verification_checks("1.37.1", "1.37.1") == []
    _host(tmp_path / "none", monkeypatch, None)
    ((name, ok, msg, warn),) = kd.system_verification_checks("1.37.1", "1.37.1")
    assert (name, ok, warn) == ("SystemVerification", False, False)
    assert msg.startswith("cannot get a cgroup mount point: open ")


def test_upgrade_passes_the_kubelet_version_with_minor_plus_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kubeadm upgrade apply|node` run SystemVerification alone (RunUpgradeChecks) with the installed
    kubelet's version MINOR+1 (PR #134744): a 1.34 kubelet upgrading to 1.35 already fails on cgroup v1,
    and koral's opt-in (--ignore-preflight-errors=SystemVerification) turns it into a warning."""
    _host(tmp_path, monkeypatch, V1_MOUNTS)
    monkeypatch.setattr(kd, "DOUBLE_VERSION", "1.35.9")
    monkeypatch.setattr(kd, "_installed_kubelet_version", lambda: "1.34.12")
    assert kd.upgrade_kubelet_version("1.34.12") == "1.35.0"
    assert kd.upgrade_kubelet_version("") == ""
    with pytest.raises(kd.DoubleError) as exc:
        kd.run_upgrade_checks([])
    assert "[ERROR SystemVerification]: cgroups v1 support is deprecated" in str(exc.value)
    assert HEADER in capsys.readouterr().out
    kd.run_upgrade_checks(["SystemVerification"])
    warning = "\t[WARNING SystemVerification]: cgroups v1 support is deprecated"
    assert capsys.readouterr().err.startswith(warning)
    # kubeadm 1.34 (validators before v1.12.1): the maintenance warning only.
    monkeypatch.setattr(kd, "DOUBLE_VERSION", "1.34.12")
    monkeypatch.setattr(kd, "_installed_kubelet_version", lambda: "1.33.9")
    kd.run_upgrade_checks([])
    assert "maintenance mode" in capsys.readouterr().err


def test_upgrade_on_cgroup_v2_runs_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _host(tmp_path, monkeypatch, V2_MOUNTS)
    monkeypatch.setattr(kd, "DOUBLE_VERSION", "1.37.1")
    monkeypatch.setattr(kd, "_installed_kubelet_version", lambda: "1.36.5")
    kd.run_upgrade_checks([])
