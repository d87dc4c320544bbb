"""A network namespace playing a host outside the cloud, for the local-nodes integration tests.

One veth to this host (``PREFIX.1`` on the host side), two source addresses inside
(``allowed`` = ``PREFIX.10``, ``denied`` = ``PREFIX.20``), a default route back through the
host. Tests send traffic from it only to the clusters they create. Use :func:`outside_netns`
in a fixture (``prefix`` names the namespace and its veth, so leftovers say which test made them)::

    @pytest.fixture(scope="module")
    def outside() -> Iterator[Outside]:
        with outside_netns("klb") as ns:
            yield ns
"""

from __future__ import annotations

import fcntl
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# TCP connect from a source address: OPEN, or FAILED and the error's type.
CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))\n"
    "try:\n"
    "    s.connect((sys.argv[2], int(sys.argv[3]))); print('OPEN')\n"
    "except OSError as e:\n"
    "    print('FAILED', type(e).__name__)\n"
)

# TCP connect from a source address and print what the server says first (a banner), or FAILED.
READ = (
    "import socket, sys\n"
    "s = socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))\n"
    "try:\n"
    "    s.connect((sys.argv[2], int(sys.argv[3]))); print(s.recv(64).decode(errors='replace').strip())\n"
    "except OSError as e:\n"
    "    print('FAILED', type(e).__name__)\n"
)

# HTTP GET from a source address: the body, or FAILED.
FETCH = (
    "import socket, sys\n"
    "s = socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))\n"
    "try:\n"
    "    s.connect((sys.argv[2], int(sys.argv[3]))); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
    "    data = b''\n"
    "    while chunk := s.recv(4096): data += chunk\n"
    "    print(data.split(b'\\r\\n\\r\\n', 1)[-1].decode().strip())\n"
    "except OSError as e:\n"
    "    print('FAILED', type(e).__name__)\n"
)

# One UDP datagram from a source address: the answer, or FAILED.
ASK_UDP = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); s.bind((sys.argv[1], 0))\n"
    "try:\n"
    "    s.sendto(b'who', (sys.argv[2], int(sys.argv[3]))); print(s.recv(512).decode())\n"
    "except OSError as e:\n"
    "    print('FAILED', type(e).__name__)\n"
)


@dataclass(frozen=True)
class Outside:
    """The namespace and its two source addresses."""

    netns: str
    allowed: str
    denied: str

    def _run(self, script: str, source: str, host: str, port: int) -> str:
        proc = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", "python3", "-c", script, source, host, str(port)],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
        return proc.stdout.strip()

    def connect(self, source: str, host: str, port: int) -> str:
        return self._run(CONNECT, source, host, port)

    def read(self, source: str, host: str, port: int) -> str:
        return self._run(READ, source, host, port)

    def fetch(self, source: str, host: str, port: int) -> str:
        return self._run(FETCH, source, host, port)

    def ask_udp(self, source: str, host: str, port: int) -> str:
        return self._run(ASK_UDP, source, host, port)


def _free_test_subnet() -> str:
    routes = ["ip", "-4", "route", "show", "table", "all"]
    used = subprocess.run(routes, capture_output=True, text=True).stdout
    used += subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    for third in range(150, 250):
        if f"10.214.{third}." not in used:
            return f"10.214.{third}"
    pytest.skip("no free 10.214.x.0/24 for the outside namespace")


# Held from choosing a free /24 until its host address exists, so that test modules running at once
# (pytest-xdist workers) never choose the same one.
ALLOC_LOCK = Path("/run/lock/koral-tests-outside-netns.lock")


@contextmanager
def _alloc_lock() -> Iterator[None]:
    ALLOC_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with ALLOC_LOCK.open("a") as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def outside_netns(prefix: str) -> Iterator[Outside]:
    """Create the namespace (named ``PREFIX-<hex>``), yield it, remove it and its veth."""
    tag = secrets.token_hex(3)
    netns, host_if = f"{prefix}-{tag}", f"{prefix}v{tag}"
    try:
        with _alloc_lock():
            subnet = _free_test_subnet()
            for step in (
                ["ip", "netns", "add", netns],
                ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns],
                ["ip", "addr", "add", f"{subnet}.1/24", "dev", host_if],
            ):
                subprocess.run(step, check=True, capture_output=True)
        yield _configure(netns, host_if, subnet)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


def _configure(netns: str, host_if: str, subnet: str) -> Outside:
    steps = [
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", netns, "link", "set", "lo", "up"],
        ["ip", "-n", netns, "addr", "add", f"{subnet}.10/24", "dev", "eth0"],
        ["ip", "-n", netns, "addr", "add", f"{subnet}.20/24", "dev", "eth0"],
        ["ip", "-n", netns, "link", "set", "eth0", "up"],
        ["ip", "-n", netns, "route", "add", "default", "via", f"{subnet}.1"],
    ]
    for step in steps:
        subprocess.run(step, check=True, capture_output=True)
    return Outside(netns, f"{subnet}.10", f"{subnet}.20")
