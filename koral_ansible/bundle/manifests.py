"""Kubernetes YAML manifests in a bundle: which images they use, and making them offline-safe.

Every container (``containers``, ``initContainers``, ``ephemeralContainers``) of every
workload in a multi-document YAML is found by walking the parsed documents (``List`` kinds
and CronJob templates included), and its ``imagePullPolicy`` is forced to ``IfNotPresent``
so nodes use the images loaded from the bundle instead of pulling.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

CONTAINER_KEYS = ("containers", "initContainers", "ephemeralContainers")
POLICY = "IfNotPresent"

_POLICY_LINE_RE = re.compile(
    r"^(\s*(?:-\s+)?imagePullPolicy:\s*)(['\"]?)(Always|Never|IfNotPresent)\2(\s*(?:#.*)?)$"
)


class ManifestError(ValueError):
    """A YAML file that cannot be parsed."""


def load_documents(text: str) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ManifestError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc


def iter_containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container mapping anywhere below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONTAINER_KEYS and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and isinstance(item.get("image"), str):
                        yield item
            else:
                yield from iter_containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_containers(item)


def images_in(text: str) -> list[str]:
    """Image references used by the containers of a YAML text, in order of first use."""
    seen: dict[str, None] = {}
    for doc in load_documents(text):
        for container in iter_containers(doc):
            seen.setdefault(str(container["image"]).strip(), None)
    return list(seen)


def pin_pull_policy(text: str) -> str:
    """Return ``text`` with every container's ``imagePullPolicy`` set to ``IfNotPresent``.

    Existing ``imagePullPolicy:`` lines are rewritten in place (comments and layout kept,
    as Koral's sed does). If some container has no policy at all (Kubernetes then defaults
    to Always for ``:latest``), the documents are re-serialised with the policy added.
    """
    lines = text.splitlines(keepends=True)
    out = []
    for line in lines:
        body = line.rstrip("\r\n")
        end = line[len(body) :]
        m = _POLICY_LINE_RE.match(body)
        out.append(f"{m.group(1)}{POLICY}{m.group(4)}{end}" if m else line)
    rewritten = "".join(out)
    docs = load_documents(rewritten)
    if all(c.get("imagePullPolicy") == POLICY for d in docs for c in iter_containers(d)):
        return rewritten
    for doc in docs:
        for container in iter_containers(doc):
            container["imagePullPolicy"] = POLICY
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)
