"""Cluster operations: the library API the CLI and the tests call."""

from koral_ansible.operations.context import Env
from koral_ansible.operations.create import create
from koral_ansible.operations.delete import delete
from koral_ansible.operations.lifecycle import recover, remove_node, reset, scale, start, stop, upgrade
from koral_ansible.operations.query import detail, events, kubeconfig_path, node_row, summary, summary_wide

__all__ = [
    "Env",
    "create",
    "delete",
    "detail",
    "events",
    "kubeconfig_path",
    "node_row",
    "recover",
    "remove_node",
    "reset",
    "scale",
    "start",
    "stop",
    "summary",
    "summary_wide",
    "upgrade",
]
