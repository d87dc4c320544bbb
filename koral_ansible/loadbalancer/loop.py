"""The long-running controller: a reconcile pass for a local cluster whenever its Services or Nodes
change, and for every local cluster each ``resync`` seconds.

Each cluster's Services and Nodes are watched through its API (koral_ansible.loadbalancer.watch:
list, then watch from the list's resourceVersion, as client-go informers do); an event that
matters wakes the loop, which runs one pass for that cluster. A pass still reads everything
itself (level-triggered), so events arriving together cost one pass, and the periodic resync
(also the first pass) is the safety net for anything a watch missed. Nodes matter only through
what a load balancer sends to (koral_ansible.loadbalancer.services.backends), so the kubelets'
status heartbeats wake nothing. The health checks of ``externalTrafficPolicy: Local`` Services
(koral_ansible.loadbalancer.health) are an input the API does not carry: every ``health_interval``
seconds the targets of the last pass are probed again, and a cluster whose answers changed gets a
pass. A failing cluster (API down, stopped nodes) is logged and retried at the next pass; it never
stops the others or the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from koral_ansible.errors import KoralError
from koral_ansible.loadbalancer import health, kubeapi
from koral_ansible.loadbalancer.reconcile import Result, local_clusters, reconcile, remove
from koral_ansible.loadbalancer.services import backends
from koral_ansible.loadbalancer.watch import Informer
from koral_ansible.operations.context import Env
from koral_ansible.state import ClusterRecord

log = logging.getLogger("koral.loadbalancer")

WAIT_SLICE = 0.5  # seconds: how often a quiet loop looks at its stop event
HEALTH_INTERVAL = 5.0  # seconds between probes of the Local Services' health checks (as cloud LBs)


def one_pass(
    env: Env, only: str | None = None, prober: health.Prober = health.probe_all
) -> tuple[list[Result], dict[str, str]]:
    """Reconcile every local cluster (or ``only``); results and the error of each cluster that failed."""
    results: list[Result] = []
    errors: dict[str, str] = {}
    for record in local_clusters(env):
        if only is not None and record.name != only:
            continue
        try:
            results.append(reconcile(env, record.name, prober=prober))
        except (KoralError, OSError, ValueError) as exc:
            errors[record.name] = str(exc)
            continue
        if env.store.find_cluster(record.name) is None:  # deleted while this pass ran
            remove(env, record.name)
    return results, errors


class Wake:
    """The clusters whose watches saw a change since the last take (thread-safe)."""

    def __init__(self) -> None:
        self._dirty: set[str] = set()
        self._cond = threading.Condition()

    def mark(self, cluster: str) -> None:
        with self._cond:
            self._dirty.add(cluster)
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        with self._cond:
            if not self._dirty:
                self._cond.wait(timeout)

    def pending(self) -> bool:
        with self._cond:
            return bool(self._dirty)

    def take(self) -> set[str]:
        with self._cond:
            out, self._dirty = self._dirty, set()
            return out


def _node_backends(node: dict[str, Any]) -> object:
    return tuple(str(ip) for ip in backends([node]))


def cluster_informers(env: Env, record: ClusterRecord, wake: Wake) -> list[Informer]:
    """The Services and Nodes informers of one cluster, started."""
    kubectl = kubeapi.find_kubectl(env.paths.home, record.spec.kubernetes_version)
    kubeconfig = env.paths.kubeconfig(record.name)

    def changed() -> None:
        wake.mark(record.name)

    informers = [
        Informer(kubectl, kubeconfig, "/api/v1/services", changed),
        Informer(kubectl, kubeconfig, "/api/v1/nodes", changed, relevant=_node_backends),
    ]
    for informer in informers:
        informer.start()
    return informers


Watcher = Callable[[Env, ClusterRecord, Wake], list[Informer]]


def serve(
    env: Env,
    interval: float,
    stop: threading.Event,
    only: str | None = None,
    on_pass: Callable[[list[Result], dict[str, str]], None] | None = None,
    watcher: Watcher | None = cluster_informers,
    prober: health.Prober = health.probe_all,
    health_interval: float = HEALTH_INTERVAL,
) -> None:
    """Run until ``stop``: a pass for every cluster each ``interval`` seconds (the resync), one for
    a cluster as soon as ``watcher``'s informers report a change in it (None: resync only), and one
    for a cluster whose Local Services' health checks (``prober``) answer otherwise than at its last
    pass, probed each ``health_interval`` seconds."""
    wake = Wake()
    watches: dict[str, list[Informer]] = {}
    probes: dict[str, dict[health.Target, bool]] = {}  # each cluster's last pass's health checks
    next_resync = next_health = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            dirty = wake.take()
            if now >= next_resync:
                next_resync = now + interval
                results = _pass(env, None, only, on_pass, prober)
                probes = {r.cluster: r.health for r in results if r.health}
            else:
                for name in sorted(dirty):
                    if only is None or name == only:
                        for r in _pass(env, name, only, on_pass, prober):
                            probes[r.cluster] = r.health
            if watcher is not None:
                _sync_watches(env, only, wake, watches, watcher)
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + health_interval
                for name, last in list(probes.items()):
                    if last and prober(last) != last:
                        wake.mark(name)
            while not stop.is_set() and not wake.pending():
                due = min(next_resync, next_health) if any(probes.values()) else next_resync
                if time.monotonic() >= due:
                    break
                wake.wait(min(WAIT_SLICE, max(0.0, due - time.monotonic())))
    finally:
        for informers in watches.values():
            for informer in informers:
                informer.stop()


def _pass(
    env: Env,
    cluster: str | None,
    only: str | None,
    on_pass: Callable[[list[Result], dict[str, str]], None] | None,
    prober: health.Prober,
) -> list[Result]:
    try:
        results, errors = one_pass(env, cluster or only, prober)
    except Exception as exc:
        log.error("load balancer pass failed: %s", exc)
        results, errors = [], {"*": str(exc)}
    for name, err in errors.items():
        log.warning("cluster %s: %s", name, err)
    for r in results:
        if r.host_changed or r.status_written:
            log.info("cluster %s: serving %s", r.cluster, ", ".join(r.served) or "nothing")
    if on_pass is not None:
        on_pass(results, errors)
    return results


def _sync_watches(
    env: Env, only: str | None, wake: Wake, watches: dict[str, list[Informer]], watcher: Watcher
) -> None:
    """Informers for exactly the local clusters there is something to do for."""
    try:
        records = {c.name: c for c in local_clusters(env) if only is None or c.name == only}
    except Exception as exc:
        log.error("listing clusters failed: %s", exc)
        return
    for name in [n for n in watches if n not in records]:
        for informer in watches.pop(name):
            informer.stop()
    for name, record in records.items():
        if name in watches:
            continue
        try:
            watches[name] = watcher(env, record, wake)
            log.info("cluster %s: watching Services and Nodes", name)
        except (KoralError, OSError) as exc:
            log.warning("cluster %s: cannot watch: %s", name, exc)
