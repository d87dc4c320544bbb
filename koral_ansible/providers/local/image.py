"""The local node image ("node template"): a Debian rootfs imported into koral's podman.

Built from nothing with debootstrap (no registry is ever contacted), then imported as
``localhost/koral-node:<recipe-hash>``, one image per Debian suite (the spec's ``node_os``,
see :mod:`koral_ansible.node_os`; default :data:`SUITE`). The hash covers the suite's package
list (:func:`packages`), the suite and :data:`RECIPE_VERSION` (bump it whenever
:func:`customize_rootfs` changes). The rootfs
tarball is kept under ``Paths.cache/images`` so another podman store re-imports it in
seconds. A file lock serializes concurrent builds: the second caller waits, then finds the
image ready.

``python -m koral_ansible.providers.local.image`` ensures the image and prints its reference.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from koral_ansible.bundle.debian import debian_mirror
from koral_ansible.errors import OperationError
from koral_ansible.paths import Paths, private_dir
from koral_ansible.providers.local.podman import Podman

RECIPE_VERSION = "5"
SUITE = "bookworm"
IMAGE_NAME = "localhost/koral-node"
DEBOOTSTRAP_TIMEOUT = 1200.0
IMPORT_TIMEOUT = 600.0
LOCK_TIMEOUT = 1800.0
PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "python3",
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "iputils-ping",
    "ca-certificates",
    "sudo",
    # Debian 12's containerd 1.6 + runc: used only by nodes installed without a bundle runtime (and
    # scenarios such as molecule/kubeadm that start it directly); a bundle's containerd 2.x replaces
    # it through the container_runtime role's own unit (docs/bundle.md "On the nodes").
    "containerd",
    "runc",
    "nftables",
    "iptables",
    "conntrack",
    "socat",
    "ethtool",  # with ebtables: host tools kubeadm's preflight warns about when missing
    "ebtables",
    "containernetworking-plugins",  # skopeo's --include fails without it listed
    "etcd-client",
    "etcd-server",
    "kmod",
    "procps",
    "curl",
    "docker-registry",
    "skopeo",
    "xorriso",  # ISO bundles are extracted on nodes without loop devices
)
# Per suite: names in PACKAGES that suite spells differently (None: not installed there), plus
# packages only that suite needs. Read from Debian's archive with apt-cache policy against a
# private sources list (deb.debian.org, 2026-12-01): every name above exists in trixie as is
# (containerd 1.7.24, etcd-server/etcd-client 3.5.16, iproute2 6.15, conntrack 1.4.8), and
# trixie's "Priority: required" set no longer has e2fsprogs (nothing on a node uses it).
SUITE_RENAMES: dict[str, dict[str, str | None]] = {"bookworm": {}, "trixie": {}}
SUITE_EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {"bookworm": (), "trixie": ()}
# Services installed for roles to use where needed; not started on every node by default.
DISABLED_UNITS: tuple[str, ...] = ("etcd.service", "docker-registry.service")
# Units that cannot work in a container (no udev, no hardware clock, no kernel modules).
MASKED_UNITS: tuple[str, ...] = (
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-modules-load.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "systemd-remount-fs.service",
    "getty.target",
)

# Where binaries only the test doubles use live: the filesystems of the container images the
# kubelet double plays (the etcd static pod runs the etcd image's etcd; kubeadm's etcd member
# add/remove runs its etcdctl). Real kubeadm nodes have neither etcd nor etcdctl in PATH, and
# neither have ours: roles must bring their own (the bundle's etcd/etcdctl).
DOUBLE_IMAGES_DIR = "/opt/koral-double-images"
# Installed path (Debian etcd-server / etcd-client) -> path in the double-only tree.
DOUBLE_ONLY_BINARIES: dict[str, str] = {
    "/usr/bin/etcd": f"{DOUBLE_IMAGES_DIR}/etcd/usr/bin/etcd",
    "/usr/bin/etcdctl": f"{DOUBLE_IMAGES_DIR}/etcd/usr/bin/etcdctl",
}
# Debian's etcd.service stays usable (a distribution service holding 2379/2380, which preflight
# stops) with its binary moved.
ETCD_SERVICE_DROPIN = f"""\
[Service]
ExecStart=
ExecStart={DOUBLE_ONLY_BINARIES["/usr/bin/etcd"]} $DAEMON_ARGS
"""

SSHD_CONFIG = """\
# koral node defaults: key-only root login.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""
# Host keys are removed from the image; each node generates its own on first boot.
SSH_HOSTKEYS_DROPIN = """\
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""

Report = Callable[[str], None]


def _noop(_msg: str) -> None:
    return None


def packages(suite: str = SUITE) -> tuple[str, ...]:
    """The ``--include`` list of ``suite``: PACKAGES with its renames, plus its extras."""
    if suite not in SUITE_RENAMES:
        known = ", ".join(SUITE_RENAMES)
        raise OperationError(f"no node image recipe for Debian suite {suite!r} (known: {known})")
    renames = SUITE_RENAMES[suite]
    named = (renames.get(p, p) for p in PACKAGES)
    return (*(p for p in named if p is not None), *SUITE_EXTRA_PACKAGES[suite])


def recipe_hash(suite: str = SUITE) -> str:
    """12 hex digits identifying the recipe (packages, suite, recipe version)."""
    data = json.dumps(
        {
            "version": RECIPE_VERSION,
            "suite": suite,
            "packages": sorted(packages(suite)),
            "disabled": sorted(DISABLED_UNITS),
            "masked": sorted(MASKED_UNITS),
            "sshd": SSHD_CONFIG,
            "hostkeys": SSH_HOSTKEYS_DROPIN,
            "double_only": DOUBLE_ONLY_BINARIES,
            "etcd_dropin": ETCD_SERVICE_DROPIN,
        },
        sort_keys=True,
    )
    return hashlib.sha256(data.encode()).hexdigest()[:12]


def image_ref(suite: str = SUITE) -> str:
    return f"{IMAGE_NAME}:{recipe_hash(suite)}"


def images_dir(paths: Paths) -> Path:
    return paths.cache / "images"


def tarball_path(paths: Paths, suite: str = SUITE) -> Path:
    return images_dir(paths) / f"koral-node-{recipe_hash(suite)}.tar"


def current_recipes() -> set[str]:
    """The recipe hash of every known suite: the images and tarballs worth keeping."""
    return {recipe_hash(s) for s in SUITE_RENAMES}


def ensure_image(paths: Paths, report: Report = _noop, suite: str = SUITE) -> str:
    """Make sure the node image of ``suite`` exists in koral's podman store; return its reference."""
    podman = Podman(paths)
    ref = image_ref(suite)
    if podman.image_exists(ref):
        return ref
    with _build_lock(paths, report):
        if podman.image_exists(ref):  # another process built it while we waited
            return ref
        tar = tarball_path(paths, suite)
        if not tar.is_file():
            build_tarball(paths, report, suite)
        report(f"image: importing {tar.name} as {ref}")
        t0 = time.monotonic()
        with tar.open("rb") as fh:
            podman.run(
                "import",
                "--change",
                'CMD=["/sbin/init"]',
                "--message",
                f"koral node image, recipe {recipe_hash(suite)} ({suite})",
                "-",
                ref,
                stdin=fh,
                timeout=IMPORT_TIMEOUT,
            )
        report(f"image: {ref} ready (import {time.monotonic() - t0:.1f}s)")
        _prune_images(podman)
    return ref


