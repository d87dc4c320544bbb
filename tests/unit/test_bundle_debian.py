"""koral_ansible.bundle.debian against a fake apt-get/apt-cache (the network is not the point here):
koral's own sources list and state, never the machine's; download once, unpack with dpkg-deb,
cache; errors name the command. The real archive is exercised by every bundle fixture."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from koral_ansible.bundle import debian
from koral_ansible.bundle.debian import DebianFetcher, DebPin, sources_list, write_runtime_sources
from koral_ansible.errors import OperationError

PINS = (
    DebPin("containerd", "2.1.9+ds1-5", "sid"),
    DebPin("runc", "1:1.1.5+ds1-1", "bookworm"),
    DebPin("containernetworking-plugins", "1.9.1+ds1-1", "sid"),
    DebPin("etcd-client", "3.5.30-2", "sid"),
)
FILES = {
    "containerd": ["usr/bin/containerd", "usr/bin/containerd-shim-runc-v2", "usr/bin/ctr"],
    "runc": ["usr/sbin/runc"],
    "containernetworking-plugins": [
        f"usr/lib/cni/{n}" for n in ("bridge", "host-local", "loopback", "portmap")
    ],
    "etcd-client": ["usr/bin/etcdctl"],
}

# What apt-get does with `download PKG:ARCH=VERSION`: writes PKG_VERSION_ARCH.deb (epoch ':' as %3a)
# into the working directory; an unknown version exits 100 with "E: Version '...' for '...' was not found".
FAKE_APT = """#!/usr/bin/env python3
import json, os, shutil, sys
log = os.environ["FAKE_APT_LOG"]
with open(log, "a") as fh:
    call = {"tool": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "cwd": os.getcwd()}
    fh.write(json.dumps(call) + "\\n")
args = [a for i, a in enumerate(sys.argv[1:]) if a != "-q" and sys.argv[i] != "-o" and a != "-o"]
if args[0] == "update":
    sys.exit(0)
if args[0] == "madison":
    print(f" {args[1]} | 9.9-1 | http://mirror.test/debian sid/main amd64 Packages")
    print(f" {args[1]} | 9.8-1 | http://mirror.test/debian bookworm/main amd64 Packages")
    sys.exit(0)
if args[0] == "download":
    spec = args[1]
    name, version = spec.split("=", 1)
    pkg, arch = name.split(":", 1)
    src = os.path.join(os.environ["FAKE_APT_REPO"], f"{pkg}_{version.replace(':', '%3a')}_{arch}.deb")
    if not os.path.exists(src):
        print(f"E: Version '{version}' for '{pkg}' was not found", file=sys.stderr)
        sys.exit(100)
    shutil.copy(src, os.path.basename(src))
    sys.exit(0)
sys.exit(64)
"""


def _deb(repo: Path, pin: DebPin) -> None:
    """A real .deb (dpkg-deb --build) holding small executables at the package's paths."""
    tree = repo / f"tree-{pin.package}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {pin.package}\nVersion: {pin.version}\nArchitecture: amd64\n"
        "Maintainer: test <t@example.invalid>\nDescription: fixture\n"
    )
    for rel in FILES[pin.package]:
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\necho {Path(rel).name} {pin.upstream}\n")
        path.chmod(0o755)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(repo / pin.deb_name("amd64"))],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[DebianFetcher, Path]:
    repo = tmp_path / "repo"
    repo.mkdir()
    for pin in PINS:
        _deb(repo, pin)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("apt-get", "apt-cache"):
        (bindir / tool).write_text(FAKE_APT)
        (bindir / tool).chmod(0o755)
    log = tmp_path / "apt.log"
    monkeypatch.setenv("FAKE_APT_LOG", str(log))
    monkeypatch.setenv("FAKE_APT_REPO", str(repo))
    fetcher = DebianFetcher(
        tmp_path / "cache" / "debian",
        mirror="http://mirror.test/debian",
        apt_get=str(bindir / "apt-get"),
        apt_cache=str(bindir / "apt-cache"),
    )
    return fetcher, log


