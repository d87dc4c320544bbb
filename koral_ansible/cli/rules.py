"""``koral-play firewall|port-forward|lb list|add|delete CLUSTER ...``: the cluster's network rules
for its applications on its public IP (Mold's Firewall, Port Forwarding and Load Balancing tabs)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from koral_ansible.cli.common import emit, output_option, pass_env
from koral_ansible.cli.root import cli_max_size
from koral_ansible.cli.table import Column
from koral_ansible.operations.context import Env
from koral_ansible.rules import ops, validate
from koral_ansible.rules.model import ALGORITHMS, FIREWALL, LB, PORT_FORWARD, PROTOCOLS, Rule

RULE_COLUMNS = (
    Column("name"),
    Column("kind"),
    Column("protocol"),
    Column("public_port"),
    Column("private_port"),
    Column("nodes"),
    Column("algorithm"),
    Column("cidrs"),
)

_cidr_option = click.option(
    "--cidr",
    "cidrs",
    multiple=True,
    help="Source CIDR allowed (repeat or comma-separate; default 0.0.0.0/0).",
)


def _list(env: Env, name: str, kind: str, output: str) -> None:
    rows = [r.row() for r in ops.rules(env, name, kind)]
    emit(rows, output, RULE_COLUMNS, empty=f"No {kind} rules.")


def _added(rule: Rule) -> None:
    click.echo(f"{rule.kind} rule {rule.name} added: {rule.protocol} {rule.ports or '-'}", err=True)


def _deleted(rule: Rule) -> None:
    click.echo(f"{rule.kind} rule {rule.name} deleted", err=True)


def _group(kind: str, help_text: str) -> click.Group:
    group = click.Group(name=kind, help=help_text)

    @group.command(name="list")
    @click.argument("cluster")
    @output_option
    @pass_env
    def list_(env: Env, cluster: str, output: str) -> None:
        """List the cluster's rules of this kind."""
        _list(env, cluster, kind, output)

    @group.command(name="delete")
    @click.argument("cluster")
    @click.argument("rule")
    @pass_env
    def delete(env: Env, cluster: str, rule: str) -> None:
        """Delete RULE (its name, as `list` shows it) from the cloud and the cluster's state."""
        _deleted(ops.delete(env, cluster, kind, rule))

    return group


firewall = _group(
    FIREWALL, "Firewall rules on the cluster's public IP (which sources may reach which ports)."
)
port_forward = _group(PORT_FORWARD, "Port forwards from the cluster's public IP to one node.")
lb = _group(LB, "Load balancer rules from the cluster's public IP to nodes (default: every worker).")


@firewall.command(name="add")
@click.argument("cluster")
@click.option("--protocol", help=f"One of {', '.join(PROTOCOLS[FIREWALL])} (default tcp).")
@click.option("--port", help="Port or range START-END (tcp/udp; none for icmp).")
@_cidr_option
@pass_env
def firewall_add(
    env: Env, cluster: str, protocol: str | None, port: str | None, cidrs: Sequence[str]
) -> None:
    """Admit CIDRS to PORT on the cluster's public IP."""
    max_size = cli_max_size()
    _added(
        ops.add(
            env,
            cluster,
            lambda rec, have: validate.firewall_rule(
                rec, have, proto=protocol, port=port, cidrs=cidrs, max_size=max_size
            ),
        )
    )


@port_forward.command(name="add")
@click.argument("cluster")
@click.option("--protocol", help=f"One of {', '.join(PROTOCOLS[PORT_FORWARD])} (default tcp).")
@click.option("--public-port", required=True, help="Public port or range START-END.")
@click.option("--private-port", help="Node port or range of the same size (default: the public one).")
@click.option("--node", required=True, help="The target node (as `koral-play show` names it).")
@_cidr_option
@pass_env
def port_forward_add(
    env: Env,
    cluster: str,
    protocol: str | None,
    public_port: str,
    private_port: str | None,
    node: str,
    cidrs: Sequence[str],
) -> None:
    """Forward PUBLIC-PORT on the cluster's public IP to PRIVATE-PORT on NODE."""
    max_size = cli_max_size()
    _added(
        ops.add(
            env,
            cluster,
            lambda rec, have: validate.port_forward_rule(
                rec,
                have,
                proto=protocol,
                public_port=public_port,
                private_port=private_port,
                node=node,
                cidrs=cidrs,
                max_size=max_size,
            ),
        )
    )


@lb.command(name="add")
@click.argument("cluster")
@click.argument("name")
@click.option("--protocol", help=f"One of {', '.join(PROTOCOLS[LB])} (default tcp).")
@click.option("--public-port", required=True, help="Public port.")
@click.option("--private-port", help="Members' port (default: the public one).")
@click.option("--algorithm", help=f"One of {', '.join(ALGORITHMS)} (default {ALGORITHMS[0]}).")
@click.option("--member", "members", multiple=True, help="A member node (repeat; default: every worker).")
@_cidr_option
@pass_env
def lb_add(
    env: Env,
    cluster: str,
    name: str,
    protocol: str | None,
    public_port: str,
    private_port: str | None,
    algorithm: str | None,
    members: Sequence[str],
    cidrs: Sequence[str],
) -> None:
    """Balance PUBLIC-PORT on the cluster's public IP over the members' PRIVATE-PORT."""
    max_size = cli_max_size()
    _added(
        ops.add(
            env,
            cluster,
            lambda rec, have: validate.lb_rule(
                rec,
                have,
                name=name,
                proto=protocol,
                public_port=public_port,
                private_port=private_port,
                algo=algorithm,
                members=members,
                cidrs=cidrs,
                max_size=max_size,
            ),
        )
    )


COMMANDS = (firewall, port_forward, lb)
