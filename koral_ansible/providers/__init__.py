"""Providers: ``local`` (podman nodes on this machine) and ``cloudstack`` (Mold / Apache CloudStack)."""

from __future__ import annotations

import importlib

from koral_ansible.errors import InputError
from koral_ansible.providers.base import Endpoint, Provider, ProviderContext

_PROVIDERS = {
    "local": "koral_ansible.providers.local:LocalProvider",
    "cloudstack": "koral_ansible.providers.cloudstack:CloudStackProvider",
}


def get_provider(name: str, ctx: ProviderContext) -> Provider:
    """Instantiate the provider called ``name`` (imported lazily: the cloud client only when used)."""
    target = _PROVIDERS.get(name)
    if target is None:
        raise InputError("provider", f"must be one of {', '.join(_PROVIDERS)} (got {name!r})")
    module, cls = target.split(":")
    provider_cls: type[Provider] = getattr(importlib.import_module(module), cls)
    return provider_cls(ctx)


__all__ = ["Endpoint", "Provider", "ProviderContext", "get_provider"]
