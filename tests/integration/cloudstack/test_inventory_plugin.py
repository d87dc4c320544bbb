"""The koral inventory plugin through plain `ansible-inventory --list` from the repository root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from koral_ansible.inventory import record_inventory
from koral_ansible.paths import Paths
from koral_ansible.state import StateStore
from tests.cloudsim import CloudSim
from tests.integration.cloudstack.helpers import harness

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_INVENTORY = Path(sys.executable).with_name("ansible-inventory")


def _list(config: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(config), "--list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def _env(sim: CloudSim, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "CLOUDSTACK_"))}
    env.update(
        sim.client_env(), KORAL_HOME=str(home), PATH=f"{ANSIBLE_INVENTORY.parent}:{env.get('PATH', '')}"
    )
    return env


def _plain(value: Any) -> Any:
    """ansible-core >= 2.19 shows plugin-supplied strings as {"__ansible_unsafe": ...} (never templated)."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    return value


def _flatten(expected: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Groups -> hosts and host -> vars as `ansible-inventory --list` shows them."""
    groups: dict[str, list[str]] = {}
    hostvars: dict[str, dict[str, Any]] = {}
    allvars = expected["all"]["vars"]
    for group, body in expected["all"]["children"].items():
        for host, hv in (body.get("hosts") or {}).items():
            groups.setdefault(group, []).append(host)
            hostvars.setdefault(host, dict(allvars)).update(hv)
    return groups, hostvars


@pytest.mark.parametrize("source", ["state", "cloud"])
def test_ansible_inventory_list(cloudsim: CloudSim, koral_home: Paths, tmp_path: Path, source: str) -> None:
    h = harness(cloudsim, koral_home, control_nodes=3, size=2)
    h.provider.provision(h.spec)
    expected = record_inventory(h.store.get_cluster("demo"), koral_home)
    config = tmp_path / "demo.koral.yml"
    config.write_text(
        f"plugin: koral\ncluster: demo\nsource: {source}\nconnection_vars: false\n"
        "keyed_groups:\n  - key: koral_node_role\n    prefix: role\n"
    )
    home = koral_home.home if source == "state" else tmp_path / "empty-home"
    got = _list(config, _env(cloudsim, home))
    groups, hostvars = _flatten(expected)
    for group in ("kube_control_plane", "etcd", "kube_node"):
        assert got[group]["hosts"] == groups[group], group
    assert sorted(got["k8s_cluster"]["children"]) == ["kube_control_plane", "kube_node"]
    assert got["role_control"]["hosts"] == groups["kube_control_plane"]
    shown = got["_meta"]["hostvars"]
    for host, hv in hostvars.items():
        for var in (
            "ansible_host",
            "ansible_port",
            "ansible_user",
            "koral_node_ip",
            "koral_node_index",
            "koral_node_role",
            "koral_cluster_name",
            "koral_public_ip",
            "koral_control_plane_endpoint",
        ):
            assert _plain(shown[host][var]) == hv[var], (source, host, var)
    assert _plain(shown["demo-node-2"]["ansible_port"]) == 2226
    if source == "state":  # what koral-play passes as extra vars comes with the inventory too
        assert _plain(shown["demo-node-2"]["kubeadm_kubeconfig_dest"]) == str(koral_home.kubeconfig("demo"))
    assert not (tmp_path / "empty-home").exists()  # reading never creates a state store
    StateStore(koral_home).close()


def test_sample_config_and_unknown_cluster(cloudsim: CloudSim, tmp_path: Path) -> None:
    out = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", "inventories/sample.koral.yml", "--list"],
        cwd=ROOT,
        env=_env(cloudsim, tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # No cluster "sample" anywhere: ansible reports the plugin's clear message.
    assert "no VMs tagged koral-cluster=sample" in out.stderr


def test_cache_serves_when_the_cloud_is_gone(koral_home: Paths, tmp_path: Path) -> None:
    from tests.cloudsim import SimConfig

    config = tmp_path / "demo.koral.yml"
    config.write_text(
        "plugin: koral\ncluster: demo\nsource: cloud\ncache: true\ncache_plugin: ansible.builtin.jsonfile\n"
        f"cache_connection: {tmp_path / 'cache'}\ncache_timeout: 3600\n"
    )
    with CloudSim(SimConfig(job_latency=0.01)) as sim:
        h = harness(sim, koral_home, control_nodes=1, size=1)
        h.provider.provision(h.spec)
        env = _env(sim, tmp_path / "none")
        first = _list(config, env)
    assert first["kube_node"]["hosts"] == ["demo-node-1"]
    second = _list(config, env)  # the test cloud is stopped: only the cache can answer
    assert second == first
