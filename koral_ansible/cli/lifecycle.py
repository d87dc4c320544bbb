"""Day-2 commands: scale, remove-node, start, stop, reset, upgrade, recover."""

from __future__ import annotations

import sys

import click

from koral_ansible import operations
from koral_ansible.autoscaler.settings import manual_scale_refusal
from koral_ansible.cli.common import pass_env
from koral_ansible.cli.root import cli_max_size, root
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env
from koral_ansible.state import ClusterRecord


def _done(record: ClusterRecord, what: str) -> None:
    click.echo(
        f"cluster {record.name} {what}: {record.state.value} "
        f"({len(record.control_nodes)} control, {len(record.workers)} workers)",
        err=True,
    )


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError("--yes", "required to confirm without a terminal")
    click.confirm(question, abort=True, err=True)


@root.command()
@click.argument("name")
@click.option(
    "--size", required=True, help="New worker count, 1..max size. Control-plane count never changes."
)
@pass_env
def scale(env: Env, name: str, size: str) -> None:
    """Scale the cluster's workers up (new nodes join) or down (newest workers drained and removed).

    Refused while autoscaling is on: cluster-autoscaler owns the size then.
    """
    env.store.get_cluster(name)
    refusal = manual_scale_refusal(env.paths, name)
    if refusal is not None:
        raise refusal
    _done(operations.scale(env, name, size, max_size=cli_max_size()), "scaled")


@root.command(name="remove-node")
@click.argument("name")
@click.argument("node")
@click.option("--ungraceful", is_flag=True, help="The node is dead: skip drain and reset, just remove it.")
@pass_env
def remove_node(env: Env, name: str, node: str, ungraceful: bool) -> None:
    """Remove one worker NODE: drain, delete the Node object, destroy its machine, rebuild forwards."""
    _done(operations.remove_node(env, name, node, ungraceful=ungraceful), f"without {node}")


@root.command()
@click.argument("name")
@pass_env
def stop(env: Env, name: str) -> None:
    """Stop every node (workers first, control plane last); state Stopped."""
    _done(operations.stop(env, name), "stopped")


@root.command()
@click.argument("name")
@pass_env
def start(env: Env, name: str) -> None:
    """Start every node (control plane first) and wait for the API and all nodes Ready."""
    _done(operations.start(env, name), "started")


@root.command()
@click.argument("name")
@pass_env
def recover(env: Env, name: str) -> None:
    """Bring a cluster in Alert back to Running once its nodes are back."""
    _done(operations.recover(env, name), "recovered")


@root.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_env
def reset(env: Env, name: str, yes: bool) -> None:
    """kubeadm reset every node and flush CNI/firewall state, keeping the machines (state Created)."""
    env.store.get_cluster(name)
    _confirm(yes, f"Reset Kubernetes on every node of {name}?")
    _done(operations.reset(env, name), "reset")


@root.command()
@click.argument("name")
@click.option(
    "--version",
    "version",
    required=True,
    help="Target X.Y.Z: a later patch or the next minor only, with a bundle recorded for it.",
)
@pass_env
def upgrade(env: Env, name: str, version: str) -> None:
    """Upgrade Kubernetes: etcd snapshot, first control node, other control nodes, then workers.

    Checked before anything changes: never backwards, never more than one minor at a time, and
    a bundle for the target recorded (koral-play bundle verify PATH --record).
    A failure stops the rollout (state Alert, the node is named); re-running resumes.
    """
    _done(operations.upgrade(env, name, version), f"upgraded to {version}")
