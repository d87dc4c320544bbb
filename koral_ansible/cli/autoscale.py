"""``koral-play autoscale`` (the cluster's autoscaling record) and ``koral-play autoscaler serve``.

Wire with ``root.add_command(autoscale)`` and ``root.add_command(autoscaler)``.

- ``autoscale NAME --enable --min A --max B`` / ``--disable`` / (no flag: show). Bounds are
  validated before anything changes (exit 2 naming --min/--max). Callables in :data:`ON_CHANGE`
  run after the record changed (deploy / remove cluster-autoscaler); if one fails the previous
  record is restored and the error propagates.
- ``autoscaler serve --cluster NAME --listen HOST:PORT``: cluster-autoscaler's externalgrpc
  provider for one cluster, mTLS with the cluster's certificates (created on first start).
  Scale calls run koral's own operations (:func:`scale_operations`) on the main thread.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from koral_ansible.autoscaler import settings
from koral_ansible.autoscaler.change import ON_CHANGE as change_hooks
from koral_ansible.autoscaler.change import apply_change, check_change
from koral_ansible.autoscaler.settings import AutoscaleSettings
from koral_ansible.cli.common import emit, output_option, pass_env
from koral_ansible.errors import InputError, OperationError
from koral_ansible.operations.context import Env
from koral_ansible.spec import max_cluster_size

#: The hooks ``autoscale`` runs after the record changed: the library's list
#: (:data:`koral_ansible.autoscaler.change.ON_CHANGE`), the same object under the CLI's name.
ON_CHANGE = change_hooks

DEFAULT_LISTEN = "127.0.0.1:8086"


def _max_size() -> int:
    """The max cluster size: the root's --max-size (or KORAL_CLUSTER_MAX_SIZE), else 10."""
    obj = click.get_current_context().find_root().obj
    raw = obj.get("max_size") if isinstance(obj, dict) else None
    return max_cluster_size(None if raw is None else str(raw), field="--max-size")


def _show(name: str, s: AutoscaleSettings, workers: int) -> dict[str, Any]:
    return {"name": name, **s.public_dict(), "workers": workers}


@click.command()
@click.argument("name")
@click.option("--enable", "enable_", is_flag=True, help="Turn autoscaling on (needs --min and --max).")
@click.option("--disable", is_flag=True, help="Turn autoscaling off; manual scale works again.")
@click.option("--min", "min_size", help="Fewest workers, >= 1.")
@click.option("--max", "max_size", help="Most workers, <= the max cluster size (default 10).")
@click.option(
    "--service-address",
    help="HOST:PORT where 'koral-play autoscaler serve' listens, reachable from the cluster's nodes "
    "(local clusters: default the cluster network's gateway, port 8086; required on clouds).",
)
@output_option
@pass_env
def autoscale(
    env: Env,
    name: str,
    enable_: bool,
    disable: bool,
    min_size: str | None,
    max_size: str | None,
    service_address: str | None,
    output: str,
) -> None:
    """Enable or disable autoscaling of a cluster's workers by cluster-autoscaler, or show it.

    While enabled, cluster-autoscaler decides the worker count between --min and --max
    through koral-play's autoscaler service, and manual 'scale' is refused. Example:

        koral-play autoscale demo --enable --min 1 --max 5
    """
    limit = _max_size()
    change = check_change(env, name, enable_, disable, min_size, max_size, service_address, limit)
    if change is None:
        workers = len(env.store.get_cluster(name).workers)
        emit(_show(name, settings.load_settings(env.paths, name), workers), output)
        return
    workers = change.workers
    new = apply_change(env, name, change, limit, hooks=ON_CHANGE)
    if new.enabled:
        click.echo(f"autoscaling enabled for {name}: workers {new.min_size}..{new.max_size}", err=True)
        if not new.min_size <= workers <= new.max_size:
            click.echo(
                f"note: {name} has {workers} workers, outside {new.min_size}..{new.max_size}; "
                "cluster-autoscaler only moves the size within the bounds as load requires",
                err=True,
            )
    else:
        click.echo(f"autoscaling disabled for {name}; 'koral-play scale' works again", err=True)
    emit(_show(name, new, workers), output)


