"""The health probe of externalTrafficPolicy: Local Services against a server answering as
kube-proxy's per-Service health server does (pkg/proxy/healthcheck/service_health.go
``hcHandler.ServeHTTP``: 200 with ``localEndpoints`` > 0, else 503, on any path), on loopback."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from koral_ansible.loadbalancer import health

LOOPBACK = IPv4Address("127.0.0.1")


class KubeProxyHealth(http.server.BaseHTTPRequestHandler):
    endpoints = 1
    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        count = type(self).endpoints
        body = json.dumps(
            {
                "service": {"namespace": "default", "name": "edge"},
                "localEndpoints": count,
                "serviceProxyHealthy": True,
            },
            indent="\t",
        ).encode()
        self.send_response(200 if count else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Load-Balancing-Endpoint-Weight", str(count))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KubeProxyHealth)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_200_is_an_endpoint_503_none_refused_none(server: int) -> None:
    KubeProxyHealth.endpoints, KubeProxyHealth.paths = 2, []
    assert health.probe((LOOPBACK, server))
    KubeProxyHealth.endpoints = 0
    assert not health.probe((LOOPBACK, server))
    assert KubeProxyHealth.paths == [health.PATH, health.PATH]
    assert not health.probe((LOOPBACK, _closed_port()))


def test_a_silent_node_counts_as_none_within_the_timeout() -> None:
    with socket.socket() as s:  # accepts (backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        started = time.monotonic()
        assert not health.probe((LOOPBACK, s.getsockname()[1]), timeout=0.3)
        assert time.monotonic() - started < 2


def test_probe_all_asks_each_target_once_and_at_once(server: int) -> None:
    KubeProxyHealth.endpoints, KubeProxyHealth.paths = 1, []
    closed = _closed_port()
    got = health.probe_all([(LOOPBACK, server), (LOOPBACK, closed), (LOOPBACK, server)])
    assert got == {(LOOPBACK, server): True, (LOOPBACK, closed): False}
    assert len(KubeProxyHealth.paths) == 1
    assert health.probe_all([]) == {}
