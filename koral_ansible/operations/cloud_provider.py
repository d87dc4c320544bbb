"""Run the CloudStack Kubernetes Provider (the cloud controller manager CKS deploys) on a
CloudStack cluster whose bundle carries ``provider.yaml`` (``create``, after configure).

``playbooks/cloud_provider.yml`` (role ``cloud_provider``) applies the cloud-config Secret and the
bundle's provider.yaml on the first control-plane node. The key pair comes from
:func:`koral_ansible.providers.cloudstack.ccm_keys.ensure_ccm_keys` (a dedicated user, else the
operator's pair) and reaches the play only through the runner's 0600 secrets file; both halves
are added to the redactor before anything runs. docs/conformance/ccm.md says what the provider
needs and calls.
"""

from __future__ import annotations

from typing import Any

from koral_ansible.bundle import layout
from koral_ansible.bundle.resolve import ResolvedBundle
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.providers.base import Provider
from koral_ansible.providers.cloudstack.ccm_keys import CcmKeys, ensure_ccm_keys, provider_may_start
from koral_ansible.state import ClusterRecord

PLAYBOOK = "cloud_provider.yml"


def wanted(record: ClusterRecord, bundle: ResolvedBundle | None) -> bool:
    """Only CloudStack clusters, and only when the bundle carries the provider's manifest."""
    return (
        record.spec.provider == "cloudstack"
        and bundle is not None
        and layout.PROVIDER_YAML in bundle.manifest.files
    )


def play_vars(api_url: str, keys: CcmKeys) -> tuple[dict[str, Any], dict[str, str]]:
    """(extravars, secrets) of playbooks/cloud_provider.yml: the keys only in the secrets. No zone:
    the spec may name it by id, and the provider reads the zone name from its VM (cloudstack.go
    GetZone)."""
    extra = {"cloud_provider_api_url": api_url}
    secrets = {"cloud_provider_api_key": keys.api_key, "cloud_provider_secret_key": keys.secret_key}
    return extra, secrets


def deploy_cloud_provider(
    env: Env, frame: OperationFrame, record: ClusterRecord, provider: Provider, bundle: ResolvedBundle | None
) -> bool:
    """Apply the provider and its Secret when :func:`wanted`; False when there was nothing to do."""
    if not wanted(record, bundle):
        return False
    from koral_ansible.operations.create import converge  # create imports this module

    client = provider.client  # type: ignore[attr-defined]  # CloudStackProvider
    keys = ensure_ccm_keys(client, record.name)
    env.redactor.add(keys.api_key)
    env.redactor.add(keys.secret_key)
    if not keys.dedicated:
        frame.event(
            "cloud-provider",
            "warning",
            "the cloud refused a dedicated user for the cloud controller manager: it uses the "
            "operator's key pair",
        )
    if not provider_may_start(client):
        frame.event(
            "cloud-provider",
            "warning",
            "the cloud refuses listManagementServersMetrics to this account (admin only): the "
            "CloudStack provider stops at start-up until the account's role is granted that API",
        )
    extra, secrets = play_vars(client.config.where, keys)
    first = record.control_nodes[0].name if record.control_nodes else None
    converge(env, frame, record, PLAYBOOK, limit=first, extra=extra, secrets=secrets)
    return True
