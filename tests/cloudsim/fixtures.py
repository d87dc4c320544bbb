"""pytest fixtures for the test cloud (import them in a conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cloudsim.server import CloudSim, SimConfig


@pytest.fixture
def cloudsim(monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudSim]:
    """A running test cloud on 127.0.0.1 (fast jobs) with the CLOUDSTACK_* variables pointing at it."""
    sim = CloudSim(SimConfig(job_latency=0.01)).start()
    for key, value in sim.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KORAL_CLOUDSTACK_TEMPLATE", "koral-node-debian12")
    try:
        yield sim
    finally:
        sim.stop()


__all__ = ["cloudsim"]
