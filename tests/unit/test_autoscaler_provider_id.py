"""Every kubelet registers its Node with ``spec.providerID = koral://<cluster>/<node>``.

The kubeadm role's init and join templates carry ``provider-id`` in ``kubeletExtraArgs`` (a
v1beta3 map, a v1beta4 list), the kubeadm double accepts them strictly and writes the flag into
``kubeadm-flags.env``, and the kubelet double takes ``--provider-id`` and registers the Node with
it (what cluster-autoscaler matches against NodeGroupNodes' instance ids).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from koral_ansible.provider_id import kube_provider_id
from tests.unit.test_doubles import REPO, _render, _validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import k8s_double as kd

PROVIDER_ID = "koral://demo/demo-cp1"


def _kubelet_args(doc: dict[str, Any]) -> dict[str, str]:
    return dict(kd._args_list(doc["nodeRegistration"]["kubeletExtraArgs"]))


@pytest.mark.parametrize("version", ["1.30.2", "1.31.4"])
def test_init_and_join_templates_carry_the_provider_id_in_the_right_form(version: str) -> None:
    as_list = version >= "1.31"
    init = _render("kubeadm-init.yaml.j2", version, kubeadm_provider_id=PROVIDER_ID)
    raw = kd.yaml_load_all(init)[0]["nodeRegistration"]["kubeletExtraArgs"]
    assert isinstance(raw, list) is as_list
    assert _kubelet_args(_validate(init, version)["InitConfiguration"])["provider-id"] == PROVIDER_ID
    for control_plane in (True, False):
        join = _render(
            "kubeadm-join.yaml.j2",
            version,
            kubeadm_provider_id=PROVIDER_ID,
            __kubeadm_join_control_plane=control_plane,
        )
        args = _kubelet_args(_validate(join, version)["JoinConfiguration"])
        assert args == {"node-ip": "10.0.0.11", "provider-id": PROVIDER_ID, "max-pods": "50"}


def test_empty_provider_id_leaves_the_flag_out() -> None:
    text = _render("kubeadm-join.yaml.j2", "1.31.4", kubeadm_provider_id="")
    assert "provider-id" not in _kubelet_args(_validate(text, "1.31.4")["JoinConfiguration"])


def test_role_default_matches_the_autoscaler_instance_id() -> None:
    import yaml

    defaults = yaml.safe_load((REPO / "roles/kubeadm/defaults/main.yml").read_text())
    rendered = (
        defaults["kubeadm_provider_id"]
        .replace("{{ kubeadm_cluster_name }}", "demo")
        .replace("{{ kubeadm_node_name }}", "demo-node-1")
    )
    assert rendered == kube_provider_id("demo", "demo-node-1")


def test_kubelet_double_takes_the_flag_and_registers_the_node_with_it() -> None:
    flags, _ = kd.parse_flags(
        ["--config=/var/lib/kubelet/config.yaml", f"--provider-id={PROVIDER_ID}"],
        kd.KUBELET_FLAGS,
        {"v": "v"},
        prog="kubelet",
    )
    assert flags["provider-id"] == PROVIDER_ID
    with pytest.raises(kd.DoubleError, match="unknown flag: --provider-idx"):
        kd.parse_flags(["--provider-idx=x"], kd.KUBELET_FLAGS, {"v": "v"}, prog="kubelet")

    posted: list[dict[str, Any]] = []

    class Client:
        def request(self, method: str, path: str, body: Any = None, *_: Any) -> Any:
            assert (method, path) == ("POST", "/api/v1/nodes")
            posted.append(body)
            return body

    assert kd._register(Client(), "demo-cp1", "10.0.0.11", "", PROVIDER_ID)
    assert kd._register(Client(), "demo-cp2", "10.0.0.12", "")
    assert posted[0]["spec"] == {"providerID": PROVIDER_ID}
    assert posted[1]["spec"] == {}
