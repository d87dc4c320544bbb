"""Fetch real node-runtime binaries (containerd, runc, CNI plugins, etcdctl) from Debian's archive.

apt-get runs with a sources list, a state directory and a cache of koral's own under
``<koral cache>/debian/`` (``koral_ansible.paths``); the machine's apt sources and state are
never read or changed::

    apt-get -o Dir::Etc::SourceList=FILE -o Dir::Etc::SourceParts=EMPTYDIR
            -o Dir::State::Lists=DIR -o Dir::Cache=DIR ... update
    apt-get ... download PKG=VERSION

apt checks each .deb against the signed Release file (``signed-by`` the archive keyring), so
what lands in the cache is Debian's. Each .deb is unpacked once with ``dpkg-deb -x``; a
second call finds everything in the cache and runs no apt-get at all.

The pinned versions are data (:data:`RUNTIME_PINS`), each with the suite it comes from.
``python -m koral_ansible.bundle.debian DIR`` fills a ``bundle build --from`` directory with them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from koral_ansible.bundle import layout
from koral_ansible.errors import OperationError
from koral_ansible.paths import Paths, private_dir

SUITES: tuple[str, ...] = ("bookworm", "trixie", "sid")
MIRROR_ENV = "KORAL_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MACHINE_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_TIMEOUT = 600.0

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class DebPin:
    """One Debian package at one version, and the suite that carries it."""

    package: str
    version: str  # Debian version, e.g. 2.1.9+ds1-5
    suite: str
    note: str = ""

    @property
    def upstream(self) -> str:
        """The upstream version: ``2.1.9+ds1-5`` -> ``2.1.9``."""
        return re.split(r"[~+-]", self.version.split(":", 1)[-1], maxsplit=1)[0]

    def deb_name(self, arch: str) -> str:
        """apt-get download's file name (an epoch's ``:`` becomes ``%3a``)."""
        return f"{self.package}_{self.version.replace(':', '%3a')}_{arch}.deb"


# What `apt-cache madison` lists on Debian's archive (checked 2026-12-01 against a koral state dir).
# runc is bookworm's: sid's 1.3.6+ds1-1 and trixie's 1.1.15+ds1-2+b4 need GLIBC_2.38 and the nodes
# run Debian 12 (glibc 2.36); containerd, the CNI plugins and etcdctl from sid need only GLIBC_2.34.
RUNTIME_PINS: tuple[DebPin, ...] = (
    DebPin("containerd", "2.1.9+ds1-5", "sid"),
    DebPin("runc", "1.1.5+ds1-1+deb12u1", "bookworm", "sid/trixie builds need GLIBC_2.38"),
    DebPin("containernetworking-plugins", "1.9.1+ds1-1", "sid"),
    DebPin("etcd-client", "3.5.30-2", "sid"),
)

# Bundle path -> (package, path inside the package). containerd's own files, runc, etcdctl.
RUNTIME_FILES: dict[str, tuple[str, str]] = {
    layout.CONTAINERD: ("containerd", "usr/bin/containerd"),
    layout.CONTAINERD_SHIM: ("containerd", "usr/bin/containerd-shim-runc-v2"),
    layout.CTR: ("containerd", "usr/bin/ctr"),
    layout.RUNC: ("runc", "usr/sbin/runc"),
    layout.ETCDCTL: ("etcd-client", "usr/bin/etcdctl"),
}
CNI_PACKAGE = ("containernetworking-plugins", "usr/lib/cni")


def debian_mirror(sources: Path = MACHINE_SOURCES) -> str:
    """``KORAL_DEBIAN_MIRROR``, else the first ``URIs:`` of this machine's debian.sources that
    serves the main archive (not -security), else deb.debian.org."""
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV].rstrip("/")
    with contextlib.suppress(OSError):
        for line in sources.read_text().splitlines():
            m = re.match(r"^\s*URIs:\s*(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def sources_list(mirror: str, suites: Sequence[str]) -> str:
    """The one-line-style sources list koral's apt runs use."""
    for suite in suites:
        if suite not in SUITES:
            raise ValueError(f"suite must be one of {', '.join(SUITES)} (got {suite!r})")
    return "".join(f"deb [signed-by={KEYRING}] {mirror} {s} main\n" for s in suites)