def _prune_images(podman: Podman) -> None:
    """Drop node images of older recipes, keeping every suite's current one (best effort: an image
    still used by a container stays)."""
    keep = {f"{IMAGE_NAME}:{h}" for h in current_recipes()}
    proc = podman.run("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_NAME, check=False)
    for ref in proc.stdout.split():
        if ref not in keep and ref.startswith(f"{IMAGE_NAME}:"):
            podman.run("rmi", ref, check=False)


@contextlib.contextmanager
def _build_lock(paths: Paths, report: Report) -> Iterator[None]:
    path = private_dir(images_dir(paths)) / "build.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    report("image: another process is building the node image; waiting for it")
                    waiting = True
                if time.monotonic() > deadline:
                    raise OperationError(
                        f"timed out after {LOCK_TIMEOUT:.0f}s waiting for the node image build lock {path}"
                    ) from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def build_tarball(paths: Paths, report: Report = _noop, suite: str = SUITE) -> Path:
    """debootstrap + customize + tar; the tarball appears atomically (rename) when complete."""
    work = images_dir(paths) / f"build-{recipe_hash(suite)}"
    rootfs = work / "rootfs"
    _clean_stale(paths, work)
    private_dir(work)
    mirror = debian_mirror()
    t0 = time.monotonic()
    include = packages(suite)
    report(f"image: debootstrap {suite} from {mirror} ({len(include)} packages)")
    # downloaded .debs are kept for the next recipe's build (debootstrap --cache-dir)
    debs = private_dir(images_dir(paths) / "debs").resolve()
    _debootstrap(rootfs, mirror, work / "debootstrap.log", report, debs, suite)
    report(f"image: debootstrap done in {time.monotonic() - t0:.0f}s")
    customize_rootfs(rootfs, suite)
    tar = tarball_path(paths, suite)
    tmp = tar.with_name(f".{tar.name}.tmp{os.getpid()}")
    try:
        subprocess.run(
            [
                "tar",
                "-C",
                str(rootfs),
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "-cf",
                str(tmp),
                ".",
            ],
            check=True,
            capture_output=True,
            timeout=IMPORT_TIMEOUT,
        )
        os.replace(tmp, tar)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        tmp.unlink(missing_ok=True)
        raise OperationError(f"cannot pack the node rootfs into {tar}: {exc}") from None
    _remove_tree(work)
    report(
        f"image: rootfs tarball {tar.name} ({tar.stat().st_size // 2**20} MiB)"
        f" in {time.monotonic() - t0:.0f}s"
    )
    return tar


def _debootstrap(
    rootfs: Path, mirror: str, log: Path, report: Report, debs: Path, suite: str = SUITE
) -> None:
    if shutil.which("debootstrap") is None:
        raise OperationError("debootstrap is not installed (apt-get install debootstrap)")
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--cache-dir={debs}",
        f"--include={','.join(packages(suite))}",
        suite,
        str(rootfs),
        mirror,
    ]
    deadline = time.monotonic() + DEBOOTSTRAP_TIMEOUT
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        (log.parent / "debootstrap.pid").write_text(f"{proc.pid}\n")
        assert proc.stdout is not None
        seen: set[str] = set()
        try:
            for line in proc.stdout:
                out.write(line)
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(cmd, DEBOOTSTRAP_TIMEOUT)
                if line.startswith("I: "):
                    word = line[3:].split(" ", 1)[0]
                    if word not in seen:  # one line per phase, not one per package
                        seen.add(word)
                        report(f"image: debootstrap: {line[3:].strip()[:100]}")
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            _unmount_under(rootfs)
            raise OperationError(
                f"debootstrap did not finish within {DEBOOTSTRAP_TIMEOUT:.0f}s"
                f" (is {mirror} reachable?); log: {log}"
            ) from None
    if rc != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise OperationError(f"debootstrap failed (exit {rc}): {' | '.join(tail)}; log: {log}")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _unmount_under(path: Path) -> None:
    """Unmount everything mounted below ``path`` (debootstrap mounts proc/sys/dev in the target;
    a killed build leaves them behind, and deleting the tree through them would hurt the host)."""
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [ln.split()[4].encode().decode("unicode_escape") for ln in lines if len(ln.split()) > 4]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False, timeout=30)


