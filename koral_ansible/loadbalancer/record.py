"""What the controller last served for a cluster: one row per LoadBalancer Service it considered,
and the cluster's events when that changes.

The record is ``<local dir>/loadbalancer.json`` (written only when it changes, 0600, removed with
the cluster's directory on ``delete``); ``koral-play show`` reads it (:func:`load`). Each row:
``service`` (namespace/name), ``state`` (``serving`` or ``refused``), ``ports``
(``port/PROTOCOL`` comma-separated), ``address`` (the public address, served rows only),
``source_ranges`` (comma-separated CIDRs), ``reason`` (refused rows only), ``traffic_policy``
(``Cluster`` or ``Local``), ``backends`` (the node addresses a served Service sends to,
comma-separated; for Local the nodes whose health check answered, empty when none did). Nothing
secret is in a Service's spec fields used here.

Events (operation ``loadbalancer``, phase ``serve``): ``Serving`` when a Service starts being
served, ``Changed`` when a served Service's ports, address, ranges or backends change (a Local
Service's node gaining or losing its endpoint), ``Refused`` when a
Service is refused (or refused for another reason), ``Stopped`` when a served Service is no
longer served.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from koral_ansible.loadbalancer.rules import Plan
from koral_ansible.loadbalancer.services import LbService
from koral_ansible.paths import Paths, read_json_record, write_private
from koral_ansible.state import StateStore

RECORD = "loadbalancer.json"
OPERATION = "loadbalancer"
SERVING, REFUSED = "serving", "refused"


def _ports(svc: LbService) -> str:
    return ",".join(f"{p.port}/{p.protocol}" for p in svc.ports)


def rows(plan: Plan, wanted: Iterable[LbService]) -> list[dict[str, str]]:
    """The record's rows for one pass (sorted by Service)."""
    served = {s.key for s in plan.served}
    out = []
    for svc in wanted:
        ranges = ",".join(str(n) for n in svc.source_ranges)
        if svc.key in served:
            to = ",".join(str(n) for n in plan.backends.get(svc.key, ()))
            row = {"state": SERVING, "address": str(plan.public_ip), "reason": "", "backends": to}
        else:
            row = {"state": REFUSED, "address": "", "reason": plan.refused.get(svc.key, ""), "backends": ""}
        policy = "Local" if svc.local else "Cluster"
        out.append(
            {
                "service": svc.key,
                **row,
                "ports": _ports(svc),
                "source_ranges": ranges,
                "traffic_policy": policy,
            }
        )
    return sorted(out, key=lambda r: r["service"])


def load(paths: Paths, cluster: str) -> list[dict[str, Any]]:
    """The rows last recorded for ``cluster`` (none yet: empty)."""
    data = read_json_record(paths.local_dir(cluster) / RECORD, "load-balancer record")
    return list(data.get("services") or []) if isinstance(data, dict) else []


def _message(row: dict[str, Any]) -> str:
    where = f"{row['address']} {row['ports']}" if row["address"] else row["ports"]
    text = f"{row['service']} {where} from {row['source_ranges']}"
    if row["state"] == REFUSED:
        return f"{text}: {row['reason']}"
    if "backends" not in row:  # a row recorded before backends were
        return text
    to = row["backends"] or "no node (no endpoint answers its health check)"
    return f"{text} to {to}"


def changes(before: list[dict[str, Any]], after: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(result, message) of each change from ``before`` to ``after``."""
    old = {r["service"]: r for r in before}
    new = {r["service"]: r for r in after}
    out: list[tuple[str, str]] = []
    for key, row in new.items():
        prev = old.get(key)
        if row["state"] == REFUSED:
            if prev is None or prev.get("state") != REFUSED or prev.get("reason") != row["reason"]:
                out.append(("Refused", _message(row)))
        elif prev is None or prev.get("state") != SERVING:
            out.append(("Serving", _message(row)))
        elif prev != row:
            out.append(("Changed", _message(row)))
    for key, prev in old.items():
        if key not in new and prev.get("state") == SERVING:
            out.append(("Stopped", f"{key} no longer served"))
    return out


def update(paths: Paths, store: StateStore, cluster: str, after: list[dict[str, str]]) -> bool:
    """Record ``after`` and log its changes as the cluster's events; whether anything changed."""
    before = load(paths, cluster)
    if before == after:
        return False
    for result, message in changes(before, after):
        store.event(cluster, OPERATION, "serve", result, message)
    write_private(paths.local_dir(cluster) / RECORD, json.dumps({"services": after}, indent=2) + "\n")
    return True


def forget(paths: Paths, cluster: str) -> None:
    """Remove the record (the cluster's load balancer is gone)."""
    (paths.local_dir(cluster) / RECORD).unlink(missing_ok=True)
