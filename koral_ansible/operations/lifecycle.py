"""Day-2 operations: scale, remove-node, start, stop, reset, upgrade, recover.

Each runs in an :class:`OperationFrame` (lock, phases, events; Alert on failure like CKS) and
is driven by recorded state rather than by what the last run remembered, so any of them can be
re-run after a failure or a kill and continues: scale joins the workers it added or left Joining
(stop, start and recover keep a worker Joining, so a later scale still finishes its join),
upgrade skips nodes already at the target version (the roles check), stop/start are idempotent.
"""

from __future__ import annotations

from typing import Any

from koral_ansible import versions
from koral_ansible.bundle import ResolvedBundle, resolve_bundle
from koral_ansible.errors import InputError
from koral_ansible.inventory import release_vars
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge, provider_for
from koral_ansible.rules import records as rule_records
from koral_ansible.spec import ClusterSpec, max_cluster_size, validate_spec
from koral_ansible.state import ClusterRecord, ClusterState, NodeRecord

SCALABLE = {ClusterState.RUNNING, ClusterState.ALERT, ClusterState.SCALING}
# Node state of a worker whose machine exists but which has not joined Kubernetes yet.
JOINING = "Joining"


def _refuse_state(record: ClusterRecord, allowed: set[ClusterState], operation: str) -> None:
    if record.state not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        raise InputError(
            "NAME", f"cluster {record.name!r} is {record.state.value}; {operation} needs one of: {names}"
        )


def _limit(record: ClusterRecord, nodes: list[NodeRecord]) -> str:
    """--limit for a run that touches only ``nodes`` plus the first control node (token, kubectl)."""
    first = record.control_nodes[0].name if record.control_nodes else ""
    names = [first] + [n.name for n in nodes if n.name != first]
    return ",".join(n for n in names if n)


def check_scale(
    env: Env, name: str, size: int | str, max_size: int | None = None
) -> tuple[ClusterRecord, ClusterSpec]:
    """Every refusal of ``scale`` (before anything changes): the record and the resized spec."""
    record = env.store.get_cluster(name)
    target = _resize(record, size, max_cluster_size() if max_size is None else max_size)
    _refuse_named_surplus(env, record, target.size)
    _refuse_state(record, SCALABLE, "scale")
    return record, target


def scale(env: Env, name: str, size: int | str, max_size: int | None = None) -> ClusterRecord:
    """Set the worker count to ``size``: add and join new workers, or drain and remove the newest."""
    record, target = check_scale(env, name, size, max_size)
    members = _members_before(env, record)
    progress = env.progress("scale")
    with OperationFrame(
        env,
        name,
        "scale",
        busy=ClusterState.SCALING,
        failed=ClusterState.ALERT,
        params={"size": target.size, "members": members},
        progress=progress,
    ) as frame:
        provider = provider_for(env, record.spec, report=progress.message)
        workers = record.workers
        if target.size > len(workers):
            with frame.phase("provision"):
                for node in provider.add_workers(record.spec, target.size - len(workers)):
                    env.store.set_node_state(name, node.name, JOINING)
        record = env.store.get_cluster(name)
        # Node state says whether the machine runs (the provider sets Running); membership is
        # ours: workers this scale added (not members when it first started) or left Joining.
        pending = [n for n in record.workers if n.name not in members or n.state == JOINING]
        if pending:
            with frame.phase("join"):
                converge(env, frame, record, "scale.yml", limit=_limit(record, pending))
                for node in pending:
                    env.store.set_node_state(name, node.name, "Running")
        surplus = sorted(record.workers, key=lambda n: n.idx, reverse=True)[
            : max(0, len(record.workers) - target.size)
        ]
        for node in surplus:
            _remove(env, frame, record, node, graceful=True)
            record = env.store.get_cluster(name)
        env.store.set_spec(target)
        env.store.set_state(name, ClusterState.RUNNING)
    return env.store.get_cluster(name)


def _refuse_named_surplus(env: Env, record: ClusterRecord, size: int) -> None:
    """A scale-down removes the newest workers: not one that a network rule names."""
    newest = sorted(record.workers, key=lambda n: n.idx, reverse=True)[: max(0, len(record.workers) - size)]
    for node in newest:
        named = rule_records.naming_node(env.store, record.name, node.name)
        if named:
            which = ", ".join(f"{r.kind} {r.name}" for r in named)
            raise InputError(
                "--size",
                f"scaling to {size} removes {node.name}, named by network rule(s) {which}; delete them first",
            )


def _members_before(env: Env, record: ClusterRecord) -> list[str]:
    """Nodes that were cluster members when this scale first started (kept across resumes)."""
    last = env.store.last_operation(record.name)
    if (
        last is not None
        and last.operation == "scale"
        and last.status in ("running", "failed", "interrupted")
        and isinstance(last.params.get("members"), list)
    ):
        return [str(n) for n in last.params["members"]]
    return [n.name for n in record.nodes if n.state != JOINING]


