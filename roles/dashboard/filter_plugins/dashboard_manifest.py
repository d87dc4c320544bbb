"""Filter ``dashboard_manifest``: the bundle's dashboard.yaml with its images in the cluster's registry.

``manifest | dashboard_manifest(registry_url)``: every container and init container image moved to
``registry_url`` (``http(s)://HOST[:PORT][/PREFIX]``); with no registry the text is returned as it
is. The rewrite lives in :mod:`koral_ansible.manifest_images` (shared with the cluster_autoscaler
and cloud_provider roles); this file only registers it.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def dashboard_manifest(text: str, registry_url: str = "") -> str:
    from koral_ansible.manifest_images import manifest_in_registry

    try:
        return manifest_in_registry(text, registry_url, "dashboard.yaml")
    except ValueError as exc:
        raise AnsibleFilterError(f"dashboard_manifest: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"dashboard_manifest": dashboard_manifest}