class DebianFetcher:
    """apt-get against koral's own sources list and state under ``root`` (``<cache>/debian``)."""

    def __init__(
        self,
        root: Path,
        *,
        mirror: str | None = None,
        suites: Sequence[str] = SUITES,
        arch: str = "amd64",
        apt_get: str = "apt-get",
        apt_cache: str = "apt-cache",
        run: Runner = subprocess.run,
    ) -> None:
        self.mirror = mirror or debian_mirror()
        self.sources = sources_list(self.mirror, suites)
        self.arch = layout.check_arch(arch)
        self.apt_get = apt_get
        self.apt_cache = apt_cache
        self._run = run
        key = hashlib.sha256(f"{self.sources}{arch}".encode()).hexdigest()[:12]
        self.root = root
        self.state = root / "apt" / key
        self.debs = root / "debs"
        self.unpacked = root / "unpacked"
        self._updated = False

    def _options(self) -> list[str]:
        etc = self.state / "etc"
        return [
            "-o", f"Dir::Etc::SourceList={etc / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={etc / 'sources.list.d'}",
            "-o", f"Dir::Etc::Preferences={etc / 'preferences'}",
            "-o", f"Dir::Etc::PreferencesParts={etc / 'preferences.d'}",
            "-o", f"Dir::State::Lists={self.state / 'lists'}",
            "-o", "Dir::State::status=/dev/null",
            "-o", f"Dir::Cache={self.state / 'cache'}",
            "-o", f"APT::Architecture={self.arch}",
            "-o", f"APT::Architectures={self.arch}",
            "-o", "Acquire::Languages=none",
        ]  # fmt: skip

    def _prepare(self) -> None:
        etc = self.state / "etc"
        for d in (etc / "sources.list.d", etc / "preferences.d", self.state / "lists" / "partial",
                  self.state / "cache" / "archives" / "partial"):  # fmt: skip
            d.mkdir(parents=True, exist_ok=True)
        (etc / "sources.list").write_text(self.sources)
        (etc / "preferences").write_text("")

    def _apt(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        cmd = [tool, "-q", *self._options(), *args]
        try:
            proc = self._run(
                cmd, capture_output=True, text=True, check=False, cwd=cwd, timeout=APT_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OperationError(f"{tool} {args[0]} failed: {exc}") from None
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise OperationError(f"{tool} {' '.join(args)} failed (exit {proc.returncode}): {tail}")
        return proc.stdout

    def update(self) -> None:
        """``apt-get update`` of koral's own lists (once per fetcher)."""
        if self._updated:
            return
        self._prepare()
        self._apt(self.apt_get, "update")
        self._updated = True

    def versions(self, package: str) -> list[tuple[str, str]]:
        """``apt-cache madison``: [(version, suite), ...] as the archive lists them today."""
        self.update()
        out = []
        for line in self._apt(self.apt_cache, "madison", package).splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 3 and parts[0] == package:
                suite = parts[2].split()[1].split("/", 1)[0] if len(parts[2].split()) > 1 else ""
                out.append((parts[1], suite))
        return out

    def deb(self, pin: DebPin) -> Path:
        """The cached .deb of ``pin`` (downloaded on first use)."""
        path = self.debs / pin.deb_name(self.arch)
        if path.is_file():
            return path
        self.update()
        private_dir(self.debs)
        self._apt(self.apt_get, "download", f"{pin.package}:{self.arch}={pin.version}", cwd=self.debs)
        if not path.is_file():
            raise OperationError(f"apt-get download {pin.package}={pin.version} wrote no {path.name}")
        return path

    def unpack(self, pin: DebPin) -> Path:
        """``dpkg-deb -x`` of the pin's .deb into a cached directory; return it."""
        dest = self.unpacked / f"{pin.package}_{pin.version}_{self.arch}"
        if dest.is_dir():
            return dest
        deb = self.deb(pin)
        tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        proc = self._run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OperationError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()[-300:]}")
        os.replace(tmp, dest)
        return dest

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One fetch at a time per cache (tests and engineers share it)."""
        private_dir(self.root)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _place(src: Path, dest: Path) -> None:
    """Hard-link a cached file into ``dest`` (copy across file systems). Cached files are made
    read-only first, so nothing written through a link can change the cache."""
    src.chmod(0o555 if src.stat().st_mode & 0o111 else 0o444)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
        dest.chmod(src.stat().st_mode & 0o777)


def _pin(package: str, pins: Sequence[DebPin]) -> DebPin:
    for pin in pins:
        if pin.package == package:
            return pin
    raise ValueError(f"no pin for {package}")


def _cni_tgz(plugins_dir: Path, dest: Path) -> None:
    """A release-style plugins archive (``./bridge``, ``./loopback``, ...), byte-for-byte stable."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for plugin in sorted(p for p in plugins_dir.iterdir() if p.is_file()):
            info = tarfile.TarInfo(f"./{plugin.name}")
            data = plugin.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    import gzip

    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(gzip.compress(buf.getvalue(), mtime=0))


@dataclass(frozen=True)
class RuntimeSources:
    """Where the runtime files were put in a ``--from`` directory, and their upstream versions."""

    from_dir: Path
    cni_version: str
    versions: dict[str, str]  # containerd, runc, etcdctl


def runtime_cache(paths: Paths | None = None) -> Path:
    return (paths or Paths.resolve()).cache / "debian"


def write_runtime_sources(
    from_dir: Path,
    *,
    arch: str = "amd64",
    fetcher: DebianFetcher | None = None,
    pins: Sequence[DebPin] = RUNTIME_PINS,
) -> RuntimeSources:
    """Put containerd (+ shim, ctr), runc, etcdctl and ``cni/cni-plugins-<arch>.tgz`` into
    ``from_dir`` in the bundle's layout, from the cached Debian packages (fetched on first use)."""
    fetch = fetcher or DebianFetcher(runtime_cache(), arch=arch)
    with fetch.locked():
        trees = {p.package: fetch.unpack(p) for p in pins}
        cni_cached = fetch.root / "cni" / f"cni-plugins-{arch}-{_pin(CNI_PACKAGE[0], pins).version}.tgz"
        if not cni_cached.is_file():
            _cni_tgz(trees[CNI_PACKAGE[0]] / CNI_PACKAGE[1], cni_cached)
    for rel, (package, inner) in RUNTIME_FILES.items():
        src = trees[package] / inner
        if not src.is_file():
            raise OperationError(f"{package} {_pin(package, pins).version} has no {inner}")
        _place(src, from_dir / rel)
    _place(cni_cached, from_dir / layout.cni_path(arch))
    return RuntimeSources(
        from_dir=from_dir,
        cni_version=_pin(CNI_PACKAGE[0], pins).upstream,
        versions={
            "containerd": _pin("containerd", pins).upstream,
            "runc": _pin("runc", pins).upstream,
            "etcdctl": _pin("etcd-client", pins).upstream,
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m koral_ansible.bundle.debian FROM_DIR", file=sys.stderr)
        return 2
    try:
        made = write_runtime_sources(Path(args[0]))
    except OperationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{made.from_dir}: containerd, runc, etcdctl, CNI plugins {made.cni_version} ({made.versions})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
