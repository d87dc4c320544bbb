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


def _svc(name: str, **spec: object) -> str:
    doc = json.loads(json.dumps(SVC))
    doc["metadata"]["name"] = name
    doc["spec"].update(spec)
    return json.dumps(doc)


def test_health_check_node_port_allocated_kept_dropped_and_refused(cluster: Cluster) -> None:  # noqa: F811
    """``externalTrafficPolicy: Local`` on a LoadBalancer Service: the API server allocates
    ``healthCheckNodePort`` from the node port range (the port kube-proxy answers on and a load
    balancer probes), keeps it on an update that leaves it out, drops it with the policy, and
    refuses it where it does not belong, as kube-apiserver does (texts read by the real kubectl)."""
    cluster.kubectl("apply", "-f", "-", stdin=_svc("hc", externalTrafficPolicy="Local"))
    spec = json.loads(cluster.kubectl("get", "svc", "hc", "-o", "json").stdout)["spec"]
    hc, node_port = spec["healthCheckNodePort"], spec["ports"][0]["nodePort"]
    assert 30000 <= hc <= 32767 and hc != node_port
    api = KubeApi(cluster.kubectl_bin, cluster.kubeconfig)
    assert [s["spec"]["healthCheckNodePort"] for s in api.services() if s["metadata"]["name"] == "hc"] == [hc]

    # An apply that leaves the field out keeps it; changing it is refused.
    cluster.kubectl(
        "apply", "-f", "-", stdin=_svc("hc", externalTrafficPolicy="Local", sessionAffinity="ClientIP")
    )
    assert (
        json.loads(cluster.kubectl("get", "svc", "hc", "-o", "json").stdout)["spec"]["healthCheckNodePort"]
        == hc
    )
    moved = cluster.kubectl(
        "patch",
        "svc",
        "hc",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"healthCheckNodePort": hc + 1}}),
        check=False,
    )
    assert moved.returncode == 1
    assert f"spec.healthCheckNodePort: Invalid value: {hc + 1}: field is immutable" in moved.stderr

    # Another Service cannot have it, nor a NodePort of it.
    taken = cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=_svc("hc2", externalTrafficPolicy="Local", healthCheckNodePort=hc),
        check=False,
    )
    assert taken.returncode == 1
    assert "Error from server (InternalError)" in taken.stderr
    assert (
        f"Internal error occurred: failed to allocate requested HealthCheck NodePort {hc}: "
        "provided port is already allocated"
    ) in taken.stderr
    clash = cluster.kubectl(
        "apply", "-f", "-", stdin=_svc("hc3", ports=[{"port": 80, "nodePort": hc}]), check=False
    )
    assert clash.returncode == 1 and "provided port is already allocated" in clash.stderr

    # Set where it does not belong.
    wrong = cluster.kubectl("apply", "-f", "-", stdin=_svc("hc4", healthCheckNodePort=31999), check=False)
    assert wrong.returncode == 1
    assert (
        "spec.healthCheckNodePort: Invalid value: 31999: may only be set when `type` is 'LoadBalancer' "
        "and `externalTrafficPolicy` is 'Local'"
    ) in wrong.stderr

    # Back to Cluster: the port goes with the policy and is free again.
    cluster.kubectl(
        "patch", "svc", "hc", "--type=merge", "-p", '{"spec": {"externalTrafficPolicy": "Cluster"}}'
    )
    assert (
        "healthCheckNodePort"
        not in json.loads(cluster.kubectl("get", "svc", "hc", "-o", "json").stdout)["spec"]
    )
    # (its node port given: the double, like kube-apiserver, allocates node ports before the health
    # check port, and hands out the lowest free one where the real allocator picks at random)
    again = _svc(
        "hc2", externalTrafficPolicy="Local", healthCheckNodePort=hc, ports=[{"port": 80, "nodePort": 32100}]
    )
    cluster.kubectl("apply", "-f", "-", stdin=again)
    cluster.kubectl("delete", "svc", "hc", "hc2")