def _calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_fetch_uses_its_own_apt_state_then_the_cache(
    fake: tuple[DebianFetcher, Path], tmp_path: Path
) -> None:
    fetcher, log = fake
    made = write_runtime_sources(tmp_path / "from", fetcher=fetcher, pins=PINS)
    calls = _calls(log)
    assert calls[0]["argv"][-1] == "update"  # type: ignore[index]
    downloads = [c for c in calls if "download" in c["argv"]]  # type: ignore[operator]
    assert sorted(c["argv"][-1] for c in downloads) == sorted(  # type: ignore[index]
        f"{p.package}:amd64={p.version}" for p in PINS
    )
    for call in calls:
        argv = " ".join(call["argv"])  # type: ignore[arg-type]
        assert "/etc/apt" not in argv  # never the machine's sources, preferences or state
        assert f"Dir::Etc::SourceList={fetcher.state}/etc/sources.list" in argv
        assert f"Dir::State::Lists={fetcher.state}/lists" in argv
        assert f"Dir::Etc::SourceParts={fetcher.state}/etc/sources.list.d" in argv
        assert f"Dir::Cache={fetcher.state}/cache" in argv
    sources = (fetcher.state / "etc" / "sources.list").read_text()
    assert sources == sources_list("http://mirror.test/debian", ("bookworm", "trixie", "sid"))
    assert (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.test/debian sid main"
        in sources
    )
    # unpacked with dpkg-deb -x and laid out like the bundle
    for rel in ("containerd/containerd", "containerd/containerd-shim-runc-v2", "containerd/ctr", "runc/runc"):
        assert (made.from_dir / rel).stat().st_mode & 0o111
    assert (
        "etcdctl 3.5.30"
        in subprocess.run([made.from_dir / "etcd/etcdctl"], capture_output=True, text=True).stdout
    )
    assert made.versions == {"containerd": "2.1.9", "runc": "1.1.5", "etcdctl": "3.5.30"}
    assert made.cni_version == "1.9.1"
    with tarfile.open(made.from_dir / "cni/cni-plugins-amd64.tgz") as tgz:
        assert tgz.getnames() == ["./bridge", "./host-local", "./loopback", "./portmap"]
    # a second fetch (new fetcher, same cache) runs no apt at all and gives the same bytes
    again = DebianFetcher(
        fetcher.root, mirror=fetcher.mirror, apt_get="/nonexistent", apt_cache="/nonexistent"
    )
    second = write_runtime_sources(tmp_path / "from2", fetcher=again, pins=PINS)
    assert len(_calls(log)) == len(calls)
    assert (second.from_dir / "cni/cni-plugins-amd64.tgz").read_bytes() == (
        made.from_dir / "cni/cni-plugins-amd64.tgz"
    ).read_bytes()


def test_cached_files_are_read_only(fake: tuple[DebianFetcher, Path], tmp_path: Path) -> None:
    """The source dir hard-links the cache: its files carry no write bit, so a test writing into a
    source binary fails (for non-root) instead of changing the cache for everyone."""
    fetcher, _log = fake
    made = write_runtime_sources(tmp_path / "from", fetcher=fetcher, pins=PINS)
    for rel in ("runc/runc", "containerd/containerd", "cni/cni-plugins-amd64.tgz"):
        assert (made.from_dir / rel).stat().st_mode & 0o222 == 0


def test_madison_lists_versions_and_suites(fake: tuple[DebianFetcher, Path]) -> None:
    fetcher, log = fake
    assert fetcher.versions("containerd") == [("9.9-1", "sid"), ("9.8-1", "bookworm")]
    assert _calls(log)[-1]["tool"] == "apt-cache"


def test_missing_version_fails_naming_the_package(fake: tuple[DebianFetcher, Path]) -> None:
    fetcher, _log = fake
    with pytest.raises(
        OperationError, match=r"download containerd:amd64=0\.0-1 failed \(exit 100\): E: Version '0\.0-1'"
    ):
        fetcher.deb(DebPin("containerd", "0.0-1", "sid"))


def test_pins_and_names() -> None:
    pin = DebPin("runc", "1:1.1.5+ds1-1+deb12u1", "bookworm")
    assert pin.upstream == "1.1.5"
    assert pin.deb_name("amd64") == "runc_1%3a1.1.5+ds1-1+deb12u1_amd64.deb"
    assert {p.package: p.upstream for p in debian.RUNTIME_PINS} == {
        "containerd": "2.1.9",
        "runc": "1.1.5",
        "containernetworking-plugins": "1.9.1",
        "etcd-client": "3.5.30",
    }
    assert all(p.suite in debian.SUITES for p in debian.RUNTIME_PINS)
    with pytest.raises(ValueError, match="suite must be one of bookworm, trixie, sid"):
        sources_list("http://m", ("buster",))


def test_mirror_comes_from_the_machine_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://security.example.test/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example.test/debian/\nSuites: bookworm\n"
    )
    monkeypatch.delenv(debian.MIRROR_ENV, raising=False)
    assert debian.debian_mirror(sources) == "http://mirror.example.test/debian"
    assert debian.debian_mirror(tmp_path / "missing") == debian.DEFAULT_MIRROR
    monkeypatch.setenv(debian.MIRROR_ENV, "http://override.test/debian")
    assert debian.debian_mirror(sources) == "http://override.test/debian"
