"""One image rewrite (koral_ansible.manifest_images) behind the dashboard, cluster_autoscaler and
cloud_provider roles' filters: the provider's image through the cluster's registry, in the layout
``koral-play registry push`` writes (Registry.target), the same answer from every role's filter."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from koral_ansible.bundle.push import Registry
from koral_ansible.manifest_images import containers, manifest_in_registry
from tests.bundle_fixtures import DASHBOARD_YAML, PROVIDER_YAML

REPO = Path(__file__).resolve().parents[2]
URL = "https://reg.example:5000/mirror"


def _filters(role: str, file: str) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location(
        f"{role}_f", REPO / "roles" / role / "filter_plugins" / file
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.FilterModule().filters())


def _images(text: str) -> list[str]:
    return [c["image"] for c in containers(list(yaml.safe_load_all(text)))]


def test_provider_image_moves_to_the_cluster_registry() -> None:
    moved = _filters("cloud_provider", "cloud_provider_manifest.py")["cloud_provider_manifest"]
    assert moved(PROVIDER_YAML, "") == PROVIDER_YAML
    out = moved(PROVIDER_YAML, URL)
    assert _images(out) == [Registry.parse(URL).target("apache/cloudstack-kubernetes-provider:v1.2.0")]
    assert _images(out) == ["reg.example:5000/mirror/apache/cloudstack-kubernetes-provider:v1.2.0"]
    kinds = [d["kind"] for d in yaml.safe_load_all(out)]
    assert kinds == [d["kind"] for d in yaml.safe_load_all(PROVIDER_YAML)]  # nothing else changed
    with pytest.raises(AnsibleFilterError, match=r"^cloud_provider_manifest: registry URL must be"):
        moved(PROVIDER_YAML, "ftp://x")


def test_every_role_filter_is_the_same_rewrite() -> None:
    dashboard = _filters("dashboard", "dashboard_manifest.py")["dashboard_manifest"]
    provider = _filters("cloud_provider", "cloud_provider_manifest.py")["cloud_provider_manifest"]
    autoscaler = _filters("cluster_autoscaler", "cluster_autoscaler.py")["cluster_autoscaler_image"]
    for text in (DASHBOARD_YAML, PROVIDER_YAML):
        assert dashboard(text, URL) == provider(text, URL) == manifest_in_registry(text, URL)
    ref = "registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0"
    assert autoscaler("", ref, URL) == Registry.parse(URL).target(ref)
