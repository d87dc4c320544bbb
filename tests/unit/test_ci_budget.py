"""The CI time budget leaves out only its named modules, only under CI=true, and never with
KORAL_CI_FULL=1."""

from __future__ import annotations

import pytest

from tests import ci_budget


def test_deferred_only_in_ci_and_not_with_full(monkeypatch: pytest.MonkeyPatch) -> None:
    mol = "tests/integration/test_molecule.py::test_scenario[kubeadm]"
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("KORAL_CI_FULL", raising=False)
    assert ci_budget.deferred(mol)
    assert not ci_budget.deferred("tests/integration/test_cluster_local.py::test_create")
    monkeypatch.setenv("KORAL_CI_FULL", "1")
    assert not ci_budget.deferred(mol)
    monkeypatch.delenv("KORAL_CI_FULL")
    monkeypatch.setenv("CI", "")
    assert not ci_budget.deferred(mol)
