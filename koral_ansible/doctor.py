"""``koral-play doctor``: is this host ready for the local provider?

Each check returns a :class:`Check` (name, status, detail, fix). ``create`` on the local provider
runs :func:`preflight` first and refuses (exit 2, the failing line) before anything is created.

Everything the checks touch goes through a :class:`Host` (PATH, commands, files, disk), so tests
inject fakes (a PATH without iptables, no root, a full disk). The Debian package list is read
from ``koral_ansible/data/host-packages.txt``, the file ``scripts/setup.sh`` installs from.

The podman network check is end to end: a throwaway network on a free /24 of :data:`DOCTOR_POOL`
and a container from a tiny locally built busybox image really run on it, then both are removed.
A pass is remembered for :data:`NETWORK_STAMP_TTL` seconds (keyed by the binaries involved), so
``create`` pays for it once; the cheap checks run every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from importlib import resources
from ipaddress import IPv4Network
from pathlib import Path

from koral_ansible.errors import KoralError, OperationError
from koral_ansible.paths import Paths, private_dir

PACKAGES_FILE = "host-packages.txt"
DOCTOR_POOL = IPv4Network("10.216.0.0/16")  # throwaway networks; koral nodes use 10.213.0.0/16
DOCTOR_IMAGE = "localhost/koral-doctor:busybox"
NETWORK_STAMP_TTL = 6 * 3600.0
MIN_FREE_CACHE = 4 * 2**30  # node image tarball + podman store + bundles
MIN_FREE_HOME = 512 * 2**20  # node state of a small cluster (containerd, etcd), run artifacts
CGROUP_CONTROLLERS = ("cpu", "memory", "pids")  # limits; without them nodes run unlimited
TOOLS = ("podman", "runc", "nft", "haproxy", "ip", "debootstrap", "iptables", "ssh")
TOOL_PACKAGES = (
    "podman",
    "runc",
    "nftables",
    "haproxy",
    "iproute2",
    "debootstrap",
    "iptables",
    "openssh-client",
)
BUSYBOX = Path("/bin/busybox")


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAIL

    def line(self) -> str:
        fix = f" — fix: {self.fix}" if self.fix and self.status is not Status.PASS else ""
        return f"{self.status.value} {self.name}: {self.detail}{fix}"

    def to_dict(self) -> dict[str, str]:
        data = asdict(self)
        data["status"] = self.status.value
        return data


class HostNotReady(KoralError):
    """The host lacks something the local provider needs (exit 2: nothing was created)."""

    exit_code = 2


@dataclass(frozen=True)
class Package:
    name: str
    need: str  # "local" (the local provider) or "tools" (setup, tests, bundle/registry commands)
    why: str


def host_packages() -> list[Package]:
    """The Debian packages of ``koral_ansible/data/host-packages.txt`` (shared with setup.sh)."""
    text = resources.files("koral_ansible").joinpath("data", PACKAGES_FILE).read_text()
    out = []
    for raw in text.splitlines():
        parts = raw.split("#", 1)[0].split(None, 2)
        if parts:
            out.append(Package(parts[0], parts[1] if len(parts) > 1 else "local", " ".join(parts[2:])))
    return out


@dataclass
class Host:
    """The host as the checks see it; every probe is overridable for tests."""

    path: str = field(default_factory=lambda: os.environ.get("PATH", os.defpath))
    proc_root: Path = Path("/proc")
    cgroup_root: Path = Path("/sys/fs/cgroup")

    def euid(self) -> int:
        return os.geteuid()

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.path)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": self.path}

    def run(
        self, cmd: Sequence[str], timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                list(cmd),
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
                env={**self.env(), **(env or {})},
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            return subprocess.CompletedProcess(list(cmd), 127, "", f"{cmd[0]}: command not found")
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(list(cmd), 124, "", f"{cmd[0]} timed out after {timeout:.0f}s")

    def installed(self, packages: Sequence[str]) -> set[str]:
        """The subset of ``packages`` dpkg reports installed."""
        proc = self.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *packages])
        return {ln.split()[0] for ln in proc.stdout.splitlines() if ln.endswith("install ok installed")}

    def read(self, path: Path) -> str:
        return path.read_text()

    def writable(self, path: Path) -> bool:
        return os.access(path, os.W_OK)

    def free_bytes(self, path: Path) -> int:
        while not path.exists() and path != path.parent:
            path = path.parent
        return shutil.disk_usage(path).free


def _fix_install(names: Sequence[str]) -> str:
    return f"apt-get install --no-install-recommends {' '.join(names)} (or ./scripts/setup.sh)"


# ---- the checks -----------------------------------------------------------------------------
def check_root(host: Host) -> Check:
    if host.euid() == 0:
        return Check("root", Status.PASS, "running as root")
    return Check(
        "root",
        Status.FAIL,
        f"running as uid {host.euid()}; local nodes are rootful podman containers, nftables and haproxy",
        "run koral-play as root (sudo -i)",
    )


def check_packages(host: Host) -> Check:
    pkgs = host_packages()
    have = host.installed([p.name for p in pkgs])
    local = [p.name for p in pkgs if p.need == "local" and p.name not in have]
    tools = [p.name for p in pkgs if p.need != "local" and p.name not in have]
    if local:
        why = "; ".join(f"{p.name}: {p.why}" for p in pkgs if p.name in local)
        return Check(
            "debian packages", Status.FAIL, f"missing {' '.join(local)} ({why})", _fix_install(local + tools)
        )
    if tools:
        return Check(
            "debian packages",
            Status.WARN,
            f"the local provider's packages are installed; missing tools packages {' '.join(tools)}",
            _fix_install(tools),
        )
    return Check("debian packages", Status.PASS, f"all {len(pkgs)} packages of {PACKAGES_FILE} installed")


def check_tools(host: Host) -> Check:
    missing = [t for t in TOOLS if host.which(t) is None]
    if missing:
        return Check(
            "tools on PATH",
            Status.FAIL,
            f"{', '.join(missing)} not found on PATH={host.path}",
            f"fix PATH, or {_fix_install(TOOL_PACKAGES)}",
        )
    return Check("tools on PATH", Status.PASS, ", ".join(TOOLS))


def check_nftables(host: Host) -> Check:
    """``nft -c``: the kernel checks a table of koral's form without anything being committed."""
    if host.which("nft") is None:
        return Check("nftables", Status.FAIL, "nft is not installed", _fix_install(["nftables"]))
    script = (
        "add table ip koral_doctor\n"
        "add chain ip koral_doctor pre { type nat hook prerouting priority dstnat; }\n"
        "add rule ip koral_doctor pre tcp dport 2222 dnat to 10.216.0.2:22\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as fh:
        fh.write(script)
        fh.flush()
        proc = host.run(["nft", "-c", "-f", fh.name], timeout=20)
    if proc.returncode != 0:
        return Check(
            "nftables",
            Status.FAIL,
            f"the kernel refused a nat table: {_last(proc.stderr)}",
            "run as root on a kernel with nf_tables and nft_nat (a privileged container needs --privileged)",
        )
    return Check("nftables", Status.PASS, "nat table with DNAT accepted (nft -c)")


def check_haproxy(host: Host) -> Check:
    proc = host.run(["haproxy", "-v"], timeout=20)
    if proc.returncode != 0:
        return Check(
            "haproxy", Status.FAIL, f"haproxy -v failed: {_last(proc.stderr)}", _fix_install(["haproxy"])
        )
    return Check("haproxy", Status.PASS, _first(proc.stdout))


def check_ip_forward(host: Host) -> Check:
    path = host.proc_root / "sys/net/ipv4/ip_forward"
    try:
        value = host.read(path).strip()
    except OSError as exc:
        return Check("ip_forward", Status.FAIL, f"cannot read {path}: {exc.strerror}", "mount /proc")
    if value == "1":
        return Check("ip_forward", Status.PASS, "net.ipv4.ip_forward=1")
    if host.writable(path):
        return Check(
            "ip_forward",
            Status.PASS,
            f"net.ipv4.ip_forward={value}; koral sets it to 1 itself when it creates a cluster's firewall",
        )
    return Check(
        "ip_forward",
        Status.FAIL,
        f"net.ipv4.ip_forward={value} and {path} is not writable (koral sets it to 1 itself when it can)",
        "sysctl -w net.ipv4.ip_forward=1 (as root, or --privileged for a container)",
    )


def check_cgroups(host: Host) -> Check:
    root = host.cgroup_root
    v2 = root / "cgroup.controllers"
    try:
        if v2.exists():
            version = "v2"
            controllers = host.read(v2).split()
        else:
            version = "v1"
            mounts = host.read(host.proc_root / "self/mounts").splitlines()
            controllers = sorted(
                {opt for ln in mounts if ln.split()[2:3] == ["cgroup"] for opt in ln.split()[3].split(",")}
                & {"cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "hugetlb"}
            )
            if not controllers:
                return Check(
                    "cgroups",
                    Status.FAIL,
                    f"no cgroup v1 or v2 hierarchy under {root}",
                    "mount cgroups (a container needs --privileged or --systemd=always)",
                )
    except OSError as exc:
        return Check("cgroups", Status.FAIL, f"cannot read cgroups: {exc.strerror}", "mount /sys/fs/cgroup")
    detail = f"{version}, controllers {' '.join(controllers)}"
    lacking = [c for c in CGROUP_CONTROLLERS if c not in controllers]
    if lacking:
        return Check(
            "cgroups",
            Status.WARN,
            f"{detail}; no {' '.join(lacking)}: node cpu/memory limits are not applied (node data notes it)",
            "enable those controllers (cgroup_enable=… on the kernel command line)",
        )
    return Check("cgroups", Status.PASS, detail)


def check_disk(host: Host, paths: Paths) -> Check:
    short = []
    for label, path, need in (("cache", paths.cache, MIN_FREE_CACHE), ("home", paths.home, MIN_FREE_HOME)):
        free = host.free_bytes(path)
        if free < need:
            short.append(f"{label} {path} has {free / 2**30:.1f} GiB free (needs {need / 2**30:.1f})")
    if short:
        return Check(
            "disk",
            Status.FAIL,
            "; ".join(short),
            "free disk there, or point KORAL_CACHE / KORAL_HOME elsewhere",
        )
    cache, home = (host.free_bytes(p) / 2**30 for p in (paths.cache, paths.home))
    return Check("disk", Status.PASS, f"cache {cache:.1f} GiB free, home {home:.1f} GiB free")


# ---- podman network, end to end ---------------------------------------------------------------
def _stamp_path(paths: Paths) -> Path:
    return paths.cache / "doctor" / "podman-network.json"


def _stamp_key(host: Host) -> str:
    """What the network check's result depends on: the binaries it ran (path, size, mtime)."""
    parts = []
    for tool in ("podman", "iptables", "runc"):
        found = host.which(tool)
        st = os.stat(found) if found else None
        parts.append(f"{tool}={found}:{st.st_size if st else 0}:{st.st_mtime_ns if st else 0}")
    for lib in ("/usr/lib/podman/netavark", "/usr/libexec/podman/netavark"):
        with contextlib.suppress(OSError):
            st = os.stat(lib)
            parts.append(f"{lib}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def check_podman_network(host: Host, paths: Paths, use_stamp: bool = True) -> Check:
    name = "podman network"
    if host.which("podman") is None:
        return Check(
            name, Status.FAIL, "podman is not installed", _fix_install(["podman", "runc", "netavark"])
        )
    if host.which("iptables") is None:
        return Check(
            name,
            Status.FAIL,
            "netavark cannot run (iptables missing from PATH): `podman run --network` fails with "
            "'netavark: No such file or directory'",
            _fix_install(["iptables"]),
        )
    key = _stamp_key(host)
    stamp = _stamp_path(paths)
    if use_stamp:
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(stamp.read_text())
            if data["key"] == key and time.time() - float(data["time"]) < NETWORK_STAMP_TTL:
                return Check(
                    name, Status.PASS, f"{data['detail']} (cached, {time.time() - data['time']:.0f}s ago)"
                )
    t0 = time.monotonic()
    try:
        problem = _network_round_trip(host, paths)
    except OperationError as exc:
        problem = exc.message
    if problem:
        stamp.unlink(missing_ok=True)
        fix = _fix_install(["iptables"]) if "No such file" in problem else "see podman's message above"
        return Check(name, Status.FAIL, f"a container cannot run on a podman network: {problem}", fix)
    detail = f"netavark network + container ran ({time.monotonic() - t0:.1f}s)"
    private_dir(stamp.parent)
    stamp.write_text(json.dumps({"key": key, "time": time.time(), "detail": detail}))
    return Check(name, Status.PASS, detail)


def _network_round_trip(host: Host, paths: Paths) -> str:
    """Create a network, run busybox on it, remove both; '' on success, else podman's last line."""
    from koral_ansible.providers.local import network
    from koral_ansible.providers.local.podman import Podman, podman_env

    podman_cfg = podman_env(paths)

    def podman(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return host.run(["podman", *args], timeout=timeout, env=podman_cfg)

    if podman("image", "exists", DOCTOR_IMAGE).returncode != 0:
        proc = _import_busybox(podman)
        if proc.returncode != 0:
            return f"cannot build the test image from {BUSYBOX}: {_last(proc.stderr)}"
    _remove_stale(podman)
    net = f"koral-doctor-{os.getpid()}"
    ctr = f"koral-doctor-{os.getpid()}"
    store = Podman(paths)
    try:
        with network.alloc_lock(store):
            used = network.host_used_networks() + network.koral_used_networks(store)
            subnet = network.allocate_subnet(used, DOCTOR_POOL)
            proc = podman(
                "network",
                "create",
                "--subnet",
                str(subnet),
                "--disable-dns",
                "--label",
                "koral.doctor=1",
                net,
            )
            if proc.returncode != 0:
                return f"podman network create: {_last(proc.stderr)}"
        proc = podman(
            "run", "--rm", "--name", ctr, "--network", net, DOCTOR_IMAGE, "/bin/busybox", "true", timeout=120
        )
        if proc.returncode != 0:
            return _last(proc.stderr)
        return ""
    finally:
        podman("rm", "-f", "-t", "0", ctr)
        podman("network", "rm", "-f", net)


def _remove_stale(podman: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """Throwaway containers and networks of doctor runs that were killed (their pid is gone)."""
    for list_args, rm_args in (
        (["ps", "-a", "--format", "{{.Names}}"], ["rm", "-f", "-t", "0"]),
        (["network", "ls", "--format", "{{.Name}}"], ["network", "rm", "-f"]),
    ):
        for name in podman(*list_args).stdout.split():
            pid = name.removeprefix("koral-doctor-")
            if pid != name and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                podman(*rm_args, name)


def _import_busybox(
    podman: Callable[..., subprocess.CompletedProcess[str]],
) -> subprocess.CompletedProcess[str]:
    if not BUSYBOX.is_file():
        return subprocess.CompletedProcess([], 1, "", f"{BUSYBOX} missing (apt-get install busybox-static)")
    with tempfile.TemporaryDirectory(prefix="koral-doctor-") as tmp:
        tar = Path(tmp) / "busybox.tar"
        with tarfile.open(tar, "w") as tf:
            tf.add(BUSYBOX, arcname="bin/busybox")
        return podman(
            "import", "--change", 'CMD=["/bin/busybox","true"]', str(tar), DOCTOR_IMAGE, timeout=120
        )


# ---- running them -----------------------------------------------------------------------------
def run_checks(paths: Paths, host: Host | None = None, use_stamp: bool = True) -> list[Check]:
    """Every check, in order (the network check is skipped when the tools it needs are missing)."""
    host = host or Host()
    checks = [
        check_root(host),
        check_packages(host),
        check_tools(host),
        check_cgroups(host),
        check_ip_forward(host),
        check_nftables(host),
        check_haproxy(host),
        check_disk(host, paths),
    ]
    if checks[0].ok:
        checks.append(check_podman_network(host, paths, use_stamp=use_stamp))
    else:
        checks.append(Check("podman network", Status.FAIL, "not checked: needs root", checks[0].fix))
    return checks


def preflight(paths: Paths, host: Host | None = None) -> list[Check]:
    """What ``create`` on the local provider runs first: raise :class:`HostNotReady` on a failure."""
    checks = run_checks(paths, host)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise HostNotReady(
            failed[0].line()
            + (f" (and {len(failed) - 1} more: koral-play doctor)" if len(failed) > 1 else "")
        )
    return checks


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _first(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0][:120] if lines else ""
