"""The README's first command on a new Debian 12 machine (issue #12).

A pristine ``debootstrap --variant=minbase bookworm`` root, nothing else, runs as a privileged
podman container (tests/integration/fresh_machine.py says what is passed in and why). In a clone of
the repository's committed HEAD it runs exactly

    ./scripts/setup.sh && .venv/bin/koral-play create demo --size 2

to a Running cluster (``koral-play show demo -o json``), checks ``koral-play doctor`` passes there
and deletes the cluster. Then it removes iptables (the issue's machine): doctor fails naming it and
``create`` refuses with exit 2, the koral home byte-identical. Last, nothing may be left inside
(containers, networks, nft tables, haproxy, state) nor on the host (container, network, work
directory). Runs last (marker ``last``).
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest

from koral_ansible.paths import Paths
from tests.integration.fresh_machine import FreshMachine, log
from tests.unit.test_bad_input_matrix import _snapshot

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.last,
    pytest.mark.usefixtures("require_root_podman"),
]

REPO = Path(__file__).resolve().parents[2]
README_COMMAND = "./scripts/setup.sh && .venv/bin/koral-play create demo --size 2"

LEFTOVERS = """
import json, os, subprocess
from pathlib import Path
from koral_ansible.paths import Paths
from koral_ansible.providers.local.podman import Podman

paths = Paths.resolve()
podman = Podman(paths)

def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""

tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
print(json.dumps({
    "containers": podman.run("ps", "-a", "--format", "{{.Names}}").stdout.split(),
    "networks": [n["name"] for n in podman.networks() if n["name"] != "podman"],
    "nft_tables": [t for t in tables.splitlines() if "koral" in t],
    "haproxy": [p for p in os.listdir("/proc") if p.isdigit() and comm(p) == "haproxy"],
    "clusters": sorted(os.listdir(paths.home / "clusters")) if (paths.home / "clusters").is_dir() else [],
}))
"""


def _ok(proc_out: str, rc: int, what: str) -> None:
    assert rc == 0, f"{what}: exit {rc}\n{proc_out[-6000:]}"


@pytest.mark.timeout(3000)
def test_readme_first_command_on_a_fresh_debian_12() -> None:
    t0 = time.monotonic()
    paths = Paths.resolve()
    with FreshMachine(paths, REPO) as machine:
        started = time.monotonic()
        run = machine.sh(README_COMMAND)
        _ok(run.stdout, run.returncode, README_COMMAND)
        took_readme = time.monotonic() - started

        show = machine.sh(".venv/bin/koral-play show demo -o json 2>/dev/null")
        _ok(show.stdout, show.returncode, "show")
        detail = json.loads(show.stdout)
        assert detail["state"] == "Running", detail
        assert sorted((n["name"], n["state"]) for n in detail["nodes"]) == [
            ("demo-control-1", "Running"),
            ("demo-node-1", "Running"),
            ("demo-node-2", "Running"),
        ]

        doctor = machine.sh(".venv/bin/koral-play doctor --no-cache")
        _ok(doctor.stdout, doctor.returncode, "doctor on the new machine")
        assert "FAIL" not in doctor.stdout

        delete = machine.sh(".venv/bin/koral-play delete demo --yes")
        _ok(delete.stdout, delete.returncode, "delete")
        listed = machine.sh(".venv/bin/koral-play list -o json 2>/dev/null")
        assert json.loads(listed.stdout) == []
        # The machine again: without iptables the doctor names it and create refuses (exit 2)
        # before anything is created or recorded.
        removed = machine.sh("apt-get remove -y -qq iptables >/dev/null 2>&1 && ! command -v iptables")
        _ok(removed.stdout, removed.returncode, "apt-get remove iptables")
        doctor = machine.sh(".venv/bin/koral-play doctor 2>/dev/null")
        assert doctor.returncode == 1, doctor.stdout
        assert "FAIL podman network: netavark cannot run (iptables missing from PATH)" in doctor.stdout
        before = _snapshot(machine.work / "home")
        refused = machine.sh(".venv/bin/koral-play create demo --size 2 2>&1 >/dev/null")
        assert refused.returncode == 2, refused.stdout
        assert refused.stdout.startswith("error: FAIL "), refused.stdout
        assert "apt-get install --no-install-recommends" in refused.stdout and "iptables" in refused.stdout
        assert _snapshot(machine.work / "home") == before

        left = machine.sh(f".venv/bin/python -c {shlex.quote(LEFTOVERS)}")
        _ok(left.stdout, left.returncode, "leftover probe")
        assert json.loads(left.stdout.strip().splitlines()[-1]) == {
            "containers": [],
            "networks": [],
            "nft_tables": [],
            "haproxy": [],
            "clusters": [],
        }
    assert machine.leftovers() == {"container": None, "network": False, "work": False}
    log(f"README command {took_readme:.0f}s; whole test {time.monotonic() - t0:.0f}s")
