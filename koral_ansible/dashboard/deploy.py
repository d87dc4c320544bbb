"""Apply the Kubernetes dashboard to a cluster, or remove it (``create --dashboard``,
``dashboard NAME --enable|--disable``).

Runs ``playbooks/dashboard.yml`` (role ``dashboard``) on the first control-plane node in a
``dashboard`` operation (cluster lock, events, runner artifacts). The role applies the bundle's
dashboard.yaml with the real kubectl of the bundle on that node, images moved to the cluster's
private registry (``koral_registry_url`` of the inventory) when one is configured.
"""

from __future__ import annotations

from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge

PLAYBOOK = "dashboard.yml"


def role_vars(enabled: bool) -> dict[str, str]:
    """Extra vars of playbooks/dashboard.yml (no secrets)."""
    return {"dashboard_state": "present" if enabled else "absent"}


def apply_dashboard(env: Env, name: str, enabled: bool) -> None:
    """Apply (enabled) or delete (disabled) the dashboard and its login ServiceAccount."""
    record = env.store.get_cluster(name)
    first = record.control_nodes[0].name if record.control_nodes else None
    frame = OperationFrame(env, name, "dashboard", busy=None, failed=None, progress=env.progress("dashboard"))
    with frame, frame.phase("apply" if enabled else "remove"):
        converge(env, frame, record, PLAYBOOK, limit=first, extra=role_vars(enabled))
