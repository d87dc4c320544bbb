"""``koral-play cloud-provider NAME [--rotate-keys]``: apply the CloudStack Kubernetes Provider of
a running CloudStack cluster again, optionally with a new API key pair.

Wire with ``root.add_command(cloud_provider)``.
"""

from __future__ import annotations

import click

from koral_ansible.cli.common import emit, output_option, pass_env
from koral_ansible.operations import cloud_provider as operation
from koral_ansible.operations.context import Env


@click.command("cloud-provider")
@click.argument("name")
@click.option(
    "--rotate-keys",
    is_flag=True,
    help="Give the provider's dedicated user a new API key pair first (the old pair is refused "
    "from then on) and restart the provider with it.",
)
@output_option
@pass_env
def cloud_provider(env: Env, name: str, rotate_keys: bool, output: str) -> None:
    """Apply the cloud controller manager (the bundle's provider.yaml) and its cloud-config Secret
    again on a running CloudStack cluster; with --rotate-keys, with a new key pair. The keys are
    never printed. Examples:

    \b
        koral-play cloud-provider demo
        koral-play cloud-provider demo --rotate-keys
    """
    result = operation.reapply(env, name, rotate=rotate_keys)
    who = f"user {result['user']}" if result["dedicated"] else "the operator's key pair"
    done = "new key pair, provider restarted" if result["rotated"] else "applied"
    click.echo(f"cloud provider of {name}: {done} ({who})", err=True)
    emit(result, output)
