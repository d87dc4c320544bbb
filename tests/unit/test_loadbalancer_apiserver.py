"""The reconciler's API calls against the API server double, judged by the real kubectl.

What a cloud controller relies on (kubernetes/kubernetes ``pkg/registry/core/service/strategy.go``):
a LoadBalancer Service gets its node ports allocated; ``services/{name}/status`` writes change only
the status (``serviceStatusStrategy.PrepareForUpdate`` keeps the old spec); a plain update keeps the
old status (``svcStrategy.PrepareForUpdate``); ``kubectl get svc`` shows the ingress IP as EXTERNAL-IP.
"""

from __future__ import annotations

import json
from pathlib import Path

from koral_ansible.loadbalancer.kubeapi import KubeApi
from tests.unit.test_apiserver_double import Cluster, cluster  # noqa: F401  (the module fixture)

SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "lbweb", "namespace": "default"},
    "spec": {
        "type": "LoadBalancer",
        "selector": {"app": "lbweb"},
        "ports": [{"port": 8080, "targetPort": 80}],
    },
}
INGRESS = [{"ip": "10.213.0.1", "ipMode": "Proxy", "ports": [{"port": 8080, "protocol": "TCP"}]}]


def _get(c: Cluster) -> dict[str, object]:
    return dict(json.loads(c.kubectl("get", "svc", "lbweb", "-o", "json").stdout))


def test_status_subresource_and_plain_update(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(SVC))
    api = KubeApi(cluster.kubectl_bin, cluster.kubeconfig)
    listed = [s for s in api.services() if s["metadata"]["name"] == "lbweb"]
    assert len(listed) == 1 and 30000 <= listed[0]["spec"]["ports"][0]["nodePort"] <= 32767
    assert listed[0]["status"] == {"loadBalancer": {}}
    spec_before = listed[0]["spec"]

    api.patch_status("default", "lbweb", {"ingress": INGRESS})
    svc = _get(cluster)
    assert svc["status"] == {"loadBalancer": {"ingress": INGRESS}} and svc["spec"] == spec_before
    row = cluster.kubectl("get", "svc", "lbweb").stdout.splitlines()[1].split()
    assert row[1:4] == ["LoadBalancer", spec_before["clusterIP"], "10.213.0.1"]

    # A status write does not change the spec ...
    cluster.kubectl(
        "patch",
        "svc",
        "lbweb",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"spec": {"type": "NodePort"}}',
    )
    assert _get(cluster)["spec"] == spec_before
    # ... and a plain update does not change the status.
    live = _get(cluster)
    live["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}
    cluster.kubectl("replace", "-f", "-", stdin=json.dumps(live))
    assert _get(cluster)["status"] == {"loadBalancer": {"ingress": INGRESS}}

    api.patch_status("default", "lbweb", {})
    assert _get(cluster)["status"] == {"loadBalancer": {}}
    cluster.kubectl("delete", "svc", "lbweb")
