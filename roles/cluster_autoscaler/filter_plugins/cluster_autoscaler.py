"""Filter ``cluster_autoscaler_image``: the image cluster-autoscaler runs from.

``manifest | cluster_autoscaler_image(fallback, registry_url)``: the image of the
cluster-autoscaler container in a bundle's ``autoscaler.yaml`` text (empty text: ``fallback``),
moved to the cluster's registry when ``registry_url`` (``http(s)://HOST[:PORT][/PREFIX]``) is set.
The image lookup and rewrite live in :mod:`koral_ansible.manifest_images` (shared with the
dashboard and cloud_provider roles); this file only registers them.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def cluster_autoscaler_image(manifest: str, fallback: str, registry_url: str = "") -> str:
    from koral_ansible.manifest_images import container_image, image_in_registry

    try:
        image = (
            container_image(manifest, "cluster-autoscaler", "autoscaler.yaml")
            if manifest and manifest.strip()
            else fallback
        )
        return image_in_registry(image, registry_url)
    except ValueError as exc:
        raise AnsibleFilterError(f"cluster_autoscaler_image: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cluster_autoscaler_image": cluster_autoscaler_image}
