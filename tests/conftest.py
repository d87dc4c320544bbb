"""Shared, generic fixtures. Keep additions small and generic (several people edit this file)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.paths import Paths


@pytest.fixture
def koral_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    """A fresh KORAL_HOME in tmp; the cache (node images) stays shared so tests reuse a warm image."""
    home = tmp_path / "koral-home"
    monkeypatch.setenv("KORAL_HOME", str(home))
    yield Paths.resolve(home=home)


@pytest.fixture
def require_root_podman() -> None:
    """Skip unless running as root with podman, runc, nft and haproxy installed."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = [t for t in ("podman", "runc", "nft", "haproxy", "debootstrap") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def _tier(item: pytest.Item, parallel: bool) -> int:
    """A plain run goes cheapest first: lint and unit tests, integration tests, then the ones marked
    ``last`` (the fresh-machine test). Under pytest-xdist the longest go first instead, so that the
    workers finish together: the ``last`` ones, the integration tests, and the unit tests fill in."""
    if item.get_closest_marker("last") is not None:
        tier = 2
    else:
        tier = 1 if item.nodeid.startswith("tests/integration/") else 0
    return 2 - tier if parallel else tier


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Orders the tests (:func:`_tier`; otherwise the collected order is kept). In CI the modules of
    tests/ci_budget.py are skipped with its reason."""
    from tests import ci_budget

    parallel = hasattr(config, "workerinput")
    items.sort(key=lambda item: _tier(item, parallel))
    for item in items:
        if ci_budget.deferred(item.nodeid):
            item.add_marker(pytest.mark.skip(reason=ci_budget.REASON))


class ModuleClock:
    """Prints each test module's wall time as it finishes, so that a run cut short still shows where
    its time went (``--durations`` prints only at the end). Under pytest-xdist it runs in the
    controller and follows each worker's modules (``--dist loadfile`` keeps a module on one worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.monotonic()
        self.current: dict[str, tuple[str, float, float]] = {}  # worker -> (module, start, last)

    def _print(self, worker: str, module: str, start: float, last: float) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        reporter.ensure_newline()
        where = f", {worker}" if worker else ""
        total = last - self.started
        reporter.write_line(f"[clock] {module}: {last - start:.0f}s{where} (run so far {total:.0f}s)")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        worker = str(getattr(gateway, "id", ""))
        module, now = report.nodeid.split("::")[0], time.monotonic()
        current = self.current.get(worker)
        if current is not None and current[0] == module:
            self.current[worker] = (module, current[1], now)
            return
        if current is not None:
            self._print(worker, *current)
        self.current[worker] = (module, now - report.duration, now)

    def pytest_sessionfinish(self) -> None:
        for worker, current in self.current.items():
            self._print(worker, *current)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the xdist controller or a plain run, not a worker
        config.pluginmanager.register(ModuleClock(config), "koral-module-clock")
