"""The library API of ``koral-play firewall|port-forward|lb``: list, add, delete, re-apply.

add and delete hold the cluster's lock and run as an operation (events ``<kind>-add`` /
``<kind>-delete``); the rule is validated before anything changes (InputError, exit 2), applied to
the cloud, and recorded once the cloud has it (a failed apply leaves cloud objects recorded as
resources of a rule that does not exist: the next apply or ``delete`` of the cluster removes them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address

from koral_ansible.errors import InputError, OperationError
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import provider_for
from koral_ansible.rules import records
from koral_ansible.rules.model import Rule
from koral_ansible.state import ClusterRecord, ClusterState, now

# Cluster states in which the rules may change (the public IP and the nodes exist).
EDITABLE = {ClusterState.RUNNING, ClusterState.ALERT, ClusterState.STOPPED}


def rules(env: Env, name: str, kind: str | None = None) -> list[Rule]:
    env.store.get_cluster(name)
    return [r for r in records.load(env.store, name) if kind is None or r.kind == kind]


def _editable(record: ClusterRecord) -> None:
    if record.state not in EDITABLE:
        allowed = ", ".join(sorted(s.value for s in EDITABLE))
        raise InputError(
            "CLUSTER", f"cluster {record.name!r} is {record.state.value}; rules need one of: {allowed}"
        )


def apply(env: Env, record: ClusterRecord, wanted: Sequence[Rule], report: Callable[[str], None]) -> None:
    """Make the provider's rules match ``wanted``."""
    from koral_ansible.providers.cloudstack.provider import CloudStackProvider
    from koral_ansible.providers.local.provider import LocalProvider
    from koral_ansible.rules import cloudstack, local

    provider = provider_for(env, record.spec, report=report)
    if isinstance(provider, CloudStackProvider):
        cloudstack.reconcile(provider, wanted)
    elif isinstance(provider, LocalProvider):
        public_ip = IPv4Address(str(record.endpoint.get("public_ip", "")))
        local.apply(record.name, public_ip, wanted, env.store.nodes(record.name), provider.local_dir)
    else:
        raise OperationError(f"provider {record.provider} has no network rules")


def add(env: Env, name: str, build: Callable[[ClusterRecord, list[Rule]], Rule]) -> Rule:
    """Validate with ``build(record, existing)`` (raises InputError), apply, then record."""
    record = env.store.get_cluster(name)
    _editable(record)
    existing = records.load(env.store, name)
    rule = build(record, existing)
    if record.provider == "local":
        from koral_ansible.rules import local

        local.check(rule)
    progress = env.progress(f"{rule.kind}-add")
    with OperationFrame(env, name, f"{rule.kind}-add", busy=None, failed=None, progress=progress) as frame:
        # Re-read under the lock: another add may have taken the name or the ports meanwhile.
        existing = records.load(env.store, name)
        rule = build(env.store.get_cluster(name), existing)
        rule = dataclasses.replace(rule, created=now())
        with frame.phase("apply"):
            apply(env, record, [*existing, rule], progress.message)
        records.save(env.store, name, rule)
        frame.event("apply", "Recorded", f"{rule.kind} rule {rule.name} {rule.protocol} {rule.ports}")
    return rule


def delete(env: Env, name: str, kind: str, rule_name: str) -> Rule:
    record = env.store.get_cluster(name)
    existing = records.load(env.store, name)
    rule = next((r for r in existing if r.name == rule_name and r.kind == kind), None)
    if rule is None:
        known = ", ".join(r.name for r in existing if r.kind == kind) or "none"
        raise InputError("RULE", f"cluster {name!r} has no {kind} rule {rule_name!r} (rules: {known})")
    _editable(record)
    progress = env.progress(f"{kind}-delete")
    with OperationFrame(env, name, f"{kind}-delete", busy=None, failed=None, progress=progress) as frame:
        records.remove(env.store, name, rule.name)
        with frame.phase("apply"):
            apply(env, record, [r for r in existing if r.name != rule.name], progress.message)
    return rule
