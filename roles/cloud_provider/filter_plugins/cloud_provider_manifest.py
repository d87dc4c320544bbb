"""Filter ``cloud_provider_manifest``: the bundle's provider.yaml with its images in the cluster's
registry.

``manifest | cloud_provider_manifest(registry_url)``: every container image moved to
``registry_url`` (``http(s)://HOST[:PORT][/PREFIX]``); with no registry the text is returned as it
is. The rewrite lives in :mod:`koral_ansible.manifest_images` (shared with the dashboard and
cluster_autoscaler roles); this file only registers it.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def cloud_provider_manifest(text: str, registry_url: str = "") -> str:
    from koral_ansible.manifest_images import manifest_in_registry

    try:
        return manifest_in_registry(text, registry_url, "provider.yaml")
    except ValueError as exc:
        raise AnsibleFilterError(f"cloud_provider_manifest: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cloud_provider_manifest": cloud_provider_manifest}
