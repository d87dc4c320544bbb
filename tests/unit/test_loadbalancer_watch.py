"""The LoadBalancer controller watches instead of polling (koral_ansible.loadbalancer.watch, loop),
against the API server double with the real kubectl and the Python ``kubernetes`` client.

- ``serve`` with an hour between resyncs: a Service created is programmed (and its address
  written) on the event, within a couple of seconds;
- a node heartbeat wakes nothing, a node label that changes the backends does;
- the API server restarted: the watch resumes from its old resourceVersion, gets ``410 Expired``
  (an ERROR event of a 200 stream, as the watch cache sends it: kubernetes/kubernetes
  staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go ``Watch``), lists again and goes on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from koral_ansible.loadbalancer import hostnft, loop
from koral_ansible.loadbalancer.reconcile import Result
from koral_ansible.loadbalancer.watch import Informer
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec
from tests.unit.test_apiserver_double import Cluster, start_cluster

PUB = "10.213.7.1"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """An API server double of this module's own (it is restarted here)."""
    yield from start_cluster(tmp_path_factory.mktemp("lbwatch"))


def _service(name: str, port: int) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": port}]},
        }
    )


def _configmap(name: str) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}
    )


def _until(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def env(api: Cluster, koral_home: Paths, monkeypatch: pytest.MonkeyPatch) -> Env:
    e = Env.open(str(koral_home.home), quiet=True)
    e.store.add_cluster(validate_spec({"name": "demo", "size": 2}))
    e.store.set_endpoint("demo", {"public_ip": PUB, "api_port": 6443})
    e.paths.kubeconfig("demo").parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(api.kubeconfig, e.paths.kubeconfig("demo"))
    monkeypatch.setenv("KORAL_KUBECTL", str(api.kubectl_bin))  # no bundle recorded in this home
    loaded: list[str] = []
    monkeypatch.setattr(hostnft, "apply", lambda cluster, script, save_to: loaded.append(script) or True)
    e.loaded = loaded  # type: ignore[attr-defined]
    return e


def test_a_created_service_is_served_on_its_event(api: Cluster, env: Env) -> None:
    passes: list[list[Result]] = []
    stop = threading.Event()

    def run() -> None:  # as `koral-play loadbalancer serve` does, with its own Env (SQLite is per thread)
        loop.serve(
            Env.open(str(env.paths.home), quiet=True), 3600, stop, on_pass=lambda r, _e: passes.append(r)
        )

    thread = threading.Thread(target=run)
    thread.start()
    try:
        # the first pass, then one after each informer's first list
        _until(lambda: len(passes) >= 2, 30, "the passes after the first lists")
        time.sleep(1)
        settled = len(passes)
        time.sleep(4)  # the kubelets post node status (every 3 s here): no pass for that
        assert len(passes) == settled

        api.kubectl("apply", "-f", "-", stdin=_service("watched", 8081))
        took = _until(
            lambda: any("default/watched" in r.served for rs in passes[settled:] for r in rs), 5, "serving"
        )
        print(f"created -> served: {took:.2f}s")
        assert took < 3  # on the event, not at a resync (an hour here)
        assert f"ip daddr {PUB} tcp dport 8081 dnat" in env.loaded[-1]  # type: ignore[attr-defined]
        svc = json.loads(api.kubectl("get", "svc", "watched", "-o", "json").stdout)
        _until(
            lambda: bool(
                json.loads(api.kubectl("get", "svc", "watched", "-o", "json").stdout)["status"][
                    "loadBalancer"
                ].get("ingress")
            ),
            5,
            "the address written",
        )

        # A node leaving the load balancers changes the backends: a pass, without the Service changing.
        before = len(passes)
        api.kubectl("label", "node", "w2", "node.kubernetes.io/exclude-from-external-load-balancers=")
        _until(lambda: len(passes) > before, 5, "a pass on the node label")
        _until(lambda: "10.0.0.13" not in env.loaded[-1], 5, "w2 out of the rules")  # type: ignore[attr-defined]
        assert svc["spec"]["ports"][0]["nodePort"]
    finally:
        stop.set()
        thread.join(timeout=30)
        api.kubectl("label", "node", "w2", "node.kubernetes.io/exclude-from-external-load-balancers-")
        api.kubectl("delete", "svc", "watched", check=False)
    assert not thread.is_alive()


def test_an_expired_resource_version_lists_again(api: Cluster) -> None:
    changes: list[float] = []
    informer = Informer(api.kubectl_bin, api.kubeconfig, "/api/v1/services", lambda: changes.append(1))
    informer.start()
    try:
        _until(lambda: informer.counters.lists == 1, 20, "the first list")
        # Something else changes after the informer's resourceVersion, then the API server restarts:
        # its watch window starts after that resourceVersion.
        api.kubectl("apply", "-f", "-", stdin=_configmap("bump"))
        api.restart()
        _until(lambda: informer.counters.expired >= 1, 30, "410 Expired")
        _until(lambda: informer.counters.lists == 2, 20, "the list after 410")
        seen = len(changes)
        api.kubectl("apply", "-f", "-", stdin=_service("afterwards", 8082))
        _until(lambda: len(changes) > seen, 5, "the event on the new watch")
    finally:
        informer.stop()
        api.kubectl("delete", "svc", "afterwards", check=False)
        api.kubectl("delete", "configmap", "bump", check=False)


def test_too_old_resource_version_is_an_error_event_of_a_200_stream(api: Cluster) -> None:
    """What the watch cache answers (cacher.go Watch: newErrWatcher with errors.NewResourceExpired;
    watch_cache.go getAllEventsSinceLocked: "too old resource version: %d (%d)"), read by the real
    kubectl (it streams the event and exits 0) and the Python client (ApiException 410)."""
    api.kubectl("apply", "-f", "-", stdin=_configmap("bump2"))
    api.restart()  # its window starts now: resourceVersion 2 is older
    out = api.kubectl("get", "--raw", "/api/v1/services?watch=1&resourceVersion=2&timeoutSeconds=5")
    event = json.loads(out.stdout)
    assert event["type"] == "ERROR"
    status = event["object"]
    assert {k: status[k] for k in ("kind", "apiVersion", "status", "reason", "code")} == {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Expired",
        "code": 410,
    }
    assert status["message"].startswith("too old resource version: 2 (")

    from kubernetes import client, config, watch

    core = client.CoreV1Api(config.new_client_from_config(str(api.kubeconfig)))
    with pytest.raises(client.ApiException) as err:
        for _ in watch.Watch().stream(
            core.list_service_for_all_namespaces, resource_version="2", timeout_seconds=5
        ):
            pass
    assert err.value.status == 410
    api.kubectl("delete", "configmap", "bump2")


def test_kubectl_raw_watch_streams_each_event_as_it_comes(api: Cluster) -> None:
    """The informer relies on ``kubectl get --raw`` copying the stream as it arrives."""
    rv = json.loads(api.kubectl("get", "--raw", "/api/v1/services").stdout)["metadata"]["resourceVersion"]
    w = subprocess.Popen(
        [str(api.kubectl_bin), "--kubeconfig", str(api.kubeconfig), "get", "--raw",
         f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1)
        api.kubectl("apply", "-f", "-", stdin=_service("streamed", 8083))
        assert w.stdout is not None
        line = w.stdout.readline()  # before the watch's 20 s are over
        event = json.loads(line)
        assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "streamed"
    finally:
        w.kill()
        w.communicate()
        api.kubectl("delete", "svc", "streamed")
