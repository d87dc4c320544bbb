"""``koral-play registry push``: load a bundle's images into a private registry.

Wire with ``root.add_command(registry)``. Pushed references go to stdout (a REF TARGET DIGEST
table, or JSON/YAML), progress to stderr; the password never appears in either.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from koral_ansible.bundle.push import Registry, push_bundle
from koral_ansible.cli.common import emit, output_option
from koral_ansible.errors import InputError

PASSWORD_ENV = "KORAL_REGISTRY_PASSWORD"


@click.group()
def registry() -> None:
    """Private container registry: push a bundle's images so clusters created with
    --registry-url pull everything from it."""


def _password(password_file: str | None) -> str | None:
    if password_file is not None:
        try:
            return Path(password_file).read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise InputError("--password-file", f"cannot read {password_file}: {exc.strerror}") from None
    return os.environ.get(PASSWORD_ENV)


@registry.command()
@click.argument("bundle", type=click.Path())
@click.option(
    "--registry", "registry_url", required=True, help="http(s)://HOST[:PORT][/PREFIX] of the registry."
)
@click.option("--username", help="Registry user name (auth is optional).")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    help=f"File holding the registry password [or env {PASSWORD_ENV}].",
)
@click.option(
    "--insecure/--secure",
    default=None,
    help="Skip TLS verification / allow plain HTTP [default: insecure for http:// URLs only].",
)
@output_option
@click.pass_context
def push(
    ctx: click.Context,
    bundle: str,
    registry_url: str,
    username: str | None,
    password_file: str | None,
    insecure: bool | None,
    output: str,
) -> None:
    """Verify BUNDLE (directory or ISO) and push every image it holds to the registry.

    Images keep their repository path without the upstream host (a containerd mirror layout):
    registry.k8s.io/pause:3.10 -> HOST:PORT/pause:3.10.
    """
    Registry.parse(registry_url, insecure)  # bad URL: exit 2 before anything else
    password = _password(password_file)
    if password and not username:
        raise InputError("--username", "required when a registry password is given")
    obj = ctx.find_root().obj
    quiet = isinstance(obj, dict) and bool(obj.get("quiet"))
    pushed = push_bundle(
        bundle,
        registry_url,
        username=username,
        password=password,
        insecure=insecure,
        progress=None if quiet else (lambda m: click.echo(f"registry: {m}", err=True)),
    )
    rows = [{"ref": p.ref, "target": p.target, "digest": p.digest} for p in pushed]
    emit(rows, output, ["ref", "target", "digest"], empty="No images pushed.")
