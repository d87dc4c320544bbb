"""The node runtime a bundle may carry (containerd + shim + ctr, runc, etcdctl): which files a
``--from`` directory must hold, and the versions the binaries report about themselves.

A binary that cannot run on the build machine (another architecture) reports nothing; its
version is then not recorded (the node's role asks the installed binary anyway).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from koral_ansible.bundle import layout
from koral_ansible.errors import InputError

# bundle path -> (manifest "versions" key, argv after the binary, pattern of the version)
_VERSION_QUERIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    # "containerd github.com/containerd/containerd/v2 2.1.9+unknown" (containerd/containerd cmd/containerd)
    layout.CONTAINERD: ("containerd", ("--version",), r"^containerd \S+ v?(\d+\.\d+\.\d+)"),
    # "runc version 1.1.5+ds1" (opencontainers/runc main.go)
    layout.RUNC: ("runc", ("--version",), r"^runc version v?(\d+\.\d+\.\d+)"),
    # "etcdctl version: 3.5.30" (etcd-io/etcd etcdctl/ctlv3/command/version_command.go)
    layout.ETCDCTL: ("etcdctl", ("version",), r"^etcdctl version: v?(\d+\.\d+\.\d+)"),
}


def binary_version(path: Path, rel: str, timeout: float = 30.0) -> str:
    """The X.Y.Z a runtime binary prints, or '' when it cannot run here."""
    _key, args, pattern = _VERSION_QUERIES[rel]
    try:
        proc = subprocess.run(
            [str(path), *args], capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(pattern, proc.stdout, re.MULTILINE) if proc.returncode == 0 else None
    return m.group(1) if m else ""


def plan_runtime(from_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """(bundle path -> source file, manifest version key -> version) of the runtime in ``from_dir``.

    containerd, containerd-shim-runc-v2, ctr and runc come together or not at all (InputError
    naming the missing ones); etcd/etcdctl is independent.
    """
    found = {
        rel: from_dir / rel
        for rel in (*layout.RUNTIME_BINARIES, layout.ETCDCTL)
        if (from_dir / rel).is_file()
    }
    present = [rel for rel in layout.RUNTIME_BINARIES if rel in found]
    if present and len(present) != len(layout.RUNTIME_BINARIES):
        missing = [rel for rel in layout.RUNTIME_BINARIES if rel not in found]
        raise InputError(
            "--from",
            f"must hold all of {', '.join(layout.RUNTIME_BINARIES)} or none of them "
            f"(missing {', '.join(missing)} in {from_dir})",
        )
    versions = {}
    for rel, path in found.items():
        if rel in _VERSION_QUERIES:
            version = binary_version(path, rel)
            if version:
                versions[_VERSION_QUERIES[rel][0]] = version
    return found, versions
