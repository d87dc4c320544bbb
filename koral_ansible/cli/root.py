"""The ``koral-play`` group and the cluster commands: create, list, show, kubeconfig, delete, events."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from koral_ansible import __version__, operations
from koral_ansible.cli.common import emit, output_option, pass_env
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env
from koral_ansible.spec import MAX_SIZE_ENV, load_spec, max_cluster_size

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
    "--allow-cgroup-v1",
    is_flag=True,
    default=None,
    help="Allow cgroup v1 nodes (kubelet failCgroupV1: false); refused by the kubelet by default from 1.35.",
)
@pass_env
def create(env: Env, name: str | None, spec_file: str | None, ha: bool | None, **flags: Any) -> None:
    """Create a cluster (or resume an interrupted create of the same spec).

    Every input is validated before anything is created. Example:

        koral-play create demo --size 2
    """
    password = _secret_from(
        flags.pop("registry_password"),
        flags.pop("registry_password_file"),
        REGISTRY_PASSWORD_ENV,
        "--registry-password",
    )
    overrides: dict[str, Any] = {"name": name}
    for key in ("registry_url", "registry_username"):
        value = flags.pop(key)
        if value is not None:
            overrides[f"registry.{key.split('_', 1)[1]}"] = value
    if password is not None:
        overrides["registry.password"] = password
    if ha and flags.get("control_nodes") is None:
        flags["control_nodes"] = 3  # in flags: overrides.update(flags) would put None back
    overrides.update(flags)
    spec = load_spec(spec_file, overrides, max_size=cli_max_size())
    record = operations.create(env, spec)
    click.echo(
        f"cluster {record.name} is {record.state.value}: {operations.summary(record)['endpoint']}", err=True
    )
    click.echo(f"kubeconfig: koral-play kubeconfig {record.name} > {record.name}.kubeconfig", err=True)


@root.command(name="list")
@output_option
@pass_env
def list_(env: Env, output: str) -> None:
    """List clusters with their state, version, size and API endpoint."""
    rows = [operations.summary(r) for r in env.store.list_clusters()]
    emit(rows, output, columns=["name", "state", "provider", "version", "control_nodes", "size", "endpoint"])


@root.command()
@click.argument("name")
@output_option
@pass_env
def show(env: Env, name: str, output: str) -> None:
    """Show a cluster's details (Mold's detail fields) and its nodes."""
    data = operations.detail(env, env.store.get_cluster(name))
    emit(data, output)
    if output == "table":
        emit(data["nodes"], "table", columns=["name", "role", "state", "ip", "ssh"], title="nodes")


@root.command()
@click.argument("name")
@click.option("--path", "path_only", is_flag=True, help="Print the kubeconfig's path instead of its content.")
@pass_env
def kubeconfig(env: Env, name: str, path_only: bool) -> None:
    """Print the cluster's admin kubeconfig (server = the public API endpoint)."""
    path = operations.kubeconfig_path(env, name)
    click.echo(str(path) if path_only else path.read_text().rstrip("\n"))


@root.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_env
def delete(env: Env, name: str, yes: bool) -> None:
    """Delete a cluster: nodes, networks, port forwards, firewall, load balancer and state.

    Deleting a cluster that does not exist is not an error, so delete can be re-run.
    """
    if env.store.find_cluster(name) is None:
        click.echo(f"no cluster named {name!r}; nothing to delete", err=True)
        return
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("--yes", "required to delete without a terminal to confirm on")
        click.confirm(f"Delete cluster {name} and everything it created?", abort=True, err=True)
    operations.delete(env, name)
    click.echo(f"cluster {name} deleted", err=True)


@root.command()
@click.argument("name")
@output_option
@pass_env
def events(env: Env, name: str, output: str) -> None:
    """List the cluster's event log: time, operation, phase, result, message."""
    emit(operations.events(env, name), output, columns=["time", "operation", "phase", "result", "message"])
