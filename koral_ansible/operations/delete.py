"""Delete a cluster: every recorded resource, the machines, keys, kubeconfig and state rows."""

from __future__ import annotations

import shutil

from koral_ansible.autoscaler import settings as autoscaling
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import provider_for
from koral_ansible.state import ClusterState


def delete(env: Env, name: str) -> bool:
    """Remove the cluster; returns False when there was nothing to delete (not an error)."""
    record = env.store.find_cluster(name)
    if record is None:
        return False
    progress = env.progress("delete")
    with OperationFrame(
        env, name, "delete", busy=ClusterState.DESTROYING, failed=ClusterState.ERROR, progress=progress
    ) as frame:
        provider = provider_for(env, record.spec, report=progress.message)
        with frame.phase("destroy"):
            provider.destroy(record.spec)
        with frame.phase("forget"):
            env.store.set_state(name, ClusterState.DESTROYED)
            env.store.forget_cluster(name)
            autoscaling.forget(env.paths, name)
            shutil.rmtree(env.paths.cluster_dir(name), ignore_errors=True)
    return True
