"""What the pages show, built from the library's own read views (``operations.query``), never copied.

Every value here is public: ``query.summary``/``detail`` leave secrets out (the spec's
``public_dict`` masks them), and nothing here reads the secret store.
"""

from __future__ import annotations

from typing import Any

from koral_ansible import versions
from koral_ansible.autoscaler.settings import load_settings
from koral_ansible.bundle.registry import list_bundles
from koral_ansible.locks import holder_of
from koral_ansible.operations import query
from koral_ansible.operations.context import Env
from koral_ansible.state import ClusterRecord


def busy(env: Env, name: str) -> str | None:
    """The holder of the cluster's lock (a CLI command or a console job), None when it is free."""
    return holder_of(env.paths.cluster_lock(name))


def autoscaling(env: Env, name: str) -> str:
    s = load_settings(env.paths, name)
    return f"on ({s.min_size}-{s.max_size})" if s.enabled else "off"


def sizing(record: ClusterRecord) -> tuple[str, str]:
    """CPU and memory per node as Mold's list shows them (the offering's name on CloudStack)."""
    spec = record.spec
    if record.provider == "cloudstack" and spec.compute_offering:
        return spec.compute_offering, spec.compute_offering
    return str(spec.cpu), f"{spec.memory} MiB"


def cluster_row(env: Env, record: ClusterRecord) -> dict[str, Any]:
    cpu, memory = sizing(record)
    return {
        **query.summary(record),
        "autoscaling": autoscaling(env, record.name),
        "cpu": cpu,
        "memory": memory,
        "busy": busy(env, record.name),
    }


def cluster_rows(env: Env) -> list[dict[str, Any]]:
    return [cluster_row(env, r) for r in env.store.list_clusters()]


def bundle_versions(env: Env) -> list[str]:
    """Kubernetes versions with a recorded bundle (newest first, no repeats), for the create form."""
    seen: list[str] = []
    for b in list_bundles(env.paths.home):
        if b.kubernetes_version not in seen:
            seen.append(b.kubernetes_version)
    return seen


def upgrade_targets(env: Env, record: ClusterRecord) -> list[str]:
    """Versions this cluster may upgrade to (``versions.check_upgrade``) that have a recorded bundle."""
    out = []
    for v in bundle_versions(env):
        try:
            versions.check_upgrade(record.spec.kubernetes_version, v)
        except ValueError:
            continue
        out.append(v)
    return out