@click.group()
def autoscaler() -> None:
    """The service cluster-autoscaler calls (its externalgrpc cloud provider)."""


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [addr]:PORT) -> (host, port); InputError names --listen."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError("--listen", f"must be HOST:PORT with a port 1..65535 (got {listen!r})")
    return host, int(port)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def scale_operations(home: str | None) -> tuple[Callable[[str, int], None], Callable[[str, str], None]]:
    """koral's scale and remove-node operations as ``scale_to(cluster, size)`` and
    ``remove_node(cluster, node)``, each with its own Env (state store) per call.

    They are looked up as ``koral_ansible.operations.scale(env, name, size)`` and
    ``koral_ansible.operations.remove_node(env, name, node)``.
    """
    from koral_ansible import operations

    scale = getattr(operations, "scale", None)
    remove = getattr(operations, "remove_node", None)
    if scale is None or remove is None:
        raise OperationError(
            "this koral-play has no scale/remove-node operations (koral_ansible.operations.scale, "
            ".remove_node); the autoscaler service needs them"
        )

    def scale_to(cluster: str, size: int) -> None:
        env = Env.open(home, quiet=True)
        try:
            scale(env, cluster, size)
        finally:
            env.store.close()

    def remove_node(cluster: str, node: str) -> None:
        env = Env.open(home, quiet=True)
        try:
            remove(env, cluster, node)
        finally:
            env.store.close()

    return scale_to, remove_node


@autoscaler.command()
@click.option("--cluster", "name", required=True, help="The cluster whose workers this service scales.")
@click.option(
    "--listen",
    help="HOST:PORT to listen on; the host goes into the server certificate. Default: the service "
    f"address recorded by 'autoscale --enable', else {DEFAULT_LISTEN}.",
)
@click.option(
    "--san",
    "sans",
    multiple=True,
    help="Extra host name or IP for the server certificate (the address cluster-autoscaler dials).",
)
@pass_env
def serve(env: Env, name: str, listen: str | None, sans: tuple[str, ...]) -> None:
    """Serve cluster-autoscaler's externalgrpc CloudProvider for one cluster, over mTLS.

    Certificates (CA, server, client for cluster-autoscaler) are created on first start in
    the cluster's directory under the koral home. Stops on SIGTERM or Ctrl-C.
    """
    # Scale operations fork ansible-playbook while gRPC's threads run; gRPC's fork handlers then
    # break the child (epoll on a closed fd, ansible exits 1). The children exec at once and
    # never use gRPC, so its fork support is turned off (read when grpc is first imported).
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    from koral_ansible.autoscaler.certs import ensure_certs
    from koral_ansible.autoscaler.mainthread import MainThreadRunner
    from koral_ansible.autoscaler.server import serve as run_server
    from koral_ansible.autoscaler.server import single_instance
    from koral_ansible.autoscaler.state_scaler import StateScaler

    env.store.get_cluster(name)
    listen = listen or settings.load_settings(env.paths, name).service_address or DEFAULT_LISTEN
    host, _port = parse_listen(listen)
    hosts = [h for h in (host, *sans) if not _is_wildcard(h)]
    scale_to, remove_node = scale_operations(str(env.paths.home))
    certs = ensure_certs(env.paths, name, hosts)
    runner = MainThreadRunner()
    scaler = StateScaler(env.paths, runner.wrap(scale_to), runner.wrap(remove_node), clusters=[name])
    if not settings.load_settings(env.paths, name).enabled:
        click.echo(
            f"note: autoscaling is disabled for {name}; no node group is served until "
            f"'koral-play autoscale {name} --enable --min A --max B'",
            err=True,
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def ready(port: int) -> None:
        click.echo(
            f"serving cluster-autoscaler's externalgrpc provider for {name} on {host}:{port} "
            f"(mTLS; certificates in {certs.dir})",
            err=True,
        )

    with single_instance(certs.dir / "serve.lock"):
        run_server(scaler, certs, listen, stop=threading.Event(), runner=runner, on_ready=ready)


@autoscaler.command()
@click.option("--cluster", "name", required=True, help="The cluster whose workers the service scales.")
@click.option("--listen", help="HOST:PORT (default: the service address recorded by 'autoscale --enable').")
@click.option("--san", "sans", multiple=True, help="Extra host name or IP for the server certificate.")
@click.option(
    "--koral-play",
    "koral_play",
    default=None,
    help="Path of koral-play in the unit (default: this koral-play).",
)
@pass_env
def unit(env: Env, name: str, listen: str | None, sans: tuple[str, ...], koral_play: str | None) -> None:
    """Print a systemd unit running 'autoscaler serve' for one cluster on this host.

    Install it on a host with systemd (the one holding koral's state), e.g.:

        koral-play autoscaler unit --cluster demo > /etc/systemd/system/koral-autoscaler-demo.service
        systemctl daemon-reload && systemctl enable --now koral-autoscaler-demo
    """
    import shutil
    import sys

    from koral_ansible.autoscaler.unit import systemd_unit

    env.store.get_cluster(name)
    listen = listen or settings.load_settings(env.paths, name).service_address or DEFAULT_LISTEN
    parse_listen(listen)
    exe = koral_play or shutil.which("koral-play") or str(Path(sys.executable).parent / "koral-play")
    click.echo(systemd_unit(name, listen, sans, koral_play=exe, home=str(env.paths.home)), nl=False)