def _remove_tree(path: Path) -> None:
    if path.exists():
        _unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def _clean_stale(paths: Paths, work: Path) -> None:
    """Leftovers of an interrupted build (we hold the build lock): its debootstrap, mounts, temp files;
    and tarballs of older recipes."""
    pidfile = work / "debootstrap.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        if b"debootstrap" in Path(f"/proc/{pid}/cmdline").read_bytes():
            _kill_group(pid)
            time.sleep(0.5)
    _remove_tree(work)
    current = {f"koral-node-{h}.tar" for h in current_recipes()}
    for old in images_dir(paths).glob("*koral-node-*.tar*"):
        if old.name not in current:
            old.unlink(missing_ok=True)
    for old_work in images_dir(paths).glob("build-*"):
        _remove_tree(old_work)


def customize_rootfs(root: Path, suite: str = SUITE) -> None:
    """Turn a debootstrapped tree into a node template (pure file operations, no chroot)."""
    # apt caches: the nodes run `apt-get update` before installing anything anyway.
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*"):
        for p in root.glob(pattern):
            p.unlink(missing_ok=True)
    # root's SSH directory; authorized_keys is bind-mounted per cluster.
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    _write(root / "etc/ssh/sshd_config.d/10-koral.conf", SSHD_CONFIG)
    for key in (root / "etc/ssh").iterdir():
        if key.name.startswith("ssh_host_"):
            key.unlink()
    _write(root / "etc/systemd/system/ssh.service.d/10-koral-hostkeys.conf", SSH_HOSTKEYS_DROPIN)
    _link(root, "multi-user.target.wants", "ssh.service", "/lib/systemd/system/ssh.service")
    # One machine id per container: systemd fills an empty file at boot.
    _write(root / "etc/machine-id", "")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # (the links point into the rootfs, so they look broken from the host: test with lexists;
    # deb-systemd-helper's state is dropped too, so package upgrades do not re-enable them)
    wants_dirs = [
        *(root / "etc/systemd/system").glob("*.wants"),
        *(root / "var/lib/systemd/deb-systemd-helper-enabled").glob("*.wants"),
    ]
    for wants_dir in wants_dirs:
        for unit in DISABLED_UNITS:
            link = wants_dir / unit
            if os.path.lexists(link):
                link.unlink()
    for unit in MASKED_UNITS:
        target = root / "etc/systemd/system" / unit
        target.unlink(missing_ok=True)
        target.symlink_to("/dev/null")
    for installed, moved in DOUBLE_ONLY_BINARIES.items():
        src, dst = root / installed.lstrip("/"), root / moved.lstrip("/")
        if src.exists() or src.is_symlink():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    _write(root / "etc/systemd/system/etcd.service.d/10-koral-double-images.conf", ETCD_SERVICE_DROPIN)
    _write(root / "etc/koral-node-release", f"KORAL_NODE_RECIPE={recipe_hash(suite)}\nSUITE={suite}\n")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _link(root: Path, wants: str, unit: str, target: str) -> None:
    link = root / "etc/systemd/system" / wants / unit
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target)


def main(argv: list[str] | None = None) -> int:
    """``python -m koral_ansible.providers.local.image [SUITE]`` (default: :data:`SUITE`)."""
    args = sys.argv[1:] if argv is None else argv
    suite = args[0] if args else SUITE
    paths = Paths.resolve()

    def report(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        print(ensure_image(paths, report, suite))
    except OperationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
