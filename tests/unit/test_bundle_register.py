"""Registering a bundle ISO in Mold / CloudStack (calls checked against a recording fake client)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from koral_ansible.bundle import BuildResult
from koral_ansible.bundle.register import register_bundle, registered_versions
from koral_ansible.bundle.verify import BundleVerifyError
from koral_ansible.errors import InputError
from koral_ansible.providers.cloudstack.client import ApiCallError
from tests.bundle_fixtures import make_test_bundle
from tests.versions import DEFAULT

URL = f"http://10.0.0.5/isos/kubernetes-{DEFAULT}-amd64.iso"


class FakeCloud:
    """Answers the calls register_bundle makes; ``kubernetes_service=False`` is plain CloudStack."""

    def __init__(self, kubernetes_service: bool = True) -> None:
        self.kubernetes_service = kubernetes_service
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.versions: list[dict[str, Any]] = []
        self.isos: list[dict[str, Any]] = []

    def _missing(self, command: str) -> None:
        if not self.kubernetes_service and "Kubernetes" in command:
            # a command the server does not have: ApiServer.verifyRequest fails -> HTTP 401
            raise ApiCallError(command, 401, "unable to verify user credentials and/or request signature")

    def list(self, command: str, **params: Any) -> list[dict[str, Any]]:
        self.calls.append((command, params))
        self._missing(command)
        if command == "listZones":
            return [{"id": "z-1", "name": "zone1"}, {"id": "z-2", "name": "zone2"}]
        if command == "listKubernetesSupportedVersions":
            return list(self.versions)
        if command == "listIsos":
            return [i for i in self.isos if i["name"] == params.get("name")]
        raise AssertionError(command)

    def call(self, command: str, **params: Any) -> dict[str, Any]:
        self.calls.append((command, params))
        self._missing(command)
        if command == "listCapabilities":
            return {"capability": {"kubernetesserviceenabled": self.kubernetes_service}}
        if command == "addKubernetesSupportedVersion":
            item = {
                "id": f"kv-{len(self.versions) + 1}",
                "name": params["name"],
                "semanticversion": params["semanticversion"],
                "isostate": "Creating",
                "zoneid": params.get("zoneid"),
            }
            self.versions.append(item)
            return {"kubernetessupportedversion": item}
        if command == "registerIso":
            item = {"id": f"iso-{len(self.isos) + 1}", "name": params["name"], "isready": False}
            self.isos.append(item)
            return {"iso": [item]}
        raise AssertionError(command)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return make_test_bundle(tmp_path_factory.mktemp("register"), DEFAULT)


def test_register_as_kubernetes_version_idempotent(built: BuildResult) -> None:
    assert built.iso is not None
    cloud = FakeCloud()
    first = register_bundle(cloud, built.iso, URL, zone="zone2")
    assert (first.kind, first.kubernetes_version, first.name) == (
        "kubernetes-version",
        DEFAULT,
        f"kubernetes-{DEFAULT}-amd64",
    )
    add = [p for c, p in cloud.calls if c == "addKubernetesSupportedVersion"]
    assert len(add) == 1
    sha = hashlib.sha256(built.iso.read_bytes()).hexdigest()
    assert add[0] == {
        "name": f"kubernetes-{DEFAULT}-amd64",
        "semanticversion": DEFAULT,
        "url": URL,
        "checksum": "{SHA-256}" + sha,
        "mincpunumber": 2,
        "minmemory": 2048,
        "zoneid": "z-2",
    }
    again = register_bundle(cloud, built.iso, URL, zone="zone2")
    assert again.id == first.id
    assert len([c for c, _ in cloud.calls if c == "addKubernetesSupportedVersion"]) == 1
    assert [v.kubernetes_version for v in registered_versions(cloud)] == [DEFAULT]


def test_register_and_list_need_the_kubernetes_service(built: BuildResult) -> None:
    """Decided from listCapabilities.kubernetesserviceenabled, before any Kubernetes command."""
    assert built.iso is not None
    cloud = FakeCloud(kubernetes_service=False)
    message = r"^--provider: must name a cloud whose Kubernetes service is enabled"
    with pytest.raises(InputError, match=message):
        register_bundle(cloud, built.iso, URL, name=f"k8s-{DEFAULT}")
    with pytest.raises(InputError, match=message):
        registered_versions(cloud)
    assert [c for c, _ in cloud.calls] == ["listCapabilities", "listCapabilities"]


def test_register_refuses_bad_input(built: BuildResult, tmp_path: Path) -> None:
    assert built.iso is not None
    cloud = FakeCloud()
    with pytest.raises(InputError, match=r"^PATH: must be a bundle ISO"):
        register_bundle(cloud, built.directory, URL)
    with pytest.raises(InputError, match=r"^--url: "):
        register_bundle(cloud, built.iso, "file:///tmp/x.iso")
    with pytest.raises(InputError, match=r"^--zone: must name a zone of this cloud \(have: zone1, zone2"):
        register_bundle(cloud, built.iso, URL, zone="nowhere")
    with pytest.raises(InputError, match=r"^--min-cpu: "):
        register_bundle(cloud, built.iso, URL, min_cpu=1)
    broken = tmp_path / "broken.iso"
    data = bytearray(built.iso.read_bytes())
    at = data.find((built.directory / "k8s" / "kubectl").read_bytes())
    data[at] ^= 0x01
    broken.write_bytes(bytes(data))
    with pytest.raises(BundleVerifyError, match="k8s/kubectl"):
        register_bundle(cloud, broken, URL)
    assert not [c for c, _ in cloud.calls if c in ("addKubernetesSupportedVersion", "registerIso")]
