"""koral-play doctor: each check failing on an injected host (PATH without iptables, no root, a full
disk, ...), the shared package list, the CLI's lines and exit codes, and create refusing with exit 2
before anything is recorded."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from koral_ansible import doctor
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.doctor import Host, Status
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState
from tests.unit.test_bad_input_matrix import _snapshot

REPO = Path(__file__).resolve().parents[2]


def _path_without(tmp: Path, *missing: str) -> str:
    """A PATH directory holding every tool the checks look for but ``missing`` (symlinks)."""
    bindir = tmp / ("bin-" + "-".join(missing) if missing else "bin")
    bindir.mkdir(parents=True, exist_ok=True)
    for tool in (*doctor.TOOLS, "dpkg-query"):
        found = Host().which(tool)
        if tool not in missing and found and not (bindir / tool).exists():
            (bindir / tool).symlink_to(found)
    return str(bindir)


class FakeHost(Host):
    """A host whose probes are all answered from fields (nothing runs)."""

    def __init__(self, tmp: Path, **kw: object) -> None:
        super().__init__(path=str(kw.pop("path", _path_without(tmp))), proc_root=tmp / "proc")
        self.cgroup_root = tmp / "cgroup"
        self.uid = int(kw.pop("uid", 0))  # type: ignore[call-overload]
        self.missing_pkgs = set(kw.pop("missing_pkgs", ()))  # type: ignore[call-overload]
        self.free = int(kw.pop("free", 100 * 2**30))  # type: ignore[call-overload]
        self.rc = dict(kw.pop("rc", {}))  # type: ignore[call-overload]
        self.forward_writable = bool(kw.pop("forward_writable", True))
        self.calls: list[list[str]] = []
        (tmp / "proc/sys/net/ipv4").mkdir(parents=True, exist_ok=True)
        (tmp / "proc/sys/net/ipv4/ip_forward").write_text(str(kw.pop("ip_forward", "0")) + "\n")
        (tmp / "proc/self").mkdir(parents=True, exist_ok=True)
        (tmp / "proc/self/mounts").write_text(str(kw.pop("mounts", "")))
        self.cgroup_root.mkdir(exist_ok=True)
        v2 = kw.pop("cgroup_v2", "cpu memory pids io")
        if v2 is not None:
            (self.cgroup_root / "cgroup.controllers").write_text(f"{v2}\n")
        assert not kw, kw

    def euid(self) -> int:
        return self.uid

    def installed(self, packages: Sequence[str]) -> set[str]:
        return set(packages) - self.missing_pkgs

    def free_bytes(self, path: Path) -> int:
        return self.free

    def writable(self, path: Path) -> bool:
        return self.forward_writable

    def run(
        self, cmd: Sequence[str], timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(cmd))
        rc = self.rc.get(cmd[0], 0)
        if self.which(cmd[0]) is None:
            return subprocess.CompletedProcess(list(cmd), 127, "", f"{cmd[0]}: command not found")
        return subprocess.CompletedProcess(
            list(cmd), rc, f"{cmd[0]} 1.0\n", "" if rc == 0 else "Error: refused"
        )


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.resolve(home=tmp_path / "home", cache=tmp_path / "cache")


def test_package_list_is_the_one_setup_sh_installs() -> None:
    """setup.sh installs koral_ansible/data/host-packages.txt (no list of its own) with install-debs.sh."""
    setup = (REPO / "scripts/setup.sh").read_text()
    assert "./scripts/install-debs.sh koral_ansible/data/host-packages.txt" in setup.splitlines()
    installer = (REPO / "scripts/install-debs.sh").read_text()
    line = next(ln for ln in installer.splitlines() if ln.startswith("mapfile -t DEBS"))
    proc = subprocess.run(
        ["bash", "-c", f'list=koral_ansible/data/host-packages.txt\n{line}\necho "${{DEBS[@]}}"'],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.split() == [p.name for p in doctor.host_packages()]
    assert {"iptables", "netavark", "podman", "nftables", "haproxy"} <= {
        p.name for p in doctor.host_packages() if p.need == "local"
    }


def test_root_fails_for_a_user(tmp_path: Path) -> None:
    check = doctor.check_root(FakeHost(tmp_path, uid=1000))
    assert check.status is Status.FAIL
    assert check.line().startswith("FAIL root: running as uid 1000")
    assert "fix: run koral-play as root" in check.line()


def test_packages_fail_naming_the_missing_local_one(tmp_path: Path) -> None:
    check = doctor.check_packages(FakeHost(tmp_path, missing_pkgs={"iptables"}))
    assert check.status is Status.FAIL
    assert "missing iptables (iptables: netavark runs iptables" in check.detail
    assert check.fix.startswith("apt-get install --no-install-recommends iptables")


def test_packages_only_warn_for_a_missing_tools_package(tmp_path: Path) -> None:
    check = doctor.check_packages(FakeHost(tmp_path, missing_pkgs={"gcc"}))
    assert check.status is Status.WARN and check.ok
    assert "gcc" in check.line()


def test_tools_fail_on_a_path_without_iptables(tmp_path: Path) -> None:
    check = doctor.check_tools(FakeHost(tmp_path, path=_path_without(tmp_path, "iptables")))
    assert check.status is Status.FAIL
    assert check.detail.startswith("iptables not found on PATH=")


def test_podman_network_fails_on_a_path_without_iptables(tmp_path: Path, paths: Paths) -> None:
    """The issue's failure, told before podman ever runs: netavark needs iptables."""
    host = FakeHost(tmp_path, path=_path_without(tmp_path, "iptables"))
    check = doctor.check_podman_network(host, paths)
    assert check.line() == (
        "FAIL podman network: netavark cannot run (iptables missing from PATH): `podman run --network`"
        " fails with 'netavark: No such file or directory'"
        " — fix: apt-get install --no-install-recommends iptables (or ./scripts/setup.sh)"
    )
    assert host.calls == []