def _resize(record: ClusterRecord, size: int | str, max_size: int) -> ClusterSpec:
    data = record.spec.model_dump(mode="python")
    data["size"] = size
    return validate_spec(data, max_size=max_size)


def _remove(env: Env, frame: OperationFrame, record: ClusterRecord, node: NodeRecord, graceful: bool) -> None:
    """Drain (when graceful), delete the Node object, reset it if reachable, destroy its machine."""
    with frame.phase(f"remove:{node.name}"):
        env.store.set_node_state(record.name, node.name, "Removing")
        converge(
            env,
            frame,
            record,
            "remove-node.yml",
            limit=_limit(record, [node] if graceful else []),
            extra={"remove_node_name": node.name, "remove_node_graceful": graceful},
        )
        provider_for(env, record.spec).remove_node(record.spec, node)
        env.store.remove_node(record.name, node.name)


def check_remove_node(env: Env, name: str, node_name: str) -> tuple[ClusterRecord, NodeRecord]:
    """Every refusal of ``remove-node`` (before anything changes): the record and the node."""
    record = env.store.get_cluster(name)
    node = next((n for n in record.nodes if n.name == node_name), None)
    if node is None:
        known = ", ".join(n.name for n in record.nodes) or "none"
        raise InputError("NODE", f"cluster {name!r} has no node {node_name!r} (nodes: {known})")
    if node.is_control:
        if len(record.control_nodes) == 1:
            raise InputError("NODE", f"{node_name} is the last control-plane node; it can never be removed")
        raise InputError(
            "NODE",
            f"{node_name} is a control-plane node; remove-node takes worker nodes (control plane is fixed)",
        )
    if len(record.workers) == 1:
        raise InputError("NODE", f"{node_name} is the last worker; a cluster keeps at least 1 (size 1..max)")
    named = rule_records.naming_node(env.store, name, node_name)
    if named:
        which = ", ".join(f"{r.kind} {r.name}" for r in named)
        raise InputError("NODE", f"{node_name} is named by network rule(s) {which}; delete them first")
    _refuse_state(record, SCALABLE | {ClusterState.REMOVING_NODES}, "remove-node")
    return record, node


def remove_node(env: Env, name: str, node_name: str, ungraceful: bool = False) -> ClusterRecord:
    """Remove one chosen worker node; ``ungraceful`` skips the drain (a dead node)."""
    record, node = check_remove_node(env, name, node_name)
    progress = env.progress("remove-node")
    with OperationFrame(
        env,
        name,
        "remove-node",
        busy=ClusterState.REMOVING_NODES,
        failed=ClusterState.ALERT,
        params={"node": node_name},
        progress=progress,
    ) as frame:
        _remove(env, frame, record, node, graceful=not ungraceful)
        env.store.set_spec(record.spec.replace(size=len(record.workers) - 1))
        env.store.set_state(name, ClusterState.RUNNING)
    return env.store.get_cluster(name)


def check_stop(env: Env, name: str) -> ClusterRecord:
    """Every refusal of ``stop`` (before anything changes)."""
    record = env.store.get_cluster(name)
    _refuse_state(
        record,
        {ClusterState.RUNNING, ClusterState.STOPPED, ClusterState.STOPPING, ClusterState.ALERT},
        "stop",
    )
    return record


def stop(env: Env, name: str) -> ClusterRecord:
    record = check_stop(env, name)
    joining = _joining_workers(env, record)
    progress = env.progress("stop")
    with OperationFrame(
        env,
        name,
        "stop",
        busy=ClusterState.STOPPING,
        failed=ClusterState.ALERT,
        params={"joining": joining},
        progress=progress,
    ) as frame:
        with frame.phase("stop-nodes"):
            provider_for(env, record.spec, report=progress.message).stop(record.spec)
        _set_machine_state(env, name, "Stopped", joining)
        env.store.set_state(name, ClusterState.STOPPED)
    return env.store.get_cluster(name)


def check_start(env: Env, name: str, operation: str = "start") -> ClusterRecord:
    """Every refusal of ``start`` / ``recover`` (before anything changes)."""
    record = env.store.get_cluster(name)
    allowed = {ClusterState.STOPPED, ClusterState.STARTING, ClusterState.RUNNING, ClusterState.ALERT}
    _refuse_state(record, allowed, operation)
    return record


