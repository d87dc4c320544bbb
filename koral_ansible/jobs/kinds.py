"""What each job kind checks before it is started and what its worker runs.

``check`` is the same code the CLI runs before anything changes (an InputError names the field),
``run`` calls the library operation exactly as the CLI command does. ``params`` names every
parameter a kind takes; ``secrets`` the secret inputs (given to the worker apart, never stored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from koral_ansible import kubeconfig as user_kubeconfig
from koral_ansible import operations
from koral_ansible.autoscaler.change import AutoscaleChange, apply_change, check_change
from koral_ansible.autoscaler.settings import manual_scale_refusal
from koral_ansible.create_input import CREATE_FIELDS, build_create_spec
from koral_ansible.errors import InputError
from koral_ansible.operations import lifecycle
from koral_ansible.operations.context import Env
from koral_ansible.operations.create import check_create
from koral_ansible.spec import ClusterSpec, max_cluster_size

Params = dict[str, Any]
Secrets = dict[str, str]


@dataclass(frozen=True)
class Kind:
    name: str
    check: Callable[[Env, str, Params, Secrets], None]
    run: Callable[[Env, str, Params, Secrets], None]
    params: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()

    def check_inputs(self, params: Params, secrets: Secrets) -> None:
        """Unknown or missing parameters and secrets, before the kind's own checks."""
        for key in params:
            if key not in self.params:
                allowed = ", ".join(self.params) or "none"
                raise InputError(key, f"is not a parameter of {self.name}; allowed: {allowed}")
        for key in self.required:
            if params.get(key) in (None, ""):
                raise InputError(key, f"is required for {self.name}")
        for key in secrets:
            if key not in self.secrets:
                allowed = ", ".join(self.secrets) or "none"
                raise InputError(key, f"is not a secret input of {self.name}; allowed: {allowed}")


def _create_spec(env: Env, cluster: str, params: Params, secrets: Secrets) -> ClusterSpec:
    return build_create_spec(
        cluster, params, secrets.get("registry_password"), max_size=max_cluster_size(field="--max-size")
    )


def _check_create(env: Env, cluster: str, params: Params, secrets: Secrets) -> None:
    check_create(env, _create_spec(env, cluster, params, secrets))


def _run_create(env: Env, cluster: str, params: Params, secrets: Secrets) -> None:
    operations.create(env, _create_spec(env, cluster, params, secrets))


def _check_scale(env: Env, cluster: str, params: Params, _s: Secrets) -> None:
    env.store.get_cluster(cluster)
    refusal = manual_scale_refusal(env.paths, cluster)
    if refusal is not None:
        raise refusal
    lifecycle.check_scale(env, cluster, params["size"], max_cluster_size(field="--max-size"))


def _run_scale(env: Env, cluster: str, params: Params, secrets: Secrets) -> None:
    _check_scale(env, cluster, params, secrets)
    operations.scale(env, cluster, params["size"], max_size=max_cluster_size(field="--max-size"))


def _check_remove_node(env: Env, cluster: str, params: Params, _s: Secrets) -> None:
    lifecycle.check_remove_node(env, cluster, str(params["node"]))


def _run_remove_node(env: Env, cluster: str, params: Params, _s: Secrets) -> None:
    operations.remove_node(env, cluster, str(params["node"]), ungraceful=bool(params.get("ungraceful")))


def _check_upgrade(env: Env, cluster: str, params: Params, _s: Secrets) -> None:
    lifecycle.check_upgrade(env, cluster, str(params["version"]))


def _run_upgrade(env: Env, cluster: str, params: Params, _s: Secrets) -> None:
    operations.upgrade(env, cluster, str(params["version"]))


def _check_stop(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    lifecycle.check_stop(env, cluster)


def _run_stop(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    operations.stop(env, cluster)


def _check_start(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    lifecycle.check_start(env, cluster)


def _run_start(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    operations.start(env, cluster)


def _check_recover(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    lifecycle.check_start(env, cluster, "recover")


def _run_recover(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    operations.recover(env, cluster)


def _check_reset(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    env.store.get_cluster(cluster)


def _run_reset(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    operations.reset(env, cluster)


def _check_delete(_env: Env, _cluster: str, _p: Params, _s: Secrets) -> None:
    """Deleting a cluster that does not exist is not an error (``koral-play delete`` says so)."""


def _run_delete(env: Env, cluster: str, _p: Params, _s: Secrets) -> None:
    progress = env.progress("delete")
    if not operations.delete(env, cluster):
        progress.message(f"no cluster named {cluster!r}; nothing to delete")
    _changed, problems = user_kubeconfig.remove(cluster)  # as `koral-play delete` does
    for problem in problems:
        progress.message(f"warning: {problem}; remove context {user_kubeconfig.entry_name(cluster)} by hand")


def _autoscale_change(env: Env, cluster: str, params: Params) -> tuple[AutoscaleChange, int]:
    enable = params["enable"]
    if not isinstance(enable, bool):
        raise InputError("enable", f"must be true or false (got {enable!r})")
    limit = max_cluster_size(field="--max-size")
    change = check_change(
        env,
        cluster,
        enable,
        not enable,
        params.get("min"),
        params.get("max"),
        params.get("service_address"),
        limit,
    )
    assert change is not None  # enable or disable was given
    return change, limit


def _check_autoscale(env: Env, cluster: str, params: Params, _s: Secrets) -> None:
    _autoscale_change(env, cluster, params)


def _run_autoscale(env: Env, cluster: str, params: Params, _s: Secrets) -> None:
    change, limit = _autoscale_change(env, cluster, params)
    new = apply_change(env, cluster, change, limit)
    said = f"enabled: workers {new.min_size}..{new.max_size}" if new.enabled else "disabled"
    env.progress("autoscale").message(f"autoscaling {said}")


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("create", _check_create, _run_create, params=CREATE_FIELDS, secrets=("registry_password",)),
        Kind("scale", _check_scale, _run_scale, params=("size",), required=("size",)),
        Kind("upgrade", _check_upgrade, _run_upgrade, params=("version",), required=("version",)),
        Kind("stop", _check_stop, _run_stop),
        Kind("start", _check_start, _run_start),
        Kind("recover", _check_recover, _run_recover),
        Kind("reset", _check_reset, _run_reset),
        Kind("delete", _check_delete, _run_delete),
        Kind(
            "remove-node",
            _check_remove_node,
            _run_remove_node,
            params=("node", "ungraceful"),
            required=("node",),
        ),
        Kind(
            "autoscale",
            _check_autoscale,
            _run_autoscale,
            params=("enable", "min", "max", "service_address"),
            required=("enable",),
        ),
    )
}


def kind_of(name: str) -> Kind:
    if name not in KINDS:
        raise InputError("kind", f"must be one of: {', '.join(KINDS)} (got {name!r})")
    return KINDS[name]