def test_podman_network_fails_without_podman(tmp_path: Path, paths: Paths) -> None:
    check = doctor.check_podman_network(FakeHost(tmp_path, path=_path_without(tmp_path, "podman")), paths)
    assert check.status is Status.FAIL and "podman is not installed" in check.detail


def test_podman_network_pass_is_remembered(tmp_path: Path, paths: Paths) -> None:
    """A recent pass with the same binaries is not re-run; another binary (key) runs it again."""
    host = FakeHost(tmp_path)
    stamp = doctor._stamp_path(paths)
    stamp.parent.mkdir(parents=True)
    stamp.write_text(json.dumps({"key": doctor._stamp_key(host), "time": 1e18, "detail": "ran"}))
    assert doctor.check_podman_network(host, paths).detail.startswith("ran (cached")
    assert host.calls == []
    stamp.write_text(json.dumps({"key": "other", "time": 1e18, "detail": "ran"}))
    host.rc = {"podman": 1}
    check = doctor.check_podman_network(host, paths)
    assert check.status is Status.FAIL and host.calls
    assert not stamp.exists()  # a failure forgets the last pass


def test_nftables_fails_when_the_kernel_refuses(tmp_path: Path) -> None:
    check = doctor.check_nftables(FakeHost(tmp_path, rc={"nft": 1}))
    assert check.status is Status.FAIL and "the kernel refused a nat table: Error: refused" in check.detail


def test_haproxy_fails_when_missing(tmp_path: Path) -> None:
    check = doctor.check_haproxy(FakeHost(tmp_path, path=_path_without(tmp_path, "haproxy")))
    assert check.status is Status.FAIL
    assert check.fix.startswith("apt-get install --no-install-recommends haproxy")


def test_ip_forward_zero_passes_because_koral_sets_it(tmp_path: Path) -> None:
    check = doctor.check_ip_forward(FakeHost(tmp_path, ip_forward="0"))
    assert check.status is Status.PASS and "koral sets it to 1 itself" in check.detail


def test_ip_forward_zero_and_read_only_fails(tmp_path: Path) -> None:
    check = doctor.check_ip_forward(FakeHost(tmp_path, ip_forward="0", forward_writable=False))
    assert check.status is Status.FAIL and "sysctl -w net.ipv4.ip_forward=1" in check.fix


