"""Node identity with the CloudStack provider (cloud controller manager): one parser for both
providerID forms (koral_ansible.provider_id), the inventory of a cluster that runs the provider
(kubelets with --cloud-provider=external and ``external-cloudstack://<VM uuid>``), the autoscaler
answering in the form the kubelets got and accepting both, the kubelet double's taint, and
clusters without the provider left exactly as they were."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from koral_ansible.autoscaler import settings
from koral_ansible.autoscaler.state_scaler import StateScaler
from koral_ansible.inventory import build_inventory
from koral_ansible.paths import Paths
from koral_ansible.provider_id import (
    EXTERNAL_CLOUD_PROVIDER,
    ProviderRef,
    external_cloud_provider,
    external_cloud_provider_mark,
    is_node,
    kube_provider_id,
    kubelet_provider_id,
    parse_provider_id,
)
from koral_ansible.providers.base import Endpoint
from koral_ansible.spec import validate_spec
from koral_ansible.state import NodeRecord, StateStore
from tests.unit.test_doubles import _render, _validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import k8s_double as kd

VM = "9b2f6c1e-4d3a-4e8f-9a0b-1c2d3e4f5a6b"
NODE = NodeRecord("demo-node-1", "worker", 1, provider_id=VM)


def test_parser_reads_both_forms() -> None:
    assert parse_provider_id("koral://demo/demo-node-1") == ProviderRef("koral", "demo", "demo-node-1")
    # cloudstack_instances.go v1.2.0 getProviderIDFromInstanceID: "%s://%s"
    assert parse_provider_id(f"external-cloudstack://{VM}") == ProviderRef("external-cloudstack", instance=VM)
    # the provider's development line (cloudstack/util.go): ":///<id>" and "://<region>/<id>"
    assert parse_provider_id(f"external-cloudstack:///{VM}") == ProviderRef(
        "external-cloudstack", instance=VM
    )
    assert parse_provider_id(f"external-cloudstack://r1/{VM}") == ProviderRef(
        "external-cloudstack", instance=VM
    )
    for other in (
        "",
        "demo-node-1",
        "aws:///eu-west-1a/i-0",
        "koral://demo",
        "koral:///x",
        "external-cloudstack://",
    ):
        assert parse_provider_id(other) is None, other


def test_is_node_matches_either_form_or_the_name() -> None:
    assert is_node("demo-node-1", "demo", NODE)
    assert is_node("koral://demo/demo-node-1", "demo", NODE)
    assert is_node(f"external-cloudstack://{VM}", "demo", NODE)
    assert not is_node("koral://other/demo-node-1", "demo", NODE)
    assert not is_node("external-cloudstack://another-vm", "demo", NODE)
    assert not is_node("external-cloudstack://x", "demo", NodeRecord("demo-node-2", "worker", 2))


def test_kubelet_provider_id_only_with_the_provider() -> None:
    assert kubelet_provider_id("demo", NODE, False) == kube_provider_id("demo", "demo-node-1")
    assert kubelet_provider_id("demo", NODE, True) == f"external-cloudstack://{VM}"
    # no VM recorded (a local node): koral's form
    assert kubelet_provider_id("demo", NodeRecord("n", "worker", 1), True) == "koral://demo/n"


def _inventory(marked: bool) -> dict[str, object]:
    spec = validate_spec(
        {"name": "demo", "provider": "cloudstack", "zone": "z", "compute_offering": "M", "size": 1}
    )
    extra = {"subnet": "10.1.0.0/24", **({EXTERNAL_CLOUD_PROVIDER: True} if marked else {})}
    nodes = [NodeRecord("demo-control-1", "control", 0, provider_id="vm-c1"), NODE]
    return build_inventory(spec, nodes, Endpoint("192.0.2.10", extra=extra))


def test_inventory_sets_the_kubelet_flags_only_for_a_provider_cluster() -> None:
    plain, marked = _inventory(False), _inventory(True)
    all_p, all_m = plain["all"], marked["all"]  # type: ignore[index]
    assert "kubeadm_cloud_provider" not in all_p["vars"]  # type: ignore[index]
    hosts_p = {**all_p["children"]["kube_control_plane"]["hosts"], **all_p["children"]["kube_node"]["hosts"]}  # type: ignore[index]
    assert all("kubeadm_provider_id" not in h for h in hosts_p.values())
    assert all_m["vars"]["kubeadm_cloud_provider"] == "external"  # type: ignore[index]
    hosts_m = {**all_m["children"]["kube_control_plane"]["hosts"], **all_m["children"]["kube_node"]["hosts"]}  # type: ignore[index]
    assert hosts_m["demo-control-1"]["kubeadm_provider_id"] == "external-cloudstack://vm-c1"
    assert hosts_m["demo-node-1"]["kubeadm_provider_id"] == f"external-cloudstack://{VM}"


def test_mark_lives_in_the_endpoint_and_is_carried() -> None:
    ep = Endpoint("192.0.2.10", extra={EXTERNAL_CLOUD_PROVIDER: True}).to_dict()
    assert external_cloud_provider(ep) and external_cloud_provider_mark(ep) == {EXTERNAL_CLOUD_PROVIDER: True}
    assert not external_cloud_provider({}) and external_cloud_provider_mark({"extra": {}}) == {}


@pytest.mark.parametrize("version", ["1.30.2", "1.31.4"])
def test_templates_carry_cloud_provider_external(version: str) -> None:
    text = _render("kubeadm-join.yaml.j2", version, kubeadm_cloud_provider="external")
    args = dict(
        kd._args_list(_validate(text, version)["JoinConfiguration"]["nodeRegistration"]["kubeletExtraArgs"])
    )
    assert args["cloud-provider"] == "external"
    plain = _render("kubeadm-init.yaml.j2", version)
    init = _validate(plain, version)["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]
    assert "cloud-provider" not in dict(kd._args_list(init))


def test_kubelet_double_registers_with_the_uninitialized_taint_when_external() -> None:
    """kubernetes/kubernetes pkg/kubelet/kubelet_node_status.go initialNode."""
    assert kd._node_spec("", False) == {}
    assert kd._node_spec("p", True) == {
        "providerID": "p",
        "taints": [
            {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
        ],
    }


def test_autoscaler_answers_in_the_kubelets_form_and_accepts_both(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path / "home", tmp_path / "cache")
    store = StateStore(paths)
    store.add_cluster(
        validate_spec(
            {"name": "demo", "provider": "cloudstack", "zone": "z", "compute_offering": "M", "size": 1}
        )
    )
    store.upsert_node(
        "demo", NodeRecord("demo-control-1", "control", 0, state="Running", provider_id="vm-c1")
    )
    store.upsert_node("demo", NodeRecord("demo-node-1", "worker", 1, state="Running", provider_id=VM))
    settings.enable(paths, "demo", 1, 3)
    scaler = StateScaler(paths, lambda _c, _n: None, lambda _c, _n: None)
    try:
        assert [n.provider_id for n in scaler.nodes("demo")] == ["koral://demo/demo-node-1"]
        store.set_endpoint("demo", Endpoint("192.0.2.10", extra={EXTERNAL_CLOUD_PROVIDER: True}).to_dict())
        assert [n.provider_id for n in scaler.nodes("demo")] == [f"external-cloudstack://{VM}"]
        for pid in (
            f"external-cloudstack://{VM}",
            f"external-cloudstack:///{VM}",
            "koral://demo/demo-node-1",
        ):
            assert scaler.node_for(pid) == "demo", pid
        assert scaler.node_for("external-cloudstack://vm-c1") is None  # the control plane: not in the group
        assert scaler.node_for("external-cloudstack://unknown") is None
    finally:
        scaler.close()
        store.close()
