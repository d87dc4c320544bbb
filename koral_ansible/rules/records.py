"""The user's rules in the state store (one home: the ``network_rules`` table)."""

from __future__ import annotations

from koral_ansible.rules.model import Rule
from koral_ansible.state import StateStore


def load(store: StateStore, cluster: str) -> list[Rule]:
    return [Rule.from_dict(d) for d in store.network_rules(cluster)]


def save(store: StateStore, cluster: str, rule: Rule) -> None:
    store.put_network_rule(cluster, rule.name, rule.to_dict())


def remove(store: StateStore, cluster: str, name: str) -> None:
    store.remove_network_rule(cluster, name)


def naming_node(store: StateStore, cluster: str, node: str) -> list[Rule]:
    """Rules that name ``node`` (a port forward's target, an LB rule's explicit member)."""
    return [r for r in load(store, cluster) if node in r.nodes]
