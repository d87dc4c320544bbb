"""The Mold / Apache CloudStack provider (through the ``cs`` client)."""

from koral_ansible.providers.cloudstack.config import CloudConfig, load_config
from koral_ansible.providers.cloudstack.provider import CloudStackProvider

__all__ = ["CloudConfig", "CloudStackProvider", "load_config"]
