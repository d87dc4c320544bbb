"""Filter ``cluster_autoscaler_image``: the image cluster-autoscaler runs from.

``manifest | cluster_autoscaler_image(fallback, registry_url)``: the image of the
cluster-autoscaler container in a bundle's ``autoscaler.yaml`` text (empty text: ``fallback``),
moved to the cluster's registry when ``registry_url`` (``http(s)://HOST[:PORT][/PREFIX]``) is set,
in the mirror layout koral's registry push uses (upstream host dropped, path kept, Docker Hub
names completed with ``library/``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import yaml
from ansible.errors import AnsibleFilterError

_DOCKER_HUB = "docker.io"


def _containers(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict) and isinstance(c.get("image"), str))
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _from_manifest(text: str) -> str:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise AnsibleFilterError(
            f"cluster_autoscaler_image: autoscaler.yaml is not valid YAML: {exc}"
        ) from None
    for container in _containers(docs):
        if "cluster-autoscaler" in (
            str(container.get("name", "")),
            str(container["image"]).rsplit("/", 1)[-1].split(":")[0],
        ):
            return str(container["image"]).strip()
    raise AnsibleFilterError("cluster_autoscaler_image: autoscaler.yaml has no cluster-autoscaler container")


def _mirror_path(ref: str) -> str:
    """``ref`` without its registry host (``library/`` added for Docker Hub short names)."""
    first, slash, rest = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = _DOCKER_HUB, ref
    if host == _DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return path


def cluster_autoscaler_image(manifest: str, fallback: str, registry_url: str = "") -> str:
    image = _from_manifest(manifest) if manifest and manifest.strip() else fallback
    if not registry_url:
        return image
    parts = urlsplit(registry_url)
    if not parts.netloc:
        raise AnsibleFilterError(f"cluster_autoscaler_image: registry URL {registry_url!r} has no host")
    prefix = parts.path.strip("/")
    return f"{parts.netloc}/{prefix + '/' if prefix else ''}{_mirror_path(image)}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cluster_autoscaler_image": cluster_autoscaler_image}
