"""Serving the console: the --listen address, the hosts it answers to, uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from koral_ansible.errors import InputError

DEFAULT_LISTEN = "127.0.0.1:8088"


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [addr]:PORT) -> (host, port); a bad value is an InputError naming --listen."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(
            "--listen", f"must be HOST:PORT with a port 1..65535, like {DEFAULT_LISTEN} (got {listen!r})"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise InputError("--listen", f"HOST must be an IP address or localhost (got {host!r})") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host headers a browser sends for this address (loopback: also localhost)."""
    shown = f"[{host}]" if ":" in host else host
    hosts = {f"{shown}:{port}"}
    if is_loopback(host):
        hosts |= {f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
    return hosts


def serve(home: Path, token: str, host: str, port: int) -> None:
    import uvicorn

    from koral_ansible.console.app import build_app

    app = build_app(home, token, allowed_hosts(host, port))
    # No access log: URLs carry no secret, but the console keeps its terminal for its own lines.
    # Live pages hold event streams open: on Ctrl-C give them 3 s, then close them (uvicorn would
    # otherwise wait for every open browser tab).
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        timeout_graceful_shutdown=3,
    )
