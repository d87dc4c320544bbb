"""Deploy cluster-autoscaler into a cluster, or remove it: the ``autoscale`` ON_CHANGE hook.

Runs ``playbooks/autoscaler.yml`` (role ``cluster_autoscaler``) on the first control-plane node
in an ``autoscaler`` operation (cluster lock, events, runner artifacts). Certificate material is
never an extra var: the role reads the files from the controller paths it is given, and its
Secret is written with no_log.

The service address is what cluster-autoscaler dials: ``--service-address`` of
``autoscale --enable``, recorded with the settings; by default, for local clusters, the
cluster network's gateway (the host, where ``koral-play autoscaler serve`` runs) on port 8086.
"""

from __future__ import annotations

from typing import Any

from koral_ansible.autoscaler.certs import ensure_certs
from koral_ansible.autoscaler.settings import AutoscaleSettings
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge
from koral_ansible.state import ClusterRecord

PLAYBOOK = "autoscaler.yml"
DEFAULT_PORT = 8086


def split_address(address: str, field: str = "--service-address") -> tuple[str, int]:
    """HOST:PORT (IPv6 as [addr]:PORT) -> (host, port); InputError names ``field``."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(field, f"must be HOST:PORT with a port 1..65535 (got {address!r})")
    return host, int(port)


def default_service_address(record: ClusterRecord) -> str | None:
    """Local clusters: the network gateway (the host itself, the cluster's public IP); else None
    (on a cloud the address of the machine running the service is not known to koral)."""
    if record.provider != "local":
        return None
    gateway = str(record.endpoint.get("public_ip") or "")
    return f"{gateway}:{DEFAULT_PORT}" if gateway else None


def service_address(record: ClusterRecord, given: str | None) -> str:
    """The address to record for ``autoscale --enable``: ``given`` (checked) or the default."""
    if given:
        split_address(given)
        return given
    default = default_service_address(record)
    if default is None:
        raise InputError(
            "--service-address",
            f"is required for {record.provider} clusters: HOST:PORT where 'koral-play autoscaler serve' "
            "listens and the cluster's nodes can reach it",
        )
    return default


def role_vars(env: Env, name: str, s: AutoscaleSettings) -> dict[str, Any]:
    """Extra vars of playbooks/autoscaler.yml for the settings (paths only, no secrets)."""
    if not s.enabled:
        return {"cluster_autoscaler_state": "absent"}
    host, _port = split_address(s.service_address)
    certs = ensure_certs(env.paths, name, [host])
    return {
        "cluster_autoscaler_state": "present",
        "cluster_autoscaler_min_size": s.min_size,
        "cluster_autoscaler_max_size": s.max_size,
        "cluster_autoscaler_service_address": s.service_address,
        "cluster_autoscaler_ca_cert_file": str(certs.ca_cert),
        "cluster_autoscaler_client_cert_file": str(certs.client_cert),
        "cluster_autoscaler_client_key_file": str(certs.client_key),
    }


def apply_autoscaler(env: Env, name: str, s: AutoscaleSettings) -> None:
    """ON_CHANGE hook: deploy cluster-autoscaler (enabled) or remove it (disabled)."""
    record = env.store.get_cluster(name)
    extra = role_vars(env, name, s)
    first = record.control_nodes[0].name if record.control_nodes else None
    progress = env.progress("autoscaler")
    frame = OperationFrame(env, name, "autoscaler", busy=None, failed=None, progress=progress)
    with frame, frame.phase("deploy" if s.enabled else "remove"):
        converge(env, frame, record, PLAYBOOK, limit=first, extra=extra)
