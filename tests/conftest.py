"""Shared, generic fixtures. Keep additions small and generic (several people edit this file)."""

from __future__ import annotations

import os
import shutil
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` (the fresh-machine test) run after all others; the order is otherwise kept.
    In CI the modules of tests/ci_budget.py are skipped with its reason."""
    from tests import ci_budget

    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
    for item in items:
        if ci_budget.deferred(item.nodeid):
            item.add_marker(pytest.mark.skip(reason=ci_budget.REASON))
