"""Turning a cluster's autoscaling on or off: the checks and the change, shared by
``koral-play autoscale`` and the console's ``autoscale`` job.

:func:`check_change` refuses bad input before anything changes (InputError naming --enable,
--min, --max or --service-address); :func:`apply_change` writes the record under the cluster
lock, then runs the :data:`ON_CHANGE` hooks outside it (deploy / remove cluster-autoscaler) and
restores the previous record if one fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from koral_ansible.autoscaler import deploy, settings
from koral_ansible.autoscaler.settings import AutoscaleSettings
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env

Hook = Callable[[Env, str, AutoscaleSettings], None]

#: Called as ``hook(env, cluster, new_settings)`` after the record changed (outside the cluster
#: lock, so a hook may run an OperationFrame). Deploying and removing cluster-autoscaler belongs here.
ON_CHANGE: list[Hook] = [deploy.apply_autoscaler]


@dataclass(frozen=True)
class AutoscaleChange:
    """A checked change: ``bounds`` (min, max) to enable, None to disable."""

    bounds: tuple[int, int] | None
    service_address: str
    old: AutoscaleSettings
    workers: int


def check_change(
    env: Env,
    name: str,
    enable: bool,
    disable: bool,
    min_size: str | int | None,
    max_size: str | int | None,
    service_address: str | None,
    limit: int,
) -> AutoscaleChange | None:
    """The change asked for, checked; None when neither --enable nor --disable (show only)."""
    if enable and disable:
        raise InputError("--enable/--disable", "give one of them, not both")
    if not enable and (min_size is not None or max_size is not None or service_address is not None):
        field = "--min" if min_size is not None else "--max" if max_size is not None else "--service-address"
        raise InputError(field, "only goes with --enable")
    bounds = settings.validate_bounds(min_size, max_size, limit) if enable else None
    record = env.store.get_cluster(name)
    old = settings.load_settings(env.paths, name)
    if bounds is None and not disable:
        return None
    address = deploy.service_address(record, service_address or old.service_address) if bounds else ""
    return AutoscaleChange(bounds, address, old, len(record.workers))


def apply_change(
    env: Env, name: str, change: AutoscaleChange, limit: int, hooks: Sequence[Hook] = ON_CHANGE
) -> AutoscaleSettings:
    with env.store.lock(name, "autoscale"):
        if change.bounds is not None:
            low, high = change.bounds
            address = change.service_address
            new = settings.enable(env.paths, name, low, high, limit=limit, service_address=address)
        else:
            new = settings.disable(env.paths, name)
        env.store.event(
            name,
            "autoscale",
            "settings",
            "Completed",
            f"workers {new.min_size}..{new.max_size}" if new.enabled else "disabled",
        )
    try:
        for hook in hooks:
            hook(env, name, new)
    except BaseException:
        with env.store.lock(name, "autoscale"):
            settings.save(env.paths, name, change.old)
        raise
    return new
