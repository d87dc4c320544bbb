"""Molecule scenarios of the node roles (molecule/<role>/): converge, idempotence, verify.

Each scenario starts its own privileged systemd containers from koral's node image on its own
podman network (10.214.N.0/24) and removes them afterwards. Needs root, podman, runc and
debootstrap (the node image is built once and cached), and busybox-static for the test image
the container_runtime scenario pushes to its registry.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration.molecule_host import SCENARIOS, molecule_env, run_molecule

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.skip("needs root (rootful podman with privileged systemd containers)")
    missing = [t for t in ("podman", "runc", "debootstrap") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    return molecule_env()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario: str, env: dict[str, str]) -> None:
    if scenario == "container_runtime" and not Path("/bin/busybox").is_file():
        pytest.skip("needs busybox-static on the host for the test image (apt-get install busybox-static)")
    proc, seconds = run_molecule(scenario, "test", env=env)
    print(f"molecule test -s {scenario}: {seconds:.0f} s")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"molecule test -s {scenario} failed:\n{output[-8000:]}"
    if scenario != "etcd_backup":  # a backup always writes a new snapshot: no idempotence step
        assert "idempotence] Executed: Successful" in output
    assert "verify] Executed: Successful" in output
