"""Which nodes have a ready endpoint of an ``externalTrafficPolicy: Local`` Service.

For such a Service the API server allocates ``spec.healthCheckNodePort``, and kube-proxy on each
node answers HTTP there: 200 while the node has a local endpoint, 503 while it has none
(kubernetes/kubernetes ``pkg/proxy/healthcheck/service_health.go``, ``hcHandler.ServeHTTP``: any
path, a JSON body with ``localEndpoints``). A cloud load balancer probes that port and sends only
to the nodes answering 200, since kube-proxy drops Local traffic on a node without an endpoint
(cloud-provider-kind probes it from its envoy the same way). Anything but a 200 within the
timeout (refused, timed out, another status) counts as no endpoint.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address

PATH = "/healthz"
TIMEOUT = 1.0  # seconds per probe; all of a pass's probes run at once
Target = tuple[IPv4Address, int]  # (node InternalIP, healthCheckNodePort)
Prober = Callable[[Iterable[Target]], dict[Target, bool]]


def probe(target: Target, timeout: float = TIMEOUT) -> bool:
    ip, port = target
    conn = http.client.HTTPConnection(str(ip), port, timeout=timeout)
    try:
        conn.request("GET", PATH, headers={"User-Agent": "koral-loadbalancer"})
        resp = conn.getresponse()
        resp.read(4096)
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def probe_all(targets: Iterable[Target]) -> dict[Target, bool]:
    """Each distinct target probed once, all at the same time."""
    unique = sorted(set(targets))
    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(unique))) as pool:
        return dict(zip(unique, pool.map(probe, unique), strict=True))
