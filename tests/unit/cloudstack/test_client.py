"""CloudClient: retries, polling backoff, clear errors without secrets (against the loopback test cloud)."""

from __future__ import annotations

import socket
import time

import pytest

from koral_ansible.errors import OperationError
from koral_ansible.providers.cloudstack.client import ApiCallError, CloudClient, JobsFailed
from koral_ansible.providers.cloudstack.config import CloudConfig
from tests.cloudsim import CloudSim, SimConfig


def _cfg(endpoint: str, **kw: object) -> CloudConfig:
    base = CloudConfig(
        endpoint=endpoint,
        key="koral-test-key",
        secret="koral-test-secret",
        timeout=2,
        poll_interval=0.01,
        poll_max=0.04,
        retries=2,
        retry_delay=0.01,
        job_timeout=5,
    )
    return base.with_(**kw)


def test_connection_refused_is_retried_then_clear() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    delays: list[float] = []
    c = CloudClient(_cfg(f"http://127.0.0.1:{port}/client/api"), sleep=delays.append)
    with pytest.raises(OperationError) as err:
        c.list("listZones")
    msg = str(err.value)
    assert msg.startswith("listZones: cloud API at http://127.0.0.1:") and "connection failed" in msg
    assert "after 3 attempts" in msg and delays == [0.01, 0.02]
    for leak in ("koral-test-secret", "koral-test-key", "signature", "apiKey"):
        assert leak not in msg


def test_api_errors_carry_code_and_text() -> None:
    with CloudSim(SimConfig()) as sim:
        c = CloudClient(_cfg(sim.endpoint))
        with pytest.raises(ApiCallError) as err:
            c.call("deleteNetwork", id="nope")
        assert err.value.errorcode == 431 and err.value.not_found
        bad = CloudClient(_cfg(sim.endpoint, secret="wrong"))
        with pytest.raises(ApiCallError, match="unable to verify user credentials") as err:
            bad.list("listZones")
        assert "wrong" not in str(err.value)


def test_jobs_are_polled_together_with_backoff() -> None:
    with CloudSim(SimConfig(job_latency=0.3)) as sim:
        delays: list[float] = []

        def sleep(d: float) -> None:
            delays.append(d)
            time.sleep(d)

        c = CloudClient(_cfg(sim.endpoint), sleep=sleep)
        zone = c.list("listZones")[0]["id"]
        sim.inject("associateIpAddress", "error", [2], errortext="no capacity")
        jobs = [c.submit("associateIpAddress", f"ip {i}", zoneid=zone) for i in range(3)]
        t0 = time.monotonic()
        with pytest.raises(JobsFailed, match=r"1 cloud job\(s\) failed: ip 1: no capacity"):
            c.wait(jobs, "three IPs")
        assert time.monotonic() - t0 < 0.8  # together, not 3 x 0.3 s
        assert [j.status for j in jobs] == [1, 2, 1]
        assert delays[:4] == pytest.approx([0.01, 0.015, 0.0225, 0.03375])
        assert max(delays) <= 0.04


def test_job_timeout_message() -> None:
    with CloudSim(SimConfig()) as sim:
        sim.inject("associateIpAddress", "timeout")
        c = CloudClient(_cfg(sim.endpoint, job_timeout=0.2))
        zone = c.list("listZones")[0]["id"]
        job = c.submit("associateIpAddress", "the public IP", zoneid=zone)
        with pytest.raises(
            OperationError,
            match=r"timed out after 0.2s waiting for the IP \(1 cloud job\(s\) "
            r"still pending: the public IP\); re-run the command to resume",
        ):
            c.wait([job], "the IP")


def test_max_inflight_jobs_serializes() -> None:
    with CloudSim(SimConfig(job_latency=0.2)) as sim:
        c = CloudClient(_cfg(sim.endpoint, max_inflight_jobs=1))
        zone = c.list("listZones")[0]["id"]
        t0 = time.monotonic()
        jobs = [c.submit("associateIpAddress", f"ip {i}", zoneid=zone) for i in range(3)]
        c.wait(jobs, "IPs")
        assert time.monotonic() - t0 >= 0.6 and all(j.status == 1 for j in jobs)
