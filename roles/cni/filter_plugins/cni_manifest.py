"""Filter ``cni_manifest``: set the pod CIDR (and Weave's encryption secret) in a CNI manifest.

The manifest is parsed, the CNI DaemonSet's container env is edited, and the stream is written
back as plain block YAML (no anchors, no line folding). ``kind: List`` documents are searched too.
"""

from __future__ import annotations

from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

# plugin -> (DaemonSet name, container name, env var holding the pod CIDR)
_TARGETS = {
    "weave": ("weave-net", "weave", "IPALLOC_RANGE"),
    "calico": ("calico-node", "calico-node", "CALICO_IPV4POOL_CIDR"),
}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _objects(docs: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List"):
            out.extend(i for i in doc.get("items") or [] if isinstance(i, dict))
        elif isinstance(doc, dict):
            out.append(doc)
    return out


def _set_env(container: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
    env = container.setdefault("env", []) or []
    container["env"] = [e for e in env if e.get("name") != name] + [{"name": name, **entry}]


def cni_manifest(text: str, plugin: str, pod_cidr: str, password_secret: str = "") -> str:
    # Ansible passes tagged str subclasses: plain str for the YAML dumper.
    text, plugin, pod_cidr, password_secret = (str(v) for v in (text, plugin, pod_cidr, password_secret))
    if plugin not in _TARGETS:
        raise AnsibleFilterError(
            f"cni_manifest: plugin must be one of {', '.join(_TARGETS)} (got {plugin!r})"
        )
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise AnsibleFilterError(f"cni_manifest: the manifest is not valid YAML: {exc}") from None
    ds_name, c_name, cidr_var = _TARGETS[plugin]
    found = False
    for obj in _objects(docs):
        if obj.get("kind") != "DaemonSet" or (obj.get("metadata") or {}).get("name") != ds_name:
            continue
        containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
        for c in containers:
            if c.get("name") != c_name:
                continue
            found = True
            _set_env(c, cidr_var, {"value": pod_cidr})
            if plugin == "weave" and password_secret:
                _set_env(
                    c,
                    "WEAVE_PASSWORD",
                    {"valueFrom": {"secretKeyRef": {"name": password_secret, "key": password_secret}}},
                )
    if not found:
        raise AnsibleFilterError(
            f"cni_manifest: no DaemonSet {ds_name!r} with a container {c_name!r} in the manifest "
            f"(is it a {plugin} manifest?)"
        )
    return yaml.dump_all(
        docs, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=1 << 30, explicit_start=True
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cni_manifest": cni_manifest}
