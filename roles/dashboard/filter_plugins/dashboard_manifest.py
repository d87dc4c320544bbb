"""Filter ``dashboard_manifest``: the bundle's dashboard.yaml with its images in the cluster's registry.

``manifest | dashboard_manifest(registry_url)``: every container and init container image moved to
``registry_url`` (``http(s)://HOST[:PORT][/PREFIX]``) in the mirror layout ``koral-play registry
push`` writes (koral_ansible.bundle.push.Registry.target, the one home of that layout); with no
registry the text is returned as it is. Written back as plain block YAML (no anchors).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


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


def dashboard_manifest(text: str, registry_url: str = "") -> str:
    text, registry_url = str(text), str(registry_url or "")
    if not registry_url:
        return text
    from koral_ansible.bundle.push import Registry
    from koral_ansible.errors import InputError

    try:
        registry = Registry.parse(registry_url)
    except InputError as exc:
        raise AnsibleFilterError(f"dashboard_manifest: registry URL {exc.message}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise AnsibleFilterError(f"dashboard_manifest: dashboard.yaml is not valid YAML: {exc}") from None
    for container in _containers(docs):
        container["image"] = registry.target(str(container["image"]).strip())
    return yaml.dump_all(
        docs, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=1 << 30, explicit_start=True
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"dashboard_manifest": dashboard_manifest}
