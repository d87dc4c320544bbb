"""The ``local`` provider: podman nodes on this machine, with the host playing the cloud.

Public entry points for other parts of koral (and Molecule scenarios):

- :class:`LocalProvider` — the provider;
- :func:`ensure_image` — build/import the node image, return ``localhost/koral-node:<hash>``;
- :func:`podman_env` — ``CONTAINERS_CONF``/``CONTAINERS_STORAGE_CONF`` of koral's podman.
"""

from __future__ import annotations

from koral_ansible.providers.local.image import ensure_image, image_ref
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.providers.local.provider import LocalProvider

__all__ = ["LocalProvider", "ensure_image", "image_ref", "podman_env"]
