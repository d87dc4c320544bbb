"""The long-running controller: a reconcile pass for every local cluster, every ``interval`` seconds.

A short poll rather than a watch: each pass lists the Services anyway (level-triggered), and a
pass costs one list per cluster. A failing cluster (API down, stopped nodes) is logged and
retried at the next pass; it never stops the others or the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from koral_ansible.errors import KoralError
from koral_ansible.loadbalancer.reconcile import Result, local_clusters, reconcile, remove
from koral_ansible.operations.context import Env

log = logging.getLogger("koral.loadbalancer")


def one_pass(env: Env, only: str | None = None) -> tuple[list[Result], dict[str, str]]:
    """Reconcile every local cluster (or ``only``); results and the error of each cluster that failed."""
    results: list[Result] = []
    errors: dict[str, str] = {}
    for record in local_clusters(env):
        if only is not None and record.name != only:
            continue
        try:
            results.append(reconcile(env, record.name))
        except (KoralError, OSError, ValueError) as exc:
            errors[record.name] = str(exc)
            continue
        if env.store.find_cluster(record.name) is None:  # deleted while this pass ran
            remove(env, record.name)
    return results, errors


def serve(
    env: Env,
    interval: float,
    stop: threading.Event,
    only: str | None = None,
    on_pass: Callable[[list[Result], dict[str, str]], None] | None = None,
) -> None:
    while not stop.is_set():
        try:
            results, errors = one_pass(env, only)
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
        stop.wait(interval)
