"""roles/cni filter ``cni_manifest``: pod CIDR and Weave secret set in the CNI DaemonSet, output
readable by the doubles' strict YAML subset reader (k8s_double.yaml_load_all)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from tests.bundle_fixtures import NETWORK_YAML

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "doubles"))
import k8s_double as kd  # noqa: E402


def _plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cni_manifest", REPO / "roles/cni/filter_plugins/cni_manifest.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cni_manifest = _plugin().cni_manifest

CALICO = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: calico-config, namespace: kube-system}
data:
  cni_network_config: |-
    {"name": "k8s-pod-network", "cniVersion": "0.3.1"}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: calico-node, namespace: kube-system}
spec:
  template:
    spec:
      containers:
        - name: calico-node
          image: docker.io/calico/node:v3.28.0
          env:
            - name: CALICO_IPV4POOL_CIDR
              value: "192.168.0.0/16"
            - name: CLUSTER_TYPE
              value: "k8s,bgp"
"""


def _env(docs: list[dict], ds: str, container: str) -> dict[str, dict]:
    objs = [i for d in docs for i in (d.get("items") or [d])]
    d = next(o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == ds)
    c = next(c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == container)
    return {e["name"]: e for e in c.get("env", [])}


def test_weave_gets_the_pod_cidr_and_the_password_secret() -> None:
    out = cni_manifest(NETWORK_YAML, "weave", "10.32.0.0/16", "weave-passwd")
    env = _env(list(yaml.safe_load_all(out)), "weave-net", "weave")
    assert env["IPALLOC_RANGE"]["value"] == "10.32.0.0/16"
    assert env["WEAVE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "weave-passwd",
        "key": "weave-passwd",
    }
    assert kd.yaml_load_all(out) == list(yaml.safe_load_all(out))  # the doubles' reader reads it the same


def test_weave_without_password_has_no_secret_reference() -> None:
    env = _env(
        list(yaml.safe_load_all(cni_manifest(NETWORK_YAML, "weave", "10.244.0.0/16"))), "weave-net", "weave"
    )
    assert "WEAVE_PASSWORD" not in env and env["IPALLOC_RANGE"]["value"] == "10.244.0.0/16"


def test_calico_pool_cidr_is_replaced_and_the_rest_kept() -> None:
    out = cni_manifest(CALICO, "calico", "10.244.0.0/16")
    docs = list(yaml.safe_load_all(out))
    env = _env(docs, "calico-node", "calico-node")
    assert env["CALICO_IPV4POOL_CIDR"]["value"] == "10.244.0.0/16"
    assert env["CLUSTER_TYPE"]["value"] == "k8s,bgp"
    assert docs[0]["data"]["cni_network_config"].startswith('{"name": "k8s-pod-network"')
    assert kd.yaml_load_all(out) == docs


@pytest.mark.parametrize(
    ("text", "plugin"), [(NETWORK_YAML, "calico"), (CALICO, "weave"), (CALICO, "flannel")]
)
def test_wrong_manifest_or_plugin_fails_clearly(text: str, plugin: str) -> None:
    with pytest.raises(AnsibleFilterError, match=r"plugin must be one of|no DaemonSet"):
        cni_manifest(text, plugin, "10.244.0.0/16")
