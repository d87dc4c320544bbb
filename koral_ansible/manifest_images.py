"""Container images of a Kubernetes manifest moved to the cluster's private registry: the one home
of the image rewrite the dashboard, cluster_autoscaler and cloud_provider roles use (their
filter_plugins only register these functions under the role's filter name).

Images go where ``koral-play registry push`` puts them
(:meth:`koral_ansible.bundle.push.Registry.target`, the one home of the mirror layout: upstream host
dropped, path kept, Docker Hub short names completed). ``ValueError`` carries a one-line reason;
the filter wrappers turn it into an AnsibleFilterError naming the filter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from koral_ansible.bundle.push import Registry
from koral_ansible.errors import InputError


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container and init container (with a string ``image``) anywhere in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict) and isinstance(c.get("image"), str))
            else:
                yield from containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from containers(item)


def _registry(registry_url: str) -> Registry:
    try:
        return Registry.parse(registry_url)
    except InputError as exc:
        raise ValueError(f"registry URL {exc.problem}") from None


def _docs(text: str, what: str) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} is not valid YAML: {exc}") from None


def image_in_registry(image: str, registry_url: str = "") -> str:
    """``image`` as pulled from ``registry_url`` (``http(s)://HOST[:PORT][/PREFIX]``); unchanged
    without a registry."""
    image = str(image).strip()
    return _registry(registry_url).target(image) if registry_url else image


def manifest_in_registry(text: str, registry_url: str = "", what: str = "the manifest") -> str:
    """``text`` with every container image moved to ``registry_url``; unchanged (the same text)
    without a registry. Written back as plain block YAML (no anchors)."""
    text, registry_url = str(text), str(registry_url or "")
    if not registry_url:
        return text
    registry = _registry(registry_url)
    docs = _docs(text, what)
    for container in containers(docs):
        container["image"] = registry.target(str(container["image"]).strip())
    return yaml.dump_all(
        docs, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=1 << 30, explicit_start=True
    )


def container_image(text: str, name: str, what: str = "the manifest") -> str:
    """The image of the container called ``name`` (or whose image is named so) in ``text``."""
    for container in containers(_docs(text, what)):
        if name in (str(container.get("name", "")), str(container["image"]).rsplit("/", 1)[-1].split(":")[0]):
            return str(container["image"]).strip()
    raise ValueError(f"{what} has no {name} container")
