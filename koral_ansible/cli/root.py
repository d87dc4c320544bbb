"""The ``koral-play`` group and the cluster commands: create, list, show, kubeconfig, delete, events."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from koral_ansible import __version__, operations
from koral_ansible import kubeconfig as user_kubeconfig
from koral_ansible import node_os as node_oses
from koral_ansible.cli.age import age
from koral_ansible.cli.common import emit, output_option, pass_env
from koral_ansible.cli.table import Column
from koral_ansible.create_input import build_create_spec
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env
from koral_ansible.spec import MAX_SIZE_ENV, max_cluster_size

REGISTRY_PASSWORD_ENV = "KORAL_REGISTRY_PASSWORD"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="koral-play")
@click.option(
    "--state-dir",
    envvar="KORAL_HOME",
    type=click.Path(file_okay=False),
    help="Where koral keeps its state database, keys, kubeconfigs and run artifacts "
    "[env KORAL_HOME; default ~/.local/share/koral].",
)
@click.option(
    "--max-size",
    envvar=MAX_SIZE_ENV,
    help="Largest allowed worker count (cloud.kubernetes.cluster.max.size) "
    "[env KORAL_CLUSTER_MAX_SIZE; default 10].",
)
@click.option("-v", "--verbose", is_flag=True, help="Stream Ansible's own output as well as progress.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output (errors are still printed).")
@click.pass_context
def root(ctx: click.Context, state_dir: str | None, max_size: str | None, verbose: bool, quiet: bool) -> None:
    """koral-play: production-grade Kubernetes clusters with one command.

    Nodes come from Mold / Apache CloudStack (--provider cloudstack) or, by default, from
    local nodes on this machine (systemd containers, host nftables and haproxy as "the cloud").
    """
    ctx.ensure_object(dict)
    ctx.obj.update(home=state_dir, verbose=verbose, quiet=quiet, max_size=max_size)


def cli_max_size() -> int:
    """The max cluster size from --max-size / KORAL_CLUSTER_MAX_SIZE (validated)."""
    raw = click.get_current_context().find_root().obj.get("max_size")
    return max_cluster_size(raw, field="--max-size")


def _secret_from(value: str | None, file: str | None, env_name: str, field: str) -> str | None:
    if value is not None and file is not None:
        raise InputError(field, "give the password or the password file, not both")
    if file is not None:
        try:
            with open(file, encoding="utf-8") as fh:
                return fh.read().rstrip("\n")
        except OSError as exc:
            raise InputError(f"{field}-file", f"cannot read {file}: {exc.strerror}") from None
    return value if value is not None else os.environ.get(env_name)


@root.command()
@click.argument("name", required=False)
@click.option(
    "-f", "--file", "spec_file", type=click.Path(dir_okay=False), help="Cluster spec YAML; flags override it."
)
@click.option("--description", help="Free text shown by show/list.")
@click.option("--provider", help="local (default: nodes on this machine) or cloudstack (alias mold).")
@click.option("--zone", help="Zone name or id (cloudstack); 'local' for local nodes.")
@click.option("--kubernetes-version", "--version", "kubernetes_version", help="Kubernetes version X.Y.Z.")
@click.option("--compute-offering", help="CloudStack compute offering (>= 2 vCPU, 2048 MB).")
@click.option("--cpu", help="vCPUs per local node (>= 2).")
@click.option("--memory", help="MiB of memory per local node (>= 2048).")
@click.option("--root-disk-size", help="Node root disk size in GB (>= 8).")
@click.option("--network", help="Existing network to use; a new isolated network is created when unset.")
@click.option("--control-nodes", help="Control-plane node count: odd, 1..7.")
@click.option(
    "--ha",
    is_flag=True,
    default=None,
    help="HA control plane: 3 control nodes unless --control-nodes says otherwise.",
)
@click.option("--external-lb-ip", help="External load balancer IPv4 address for the API.")
@click.option("--size", help="Worker node count, 1..max size (default 1).")
@click.option("--ssh-keypair", help="CloudStack SSH key pair name to add to the nodes.")
@click.option("--registry-url", help="Private registry http(s)://HOST[:PORT]; every image is pulled from it.")
@click.option("--registry-username", help="Private registry user name.")
@click.option(
    "--registry-password",
    help=f"Private registry password (prefer --registry-password-file or env {REGISTRY_PASSWORD_ENV}).",
)
@click.option(
    "--registry-password-file", type=click.Path(dir_okay=False), help="File holding the registry password."
)
@click.option("--cni", help="Pod network: weave (default) or calico.")
@click.option("--pod-cidr", help="Pod network CIDR (default 10.244.0.0/16).")
@click.option("--service-cidr", help="Service network CIDR (default 10.96.0.0/12).")
@click.option(
    "--allowed-cidrs", help="Comma-separated source CIDRs allowed to SSH (2222..) and the API (6443)."
)
@click.option("--bundle", help="Kubernetes binaries bundle (directory or ISO) to install from.")
@click.option(
    "--node-os",
    help=f"Local nodes' OS: one of {node_oses.ALLOWED} (default {node_oses.DEFAULT_NODE_OS}); "
    "scale and node replacement keep it.",
)
@click.option(
    "--merge-kubeconfig",
    is_flag=True,
    help="When the cluster is up, merge it into your kubeconfig as context koral-NAME "
    "(like 'kubeconfig NAME --merge').",
)
@click.option(
    "--set-current", is_flag=True, help="With --merge-kubeconfig: also make koral-NAME the current context."
)
@click.option(
    "--dashboard",
    is_flag=True,
    help="When the cluster is up, apply the Kubernetes dashboard from the bundle "
    "(like 'dashboard NAME --enable').",
)
@click.option(
    "--allow-cgroup-v1",
    is_flag=True,
    default=None,
    help="Allow cgroup v1 nodes (kubelet failCgroupV1: false); refused by the kubelet by default from 1.35.",
)
@pass_env
def create(
    env: Env,
    name: str | None,
    spec_file: str | None,
    ha: bool | None,
    merge_kubeconfig: bool,
    set_current: bool,
    dashboard: bool,
    **flags: Any,
) -> None:
    """Create a cluster (or resume an interrupted create of the same spec).

    Every input is validated before anything is created. Example:

        koral-play create demo --size 2
    """
    if set_current and not merge_kubeconfig:
        raise InputError("--set-current", "only goes with --merge-kubeconfig")
    password = _secret_from(
        flags.pop("registry_password"),
        flags.pop("registry_password_file"),
        REGISTRY_PASSWORD_ENV,
        "--registry-password",
    )
    spec = build_create_spec(name, {**flags, "ha": ha}, password, spec_file, max_size=cli_max_size())
    record = operations.create(env, spec)
    click.echo(
        f"cluster {record.name} is {record.state.value}: {operations.summary(record)['endpoint']}", err=True
    )
    if dashboard:
        from koral_ansible.cli.dashboard import switch

        switch(env, record.name, True)
        click.echo(f"dashboard enabled: koral-play dashboard {record.name} prints a login token", err=True)
    if merge_kubeconfig:
        _merge_kubeconfig(record.name, operations.kubeconfig_path(env, record.name), set_current)
    else:
        click.echo(
            f"kubeconfig: koral-play kubeconfig {record.name} --merge (or > {record.name}.kubeconfig)",
            err=True,
        )


LIST_COLUMNS = (
    Column("name"),
    Column("state"),
    Column("provider"),
    Column("version"),
    Column("control_nodes", "CONTROL"),
    Column("size"),
    Column("endpoint"),
    Column("age"),
    Column("zone", wide=True),
    Column("network", wide=True),
    Column("cni", wide=True),
    Column("pod_cidr", wide=True),
    Column("service_cidr", wide=True),
    Column("created", wide=True),
    Column("description", wide=True, text=True),
)
NODE_COLUMNS = (
    Column("name"),
    Column("role"),
    Column("state"),
    Column("ip"),
    Column("ssh"),
    Column("index", wide=True),
    Column("provider_id", wide=True),
)
# LoadBalancer Services as the controller last recorded them (koral_ansible.loadbalancer.record)
LB_COLUMNS = (
    Column("service"),
    Column("state"),
    Column("ports"),
    Column("address"),
    Column("source_ranges"),
    Column("backends"),
    Column("traffic_policy", wide=True),
    Column("reason", text=True),
)
EVENT_COLUMNS = (
    Column("time"),
    Column("age", wide=True),
    Column("operation"),
    Column("phase"),
    Column("result"),
    Column("message", text=True),
)


@root.command(name="list")
@output_option
@pass_env
def list_(env: Env, output: str) -> None:
    """List clusters with their state, version, size and API endpoint (-o wide: zone, network,
    CNI, CIDRs, creation time and description too)."""
    records = env.store.list_clusters()
    if output not in ("table", "wide"):
        emit([operations.summary(r) for r in records], output)
        return
    rows = [operations.summary_wide(r) for r in records]
    emit([{**r, "age": age(r["created"])} for r in rows], output, LIST_COLUMNS, empty="No clusters found.")


@root.command()
@click.argument("name")
@output_option
@pass_env
def show(env: Env, name: str, output: str) -> None:
    """Show a cluster's details (Mold's detail fields), its nodes (-o wide: node index and
    provider id too), its network rules and the LoadBalancer Services served or refused."""
    record = env.store.get_cluster(name)
    data = operations.detail(env, record)
    emit(data, output)
    if output in ("table", "wide"):
        click.echo()
        rows = [operations.node_row(n, wide=output == "wide") for n in record.nodes]
        emit(rows, output, NODE_COLUMNS, empty="No nodes yet.")
        if data["network_rules"]:
            from koral_ansible.cli.rules import RULE_COLUMNS

            click.echo()
            emit(data["network_rules"], output, RULE_COLUMNS)
        if data["load_balancers"]:
            click.echo()
            emit(data["load_balancers"], output, LB_COLUMNS)


@root.command()
@click.argument("name")
@click.option("--path", "path_only", is_flag=True, help="Print the kubeconfig's path instead of its content.")
@click.option(
    "--merge",
    is_flag=True,
    help="Merge the cluster into your kubeconfig (the first existing file of $KUBECONFIG, else its "
    "last; ~/.kube/config without it) as context, cluster and user koral-NAME; other entries are kept.",
)
@click.option("--set-current", is_flag=True, help="With --merge: also make koral-NAME the current context.")
@pass_env
def kubeconfig(env: Env, name: str, path_only: bool, merge: bool, set_current: bool) -> None:
    """Print the cluster's admin kubeconfig (server = the public API endpoint), or merge it
    into yours (delete takes it out again). Example:

    \b
        koral-play kubeconfig demo --merge --set-current && kubectl get nodes
    """
    if merge and path_only:
        raise InputError("--merge", "goes without --path")
    if set_current and not merge:
        raise InputError("--set-current", "only goes with --merge")
    path = operations.kubeconfig_path(env, name)
    if merge:
        _merge_kubeconfig(name, path, set_current)
        return
    click.echo(str(path) if path_only else path.read_text().rstrip("\n"))


def _merge_kubeconfig(name: str, path: Path, set_current: bool) -> None:
    target = user_kubeconfig.merge(name, path, set_current=set_current)
    context = user_kubeconfig.entry_name(name)
    tail = f"; current context is now {context}" if set_current else f" (kubectl --context {context})"
    click.echo(f"kubeconfig: merged {name} into {target} as context {context}{tail}", err=True)


def _forget_kubeconfig(name: str) -> None:
    """After delete: the cluster is gone, so a kubeconfig that cannot be cleaned is only a warning."""
    changed, problems = user_kubeconfig.remove(name)
    for path in changed:
        click.echo(f"kubeconfig: removed context {user_kubeconfig.entry_name(name)} from {path}", err=True)
    for problem in problems:
        click.echo(f"warning: {problem}; remove context {user_kubeconfig.entry_name(name)} by hand", err=True)


@root.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_env
def delete(env: Env, name: str, yes: bool) -> None:
    """Delete a cluster: nodes, networks, port forwards, firewall, load balancer and state.

    Deleting a cluster that does not exist is not an error, so delete can be re-run. The
    koral-NAME context, cluster and user are taken out of your kubeconfig files (only those).
    """
    if env.store.find_cluster(name) is None:
        click.echo(f"no cluster named {name!r}; nothing to delete", err=True)
        _forget_kubeconfig(name)
        return
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("--yes", "required to delete without a terminal to confirm on")
        click.confirm(f"Delete cluster {name} and everything it created?", abort=True, err=True)
    operations.delete(env, name)
    click.echo(f"cluster {name} deleted", err=True)
    _forget_kubeconfig(name)


@root.command()
@click.argument("name")
@output_option
@pass_env
def events(env: Env, name: str, output: str) -> None:
    """List the cluster's event log: time, operation, phase, result, message (-o wide: age too)."""
    rows = operations.events(env, name)
    if output in ("table", "wide"):
        rows = [{**r, "age": age(r["time"])} for r in rows]
    emit(rows, output, EVENT_COLUMNS, empty="No events.")
