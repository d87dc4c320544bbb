"""Fake cluster operations for the job tests, run inside the job worker (see sitecustomize.py).

Each one has the real operation's signature and runs in a real OperationFrame (the cluster
lock, the operation record, phases), feeding the progress the runner events of EVENTS.
``KORAL_FAKE_JOB`` picks the behaviour: ok, fail, sleep, secret.
"""

from __future__ import annotations

import os
import time
from typing import Any

from koral_ansible.errors import OperationError
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.spec import ClusterSpec

MODE_ENV = "KORAL_FAKE_JOB"
SECRET_ENV = "KORAL_FAKE_JOB_SECRET"


def _ev(kind: str, host: str = "", **data: Any) -> dict[str, Any]:
    return {"event": kind, "uuid": "x", "stdout": "noise", "event_data": {"host": host, **data}}


EVENTS: list[dict[str, Any]] = [
    _ev("playbook_on_start"),
    _ev("playbook_on_play_start", play="Prepare nodes"),
    _ev("playbook_on_task_start", task="Install containerd"),
    _ev("runner_on_start", "n1", task="Install containerd"),
    _ev("runner_on_ok", "n1", task="Install containerd", res={"changed": True, "stdout": "big"}),
    _ev("runner_on_start", "n2", task="Install containerd"),
    _ev("runner_on_ok", "n2", task="Install containerd", res={"changed": False}),
    _ev("runner_on_skipped", "n2", task="Only on control"),
    _ev("runner_on_failed", "n1", task="Probe", ignore_errors=True, res={"msg": "ignored"}),
    _ev("playbook_on_task_start", task="Join the node"),
    _ev("runner_on_failed", "n2", task="Join the node", res={"msg": "kubeadm join failed", "rc": 1}),
    _ev("runner_on_unreachable", "n3", task="Join the node", res={"msg": "ssh: connect refused"}),
    _ev("playbook_on_stats"),
]


def _run(env: Env, name: str, operation: str) -> None:
    mode = os.environ.get(MODE_ENV, "ok")
    secret = os.environ.get(SECRET_ENV, "")
    progress = env.progress(operation)
    frame = OperationFrame(env, name, operation, busy=None, failed=None, progress=progress)
    with frame, frame.phase("join"):
        progress.message(f"joining with {secret}" if secret else "joining")
        for event in EVENTS:
            progress.runner_event(event)
        if mode == "sleep":
            time.sleep(60)
        if mode in ("fail", "secret"):
            raise OperationError(f"join failed on n2 (password {secret})" if secret else "join failed on n2")


def scale(env: Env, name: str, size: int | str, max_size: int | None = None) -> Any:
    _run(env, name, "scale")


def create(env: Env, spec: ClusterSpec) -> Any:
    if spec.registry and spec.registry.password is not None:
        os.environ[SECRET_ENV] = spec.registry.password.get_secret_value()
    _run(env, spec.name, "create")


def autoscaler_hook(env: Env, name: str, settings: Any) -> None:
    """In place of deploying cluster-autoscaler (an Ansible run against nodes that do not exist)."""
    env.progress("autoscaler").message(f"cluster-autoscaler {'deployed' if settings.enabled else 'removed'}")
