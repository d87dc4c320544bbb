"""The ``local`` provider: podman nodes on this machine, with the host playing the cloud.

Public entry points for other parts of koral (and Molecule scenarios):

- :class:`LocalProvider` — the provider;
- :func:`ensure_image` — build/import the node image, return ``localhost/koral-node:<hash>``;
- :func:`image_ref` — that reference without building anything;
- :func:`podman_env` — ``CONTAINERS_CONF``/``CONTAINERS_STORAGE_CONF`` of koral's podman.

Imports are lazy so ``python -m koral_ansible.providers.local.image`` runs cleanly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from koral_ansible.providers.local.image import ensure_image, image_ref
    from koral_ansible.providers.local.podman import podman_env
    from koral_ansible.providers.local.provider import LocalProvider

_EXPORTS = {
    "LocalProvider": "koral_ansible.providers.local.provider",
    "ensure_image": "koral_ansible.providers.local.image",
    "image_ref": "koral_ansible.providers.local.image",
    "podman_env": "koral_ansible.providers.local.podman",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["LocalProvider", "ensure_image", "image_ref", "podman_env"]
