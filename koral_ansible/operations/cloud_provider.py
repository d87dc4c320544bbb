"""Run the CloudStack Kubernetes Provider (the cloud controller manager CKS deploys) on a
CloudStack cluster whose bundle carries ``provider.yaml`` (``create``, after configure; then
``koral-play cloud-provider NAME [--rotate-keys]`` re-applies it, with a new key pair on request).

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
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.providers.base import Provider
from koral_ansible.providers.cloudstack.ccm_keys import CcmKeys, ensure_ccm_keys, provider_may_start
from koral_ansible.state import ClusterRecord, ClusterState

OPERATION = "cloud-provider"
REAPPLY_STATES = frozenset({ClusterState.RUNNING, ClusterState.ALERT})

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
    env: Env,
    frame: OperationFrame,
    record: ClusterRecord,
    provider: Provider,
    bundle: ResolvedBundle | None,
    rotate: bool = False,
) -> CcmKeys | None:
    """Apply the provider and its Secret when :func:`wanted` (``rotate``: with a new key pair for
    the dedicated user, the old one refused from then on); the keys used, None when there was
    nothing to do."""
    if not wanted(record, bundle):
        return None
    from koral_ansible.operations.create import converge  # create imports this module

    client = provider.client  # type: ignore[attr-defined]  # CloudStackProvider
    keys = ensure_ccm_keys(client, record.name, rotate=rotate)
    env.redactor.add(keys.api_key)
    env.redactor.add(keys.secret_key)
    if rotate and keys.dedicated:
        frame.event(
            "cloud-provider",
            "Completed",
            f"new API key pair for {keys.user}: the old pair is refused from now on; the provider "
            "restarts with the new one",
        )
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
    return keys


def reapply(env: Env, name: str, rotate: bool = False, provider: Provider | None = None) -> dict[str, Any]:
    """``koral-play cloud-provider NAME``: apply the provider and its Secret again on a running
    CloudStack cluster (a changed provider.yaml, a Secret someone removed), with ``rotate`` a new
    key pair first. Killed or failed after a rotation, a re-run without ``rotate`` applies the new
    pair (the user holds only that one). Bad input (exit 2) before anything changes."""
    from koral_ansible.operations.create import provider_for, resolve_spec_bundle

    record = env.store.get_cluster(name)
    if record.spec.provider != "cloudstack":
        raise InputError(
            "NAME",
            f"{name} is a {record.spec.provider} cluster: only CloudStack clusters run the cloud provider",
        )
    if record.state not in REAPPLY_STATES:
        allowed = ", ".join(sorted(s.value for s in REAPPLY_STATES))
        raise InputError(
            "NAME", f"cluster {name!r} is {record.state.value}; cloud-provider needs one of: {allowed}"
        )
    bundle = resolve_spec_bundle(env, record.spec)
    if not wanted(record, bundle):
        raise InputError(
            "NAME",
            f"the bundle of {name} carries no {layout.PROVIDER_YAML}; build one with "
            "'koral-play bundle build ... --provider-yaml FILE' and record it",
        )
    cloud = provider or provider_for(env, record.spec)
    frame = OperationFrame(
        env,
        name,
        OPERATION,
        busy=None,
        failed=None,
        params={"rotate_keys": rotate},
        progress=env.progress(OPERATION),
    )
    with frame, frame.phase("apply"):
        keys = deploy_cloud_provider(env, frame, record, cloud, bundle, rotate=rotate)
    assert keys is not None  # wanted() held
    return {
        "name": name,
        "user": keys.user,
        "dedicated": keys.dedicated,
        "rotated": rotate and keys.dedicated,
    }
