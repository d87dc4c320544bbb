"""The API load balancer of a cluster: one haproxy daemon on the host.

TCP mode, round robin over every control node's :6443, health-checked every second
(a dead backend is out within ~1 s). Config and pid file live in ``Paths.local_dir``.
The frontend binds ``public_ip:6443`` with ``transparent`` so haproxy also starts while the
cluster bridge (and so the address) is down. :func:`render` is pure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from koral_ansible.errors import OperationError

CONFIG_NAME = "haproxy.cfg"
PID_NAME = "haproxy.pid"


@dataclass(frozen=True)
class Backend:
    name: str
    ip: IPv4Address
    port: int = 6443


def render(cluster: str, public_ip: IPv4Address, backends: Sequence[Backend], api_port: int = 6443) -> str:
    """haproxy.cfg for the cluster's API endpoint (pure)."""
    ident = cluster.replace("-", "_")
    lines = [
        f"# koral-ansible: API load balancer of cluster {cluster} (generated, do not edit)",
        "global",
        "  maxconn 4000",
        "",
        "defaults",
        "  mode tcp",
        "  timeout connect 5s",
        "  timeout client 1h",
        "  timeout server 1h",
        "  timeout check 2s",
        "",
        f"frontend koral_{ident}_api",
        f"  bind {public_ip}:{api_port} transparent",
        f"  default_backend koral_{ident}_control_plane",
        "",
        f"backend koral_{ident}_control_plane",
        "  balance roundrobin",
        "  option tcp-check",
        "  default-server inter 1s fall 2 rise 2",
        *(
            f"  server {b.name} {b.ip}:{b.port} check inter 1s"
            for b in sorted(backends, key=lambda b: b.name)
        ),
    ]
    return "\n".join(lines) + "\n"


def _pid_of(pidfile: Path, config: Path) -> int | None:
    """The haproxy pid in ``pidfile`` if that process is still haproxy running ``config``."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _is_ours(pid, config) else None


def _is_ours(pid: int, config: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"haproxy") and str(config).encode() in argv


def find_processes(config: Path) -> list[int]:
    """Every haproxy process started with ``config`` (even if its pid file is gone)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_ours(int(entry.name), config):
            out.append(int(entry.name))
    return out


def running(directory: Path) -> bool:
    return _pid_of(directory / PID_NAME, directory / CONFIG_NAME) is not None


def _check(config: Path) -> None:
    proc = subprocess.run(
        ["haproxy", "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise OperationError(f"haproxy rejected {config}: {proc.stderr.strip()[-300:]}")


def ensure(directory: Path, text: str, restart: bool = False) -> bool:
    """Write the config and make haproxy run it: start, reload on change, or restart. True if changed."""
    config, pidfile = directory / CONFIG_NAME, directory / PID_NAME
    directory.mkdir(parents=True, exist_ok=True)
    old = config.read_text() if config.is_file() else None
    pid = _pid_of(pidfile, config)
    if old == text and pid is not None and not restart:
        return False
    tmp = config.with_name(f".{CONFIG_NAME}.tmp")
    tmp.write_text(text)
    try:
        _check(tmp)
    except OperationError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, config)
    if restart and pid is not None:
        stop(directory)
        pid = None
    cmd = ["haproxy", "-D", "-p", str(pidfile), "-f", str(config)]
    if pid is not None:
        cmd += ["-sf", str(pid)]  # soft reload: the old process finishes its connections
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise OperationError(f"haproxy failed to start: {proc.stderr.strip()[-300:]}")
    return True


def stop(directory: Path, timeout: float = 5.0) -> None:
    """Stop every haproxy process of this config; idempotent."""
    config = directory / CONFIG_NAME
    pids = set(find_processes(config))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if _is_ours(p, config)}
        if pids:
            time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    (directory / PID_NAME).unlink(missing_ok=True)


def backends(nodes: Iterable[tuple[str, IPv4Address]]) -> list[Backend]:
    return [Backend(name, ip) for name, ip in nodes]