def test_cgroups_v2_v1_and_missing(tmp_path: Path) -> None:
    assert doctor.check_cgroups(FakeHost(tmp_path / "a")).detail == "v2, controllers cpu memory pids io"
    warn = doctor.check_cgroups(FakeHost(tmp_path / "b", cgroup_v2="cpuset io"))
    assert warn.status is Status.WARN and "no cpu memory pids" in warn.detail
    v1 = "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
    v1_check = doctor.check_cgroups(FakeHost(tmp_path / "c", cgroup_v2=None, mounts=v1))
    assert v1_check.detail.startswith("v1, controllers cpu memory")
    none = doctor.check_cgroups(FakeHost(tmp_path / "d", cgroup_v2=None, mounts="proc /proc proc rw 0 0\n"))
    assert none.status is Status.FAIL


def test_disk_fails_when_full(tmp_path: Path, paths: Paths) -> None:
    check = doctor.check_disk(FakeHost(tmp_path, free=100 * 2**20), paths)
    assert check.status is Status.FAIL and "has 0.1 GiB free (needs 4.0)" in check.detail


def test_preflight_raises_exit_2_with_the_first_failing_line(tmp_path: Path, paths: Paths) -> None:
    host = FakeHost(tmp_path, path=_path_without(tmp_path, "iptables"), missing_pkgs={"iptables"})
    with pytest.raises(doctor.HostNotReady) as exc:
        doctor.preflight(paths, host)
    assert exc.value.exit_code == 2
    assert exc.value.message.startswith("FAIL debian packages: missing iptables")
    assert exc.value.message.endswith("(and 2 more: koral-play doctor)")


def _fake_host_class(tmp_path: Path, **kw: object) -> type[Host]:
    class Injected(FakeHost):
        def __init__(self) -> None:
            super().__init__(tmp_path, **kw)

    return Injected


def test_cli_prints_one_line_per_check_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KORAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KORAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(doctor, "Host", _fake_host_class(tmp_path, path=_path_without(tmp_path, "iptables")))
    assert run_cli(root, ["doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines].count("FAIL") == 2, lines
    assert any(ln.startswith("FAIL podman network: netavark cannot run") for ln in lines)
    assert run_cli(root, ["doctor", "-o", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {d["name"] for d in data} >= {"root", "debian packages", "podman network", "cgroups", "disk"}
    assert not (tmp_path / "home").exists()  # doctor records nothing


def test_cli_exits_0_when_every_check_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KORAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(doctor, "Host", _fake_host_class(tmp_path))
    monkeypatch.setattr(doctor, "_network_round_trip", lambda _h, _p: "")
    assert run_cli(root, ["doctor", "-o", "yaml"]) == 0
    assert "status: FAIL" not in capsys.readouterr().out


def test_create_refuses_with_exit_2_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("KORAL_HOME", str(home))  # the shared cache: validate() asks its podman store
    env = Env.open(str(home), quiet=True)
    env.store.add_cluster(validate_spec({"name": "demo", "size": 2}), ClusterState.RUNNING)
    env.store.close()
    create = importlib.import_module("koral_ansible.operations.create")
    monkeypatch.setattr(create, "resolve_spec_bundle", lambda *_a, **_k: None)  # no bundle needed here

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("create started with a host that is not ready")

    monkeypatch.setattr(create, "OperationFrame", never)
    monkeypatch.setattr(doctor, "Host", _fake_host_class(tmp_path, path=_path_without(tmp_path, "iptables")))
    before = _snapshot(home)
    assert run_cli(root, ["create", "other", "--size", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "error: FAIL tools on PATH: iptables not found on PATH="
        + _path_without(tmp_path, "iptables")
        + " — fix: fix PATH, or apt-get install --no-install-recommends podman runc nftables haproxy iproute2"
        " debootstrap iptables openssh-client (or ./scripts/setup.sh) (and 1 more: koral-play doctor)"
    ]
    assert _snapshot(home) == before
    assert not os.path.exists(Paths.resolve(home=home).cluster_dir("other"))


def test_stale_throwaways_of_killed_doctor_runs_are_removed() -> None:
    calls: list[tuple[str, ...]] = []
    alive = f"koral-doctor-{os.getpid()}"

    def podman(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        listing = "koral-doctor-999999999\n" + alive + "\nkoral-demo\nkoral-doctor-x\n"
        return subprocess.CompletedProcess(list(args), 0, listing if "--format" in args else "", "")

    doctor._remove_stale(podman)
    removed = [c for c in calls if "--format" not in c]
    assert removed == [
        ("rm", "-f", "-t", "0", "koral-doctor-999999999"),
        ("network", "rm", "-f", "koral-doctor-999999999"),
    ]