def start(env: Env, name: str, operation: str = "start") -> ClusterRecord:
    """Start every node (control plane first), then wait for the API and every node Ready."""
    record = check_start(env, name, operation)
    joining = _joining_workers(env, record)
    progress = env.progress(operation)
    busy = ClusterState.RECOVERING if operation == "recover" else ClusterState.STARTING
    with OperationFrame(
        env,
        name,
        operation,
        busy=busy,
        failed=ClusterState.ALERT,
        params={"joining": joining},
        progress=progress,
    ) as frame:
        with frame.phase("start-nodes"):
            provider_for(env, record.spec, report=progress.message).start(record.spec)
        _set_machine_state(env, name, "Running", joining)
        with frame.phase("wait-ready"):
            converge(env, frame, env.store.get_cluster(name), "wait-ready.yml", limit=_limit(record, []))
        env.store.set_state(name, ClusterState.RUNNING)
    return env.store.get_cluster(name)


def _joining_workers(env: Env, record: ClusterRecord) -> list[str]:
    """Workers that scale added but has not joined yet: Joining now, or Joining when a stop, start
    or recover that did not finish began (providers record machine states over node states)."""
    names = {n.name for n in record.workers if n.state == JOINING}
    last = env.store.last_operation(record.name)
    if (
        last is not None
        and last.operation in ("stop", "start", "recover")
        and last.status in ("running", "failed", "interrupted")
        and isinstance(last.params.get("joining"), list)
    ):
        names |= {str(n) for n in last.params["joining"]}
    return sorted(names & {n.name for n in record.workers})


def _set_machine_state(env: Env, name: str, state: str, joining: list[str]) -> None:
    """Record every node's machine state, but keep ``joining`` workers Joining: that is membership,
    which only scale settles (it joins them on its next run); stop/start/recover must not erase it."""
    for node in env.store.get_cluster(name).nodes:
        env.store.set_node_state(name, node.name, JOINING if node.name in joining else state)


def recover(env: Env, name: str) -> ClusterRecord:
    """Bring an Alert cluster back to Running once its nodes are back (CKS: Alert -> Recovering)."""
    return start(env, name, operation="recover")


def reset(env: Env, name: str) -> ClusterRecord:
    """kubeadm reset on every node, flush CNI and firewall state, keep the machines (state Created)."""
    record = env.store.get_cluster(name)
    progress = env.progress("reset")
    with OperationFrame(
        env, name, "reset", busy=ClusterState.DESTROYING, failed=ClusterState.ERROR, progress=progress
    ) as frame:
        with frame.phase("reset"):
            converge(env, frame, record, "reset.yml", extra={"reset_confirmation": True})
        env.paths.kubeconfig(name).unlink(missing_ok=True)
        for node in record.nodes:
            env.store.set_node_state(name, node.name, "Reset")
        env.store.set_state(name, ClusterState.CREATED)
    return env.store.get_cluster(name)


def check_upgrade(env: Env, name: str, version: str) -> tuple[ClusterRecord, str, ResolvedBundle]:
    """Every refusal of ``upgrade`` (before anything changes): the record, target and its bundle."""
    record = env.store.get_cluster(name)
    try:
        target = str(versions.check_upgrade(record.spec.kubernetes_version, version))
    except ValueError as exc:
        raise InputError("--version", str(exc)) from None
    _refuse_state(record, {ClusterState.RUNNING, ClusterState.ALERT, ClusterState.UPGRADING}, "upgrade")
    # The upgrade installs the new kubeadm, kubelet, kubectl and images from the target's bundle
    # (roles/kubernetes_upgrade has no online path): without one the run could only fail inside
    # Ansible (kubeadm refuses a version above its own) and leave the cluster in Alert.
    bundle = resolve_bundle(env.paths.home, None, target, deep=True)
    if bundle is None:
        raise InputError(
            "--version",
            f"no bundle for Kubernetes {target} is recorded; build one with "
            f"koral-play bundle build --kubernetes-version {target} "
            "and record it with koral-play bundle verify PATH --record",
        )
    return record, target, bundle


def upgrade(env: Env, name: str, version: str) -> ClusterRecord:
    """Upgrade to the next minor (or a later patch): etcd snapshot, control plane, then workers."""
    record, target, bundle = check_upgrade(env, name, version)
    progress = env.progress("upgrade")
    with OperationFrame(
        env,
        name,
        "upgrade",
        busy=ClusterState.UPGRADING,
        failed=ClusterState.ALERT,
        params={"version": target},
        progress=progress,
    ) as frame:
        with frame.phase("etcd-backup", skip_if_done=True) as needed:
            if needed:  # one snapshot per upgrade: a resumed upgrade keeps the first one
                converge(env, frame, record, "etcd-backup.yml", limit=_limit(record, []))
        with frame.phase("upgrade"):
            extra: dict[str, Any] = {
                "koral_kubernetes_version": target,
                **release_vars(target),
                **bundle.ansible_vars(),
            }
            converge(env, frame, record, "upgrade.yml", extra=extra)
        env.store.set_spec(record.spec.replace(kubernetes_version=target, bundle=str(bundle.path)))
        env.store.set_state(name, ClusterState.RUNNING)
    return env.store.get_cluster(name)
