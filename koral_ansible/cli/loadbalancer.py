"""``koral-play loadbalancer reconcile|serve|unit``: LoadBalancer Services of local clusters.

Wire with ``root.add_command(loadbalancer)``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import click

from koral_ansible.cli.common import emit, output_option, pass_env
from koral_ansible.errors import InputError, OperationError
from koral_ansible.loadbalancer import loop
from koral_ansible.loadbalancer.reconcile import local_clusters
from koral_ansible.loadbalancer.unit import RESYNC
from koral_ansible.operations.context import Env


def _check_cluster(env: Env, name: str | None) -> None:
    if name is None:
        return
    names = [c.name for c in local_clusters(env)]
    if name not in names:
        raise InputError(
            "--cluster",
            f"must be a local cluster with a kubeconfig: {', '.join(names) or '<none>'} (got {name!r})",
        )


@click.group("loadbalancer")
def loadbalancer() -> None:
    """Serve Services of type LoadBalancer on local clusters (koral plays the cloud)."""


@loadbalancer.command("reconcile")
@click.option(
    "--cluster", "name", default=None, help="Only this local cluster (default: every local cluster)"
)
@output_option
@pass_env
def reconcile_cmd(env: Env, name: str | None, output: str) -> None:
    """One pass: program the host to exactly the LoadBalancer Services that exist, write their addresses."""
    _check_cluster(env, name)
    results, errors = loop.one_pass(env, name)
    rows = [
        {
            "cluster": r.cluster,
            "served": ",".join(r.served),
            "refused": ",".join(f"{k} ({v})" for k, v in r.refused.items()),
        }
        for r in results
    ]
    emit(rows, output, ["cluster", "served", "refused"], empty="No local clusters.")
    for cluster, err in errors.items():
        click.echo(f"error: cluster {cluster}: {err}", err=True)
    if errors:
        raise OperationError(f"{len(errors)} cluster(s) failed")


@loadbalancer.command("serve")
@click.option(
    "--cluster", "name", default=None, help="Only this local cluster (default: every local cluster)"
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2, max=3600),
    default=RESYNC,
    show_default=True,
    help="Seconds between full passes (a resync; Service and Node changes are watched and served at once)",
)
@pass_env
def serve_cmd(env: Env, name: str | None, interval: float) -> None:
    """Run the controller in the foreground until SIGTERM/SIGINT (survives API errors): watch each
    local cluster's Services and Nodes, reconcile a cluster on each change, all of them every --interval."""
    _check_cluster(env, name)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    loop.serve(env, interval, stop, name)


@loadbalancer.command("unit")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2, max=3600),
    default=RESYNC,
    show_default=True,
    help="Seconds between full passes (a resync; Service and Node changes are watched and served at once)",
)
@click.option(
    "--koral-play",
    "koral_play",
    default=None,
    help="Path of koral-play in the unit (default: this koral-play).",
)
@pass_env
def unit_cmd(env: Env, interval: float, koral_play: str | None) -> None:
    """Print a systemd unit running 'loadbalancer serve' for this koral home, e.g.:

    koral-play loadbalancer unit > /etc/systemd/system/koral-loadbalancer.service
    systemctl daemon-reload && systemctl enable --now koral-loadbalancer
    """
    import shutil
    from pathlib import Path

    from koral_ansible.loadbalancer.unit import systemd_unit

    exe = koral_play or shutil.which("koral-play") or str(Path(sys.executable).parent / "koral-play")
    click.echo(systemd_unit(exe, str(env.paths.home), interval), nl=False)
