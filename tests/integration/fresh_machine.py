"""A "fresh Debian 12 machine" for tests: a pristine debootstrap minbase root (nothing else) run as
a privileged podman container, with what every new machine of this workplace has passed in (its
Debian mirror settings and its pip configuration), and nothing else.

- :func:`pristine_tarball` debootstraps ``--variant=minbase bookworm`` once and caches the tarball
  under ``$KORAL_CACHE/fresh/``, keyed by what makes it (suite, variant, mirror, debootstrap's
  version, :data:`RECIPE`), like the node image.
- :class:`FreshMachine` imports it into koral's podman store, creates a network of its own on a
  free /24 of :data:`POOL` (koral nodes use 10.213/16, the other tests 10.214/16 and 10.215/16,
  the doctor 10.216/16) and runs the container with its podman storage, koral home and cache on
  bind mounts of one work directory (overlay on overlay fails: the nested podman's layers and the
  nodes' containerd state must not sit on the container's overlay root). Its own network namespace
  keeps the nested nodes' networks, nftables tables and haproxy apart from the host's.
  ``close()`` removes the container, the network and the work directory, whatever happened.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Network
from pathlib import Path

from koral_ansible.bundle.debian import MIRROR_ENV, debian_mirror
from koral_ansible.paths import Paths, private_dir
from koral_ansible.providers.local import network
from koral_ansible.providers.local.image import images_dir, tarball_path
from koral_ansible.providers.local.podman import Podman

SUITE = "bookworm"
VARIANT = "minbase"
RECIPE = "1"  # bump when pristine_tarball's recipe changes
IMAGE = "localhost/koral-fresh"
POOL = IPv4Network("10.217.0.0/16")
LABEL = "koral.test=fresh-machine"
GUEST_REPO = "/root/koral-ansible"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
GUEST_CA = "/etc/koral-host-ca.crt"
# PID 1 of the machine: bash reaps orphans (haproxy -D daemonizes: under `sleep` as PID 1 a stopped
# haproxy would stay a zombie); the host has no catatonit for --init.
INIT = 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'
# Set to 1 to build the node image inside too (else the host's tarball of the same recipe is seeded).
BUILD_IMAGE_ENV = "KORAL_FRESH_BUILD_IMAGE"


def log(msg: str) -> None:
    print(f"[fresh-machine {time.strftime('%H:%M:%S')}] {msg}", file=sys.__stderr__, flush=True)


def _mirror() -> str:
    return debian_mirror()


def _debootstrap_version() -> str:
    proc = subprocess.run(["debootstrap", "--version"], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def pristine_key() -> str:
    data = json.dumps(
        {
            "suite": SUITE,
            "variant": VARIANT,
            "mirror": _mirror(),
            "debootstrap": _debootstrap_version(),
            "r": RECIPE,
        },
        sort_keys=True,
    )
    return hashlib.sha256(data.encode()).hexdigest()[:12]


def pristine_tarball(paths: Paths) -> Path:
    """The cached tarball of a pristine ``debootstrap --variant=minbase bookworm`` root."""
    cache = private_dir(paths.cache / "fresh")
    tar = cache / f"debian-{SUITE}-{VARIANT}-{pristine_key()}.tar"
    with (cache / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tar.is_file():
            return tar
        for old in cache.glob(f"debian-{SUITE}-{VARIANT}-*.tar"):
            old.unlink()
        work = Path(tempfile.mkdtemp(prefix="pristine-", dir=cache))
        try:
            t0 = time.monotonic()
            debs = private_dir(images_dir(paths) / "debs")  # downloaded .debs shared with the node image
            subprocess.run(
                [
                    "debootstrap",
                    f"--variant={VARIANT}",
                    f"--cache-dir={debs}",
                    SUITE,
                    str(work / "root"),
                    _mirror(),
                ],
                check=True,
                capture_output=True,
                timeout=1200,
            )
            tmp = tar.with_suffix(".tmp")
            subprocess.run(
                ["tar", "-C", str(work / "root"), "--numeric-owner", "-cf", str(tmp), "."],
                check=True,
                capture_output=True,
            )
            os.replace(tmp, tar)
            log(f"pristine root {tar.name} built in {time.monotonic() - t0:.0f}s")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tar


def _pip_mounts() -> tuple[list[str], dict[str, str]]:
    """This machine's pip configuration (a fresh machine of this workplace has the same): its config
    files, the local directories they name (find-links, file:// indexes), PIP_* variables, and the
    CA bundle pip verifies PyPI with."""
    mounts: list[str] = []
    for conf in (Path("/etc/pip.conf"), Path("/etc/xdg/pip")):
        if conf.exists():
            mounts += ["-v", f"{conf}:{conf}:ro"]
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    values = [ln.split("=", 1)[1].strip("'\"") for ln in proc.stdout.splitlines() if "=" in ln]
    dirs: set[Path] = set()
    for value in [*values, *env.values()]:
        for word in value.split():
            path = Path(word.removeprefix("file://"))
            if path.is_absolute() and path.exists() and (word.startswith("file://") or path.is_dir()):
                # an index's root: file:///opt/pypi/simple -> /opt/pypi
                dirs.add(path.parent if path.name == "simple" else path)
    for d in sorted(dirs):
        mounts += ["-v", f"{d}:{d}:ro"]
    if HOST_CA.is_file():
        mounts += ["-v", f"{HOST_CA}:{GUEST_CA}:ro"]
        env["PIP_CERT"] = GUEST_CA
    return mounts, env


def _apt_mounts() -> list[str]:
    """This machine's Debian mirror settings (sources and apt.conf.d), replacing the pristine ones."""
    etc = Path("/etc/apt")
    sources = etc / "sources.list" if (etc / "sources.list").is_file() else Path("/dev/null")
    mounts = ["-v", f"{sources}:/etc/apt/sources.list:ro"]
    for sub in ("sources.list.d", "apt.conf.d"):
        for f in sorted((etc / sub).glob("*")):
            if f.is_file():
                mounts += ["-v", f"{f}:{f}:ro"]
    return mounts


class FreshMachine:
    """See the module docstring. Use as a context manager."""

    def __init__(self, paths: Paths, repo_commit_of: Path) -> None:
        self.paths = paths
        self.podman = Podman(paths)
        self.source = repo_commit_of
        tag = pristine_key()
        self.image = f"{IMAGE}:{tag}"
        self.name = f"koral-fresh-{os.getpid()}"
        # made by __enter__ (a machine never entered leaves nothing), removed by close()
        self.work = paths.cache / "fresh" / f"run-{os.getpid()}-{secrets.token_hex(4)}"
        self.created: list[str] = []

    def __enter__(self) -> FreshMachine:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _start(self) -> None:
        private_dir(self.work)
        tar = pristine_tarball(self.paths)
        if not self.podman.image_exists(self.image):
            with tar.open("rb") as fh:
                self.podman.run(
                    "import", "--change", 'CMD=["/bin/sleep","infinity"]', "-", self.image, stdin=fh
                )
            self._prune_images()
        sha = subprocess.run(
            ["git", "-C", str(self.source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        clone = self.work / "repo"
        subprocess.run(["git", "clone", "-q", "--no-checkout", str(self.source), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--detach", sha], check=True)
        self.commit = sha
        with network.alloc_lock(self.podman):
            used = network.host_used_networks() + network.koral_used_networks(self.podman)
            subnet = network.allocate_subnet(used, POOL)
            self.podman.run("network", "create", "--subnet", str(subnet), "--label", LABEL, self.name)
            self.created.append("network")
        binds = {"repo": GUEST_REPO, "home": "/root/.local/share/koral", "cache": "/root/.cache/koral"}
        binds["containers"] = "/var/lib/containers"  # podman's default store, should anything use it
        mounts: list[str] = []
        for sub, guest in binds.items():
            (self.work / sub).mkdir(exist_ok=True)
            mounts += ["-v", f"{self.work / sub}:{guest}"]
        self._seed_node_image()
        pip_mounts, pip_env = _pip_mounts()
        env = [a for k, v in pip_env.items() for a in ("-e", f"{k}={v}")]
        if os.environ.get(MIRROR_ENV):
            env += ["-e", f"{MIRROR_ENV}={os.environ[MIRROR_ENV]}"]
        self.podman.run(
            "run", "-d", "--name", self.name, "--hostname", "fresh", "--privileged", "--network", self.name,
            "--label", LABEL, *mounts, *_apt_mounts(), *pip_mounts, *env, self.image, "bash", "-c", INIT,
        )  # fmt: skip
        self.created.append("container")
        log(f"{self.name}: pristine {SUITE} {VARIANT} on {subnet}, repository at {sha[:12]}")

    def _prune_images(self) -> None:
        """Pristine images of other keys (an older debootstrap or mirror); one still in use stays."""
        refs = self.podman.run("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE, check=False).stdout
        for ref in refs.split():
            if ref.startswith(f"{IMAGE}:") and ref != self.image:
                self.podman.run("rmi", ref, check=False)

    def _seed_node_image(self) -> None:
        """The node image tarball of the same recipe, hard-linked from the host's cache when it has
        one (the other tests built it): saves the nested build (~70 s idle, several minutes under
        load). The nested koral still imports it into its own podman store."""
        host_tar = tarball_path(self.paths)
        if os.environ.get(BUILD_IMAGE_ENV) == "1" or not host_tar.is_file():
            log("node image: built inside")
            return
        guest_images = self.work / "cache" / "images"
        guest_images.mkdir(parents=True)
        os.link(host_tar, guest_images / host_tar.name)
        log(f"node image: {host_tar.name} seeded from the host cache ({BUILD_IMAGE_ENV}=1 builds it inside)")

    def sh(self, script: str, timeout: float = 1800.0) -> subprocess.CompletedProcess[str]:
        """Run ``bash -c script`` as root in the repository clone (stdout and stderr together)."""
        cmd = ["podman", "exec", "-w", GUEST_REPO, self.name, "bash", "-c", script]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, env=self.podman.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            out += f"\n(timed out after {timeout:.0f}s)"
        log(f"$ {script[:100]}: exit {proc.returncode} in {time.monotonic() - t0:.0f}s")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, "")

    def close(self) -> None:
        self.podman.run("rm", "-f", "-t", "0", self.name, check=False, timeout=300)
        self.podman.run("network", "rm", "-f", self.name, check=False)
        shutil.rmtree(self.work, ignore_errors=True)
        if self.work.exists():  # a root-owned read-only bit somewhere: one more time with rm
            subprocess.run(["rm", "-rf", str(self.work)], check=False)

    def leftovers(self) -> dict[str, object]:
        """What this test made on the host and may not leave behind."""
        return {
            "container": self.podman.container_state(self.name),
            "network": network.inspect_network(self.podman, self.name) is not None,
            "work": self.work.exists(),
        }
