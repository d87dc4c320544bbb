"""cgroup v1 opt-in: the spec field and CLI flag, local nodes on a cgroup v1 host opting in by
themselves (recorded in the spec, shown, a warning event), the variables koral passes, and the
kubeadm template writing failCgroupV1: false only then."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from koral_ansible import cgroup, inventory
from koral_ansible.providers.base import Endpoint
from koral_ansible.spec import load_spec, validate_spec
from tests.unit.test_doubles import _render, _validate
from tests.versions import DEFAULT

# koral_ansible.operations exports the create() function under the module's name.
create_op = importlib.import_module("koral_ansible.operations.create")
ENDPOINT = Endpoint(public_ip="192.0.2.10", api_port=6443)


def test_spec_field_defaults_off_and_takes_a_bool() -> None:
    assert validate_spec({"name": "a"}).allow_cgroup_v1 is False
    assert validate_spec({"name": "a", "allow_cgroup_v1": True}).allow_cgroup_v1 is True
    assert load_spec(None, {"name": "a", "allow_cgroup_v1": True}).public_dict()["allow_cgroup_v1"] is True


@pytest.mark.parametrize(
    ("provider", "host", "expected"),
    [
        ("local", 1, True),
        ("local", 2, False),
        ("cloudstack", 1, False),
    ],
)
def test_local_nodes_opt_in_on_a_cgroup_v1_host(
    monkeypatch: pytest.MonkeyPatch, provider: str, host: int, expected: bool
) -> None:
    monkeypatch.setattr(create_op, "cgroup_version", lambda: host)
    data: dict[str, Any] = {"name": "a", "provider": provider}
    if provider == "cloudstack":
        data.update(zone="z", compute_offering="o", template="t")
    assert create_op._cgroup_v1_opt_in(validate_spec(data)).allow_cgroup_v1 is expected


def test_host_detection_reads_statfs() -> None:
    import subprocess

    kind = subprocess.run(
        ["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True
    ).stdout.strip()
    assert cgroup.cgroup_version() == (2 if kind == "cgroup2fs" else 1)
    assert cgroup.cgroup_version("/nonexistent") == 1


def test_inventory_passes_the_opt_in_and_release_facts() -> None:
    spec = validate_spec({"name": "a", "allow_cgroup_v1": True})
    v = inventory.cluster_vars(spec, ENDPOINT)
    assert v["koral_allow_cgroup_v1"] is True
    assert v["koral_kubeadm_api_version"] == "kubeadm.k8s.io/v1beta4"
    assert inventory.release_vars("1.37.1") == {
        "koral_kubeadm_api_version": "kubeadm.k8s.io/v1beta4",
        "koral_kubelet_fails_cgroup_v1": True,
        "koral_containerd_minimum": "2.0.0",
    }
    assert inventory.release_vars("1.34.12")["koral_kubelet_fails_cgroup_v1"] is False
    assert inventory.release_vars("1.35.9")["koral_containerd_minimum"] == ""


@pytest.mark.parametrize("allow", [True, False])
def test_kubeadm_template_writes_fail_cgroup_v1_false_only_when_opted_in(allow: bool) -> None:
    text = _render("kubeadm-init.yaml.j2", DEFAULT, kubeadm_allow_cgroup_v1=allow)
    docs = _validate(text, DEFAULT)
    kc = docs["KubeletConfiguration"]
    assert ("failCgroupV1" in kc) is allow
    if allow:
        assert kc["failCgroupV1"] is False
