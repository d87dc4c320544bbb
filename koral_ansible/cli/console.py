"""``koral-play console``: serve the web console for every cluster in the koral home."""

from __future__ import annotations

import sys

import click

from koral_ansible.cli.common import pass_env
from koral_ansible.console import auth, server
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env


@click.command()
@click.option(
    "--listen",
    default=server.DEFAULT_LISTEN,
    show_default=True,
    help="HOST:PORT to serve on. Loopback only unless --allow-remote.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --listen address (plain HTTP: put TLS in front of it).",
)
@click.option("--rotate-token", is_flag=True, help="Replace the login token; every existing session ends.")
@pass_env
def console(env: Env, listen: str, allow_remote: bool, rotate_token: bool) -> None:
    """Serve the web console: list, create, cluster tabs, actions and live progress.

    The login token is generated at first start (0600 under the koral home) and printed once to
    the terminal (never into a log: not printed when stderr is not a terminal).
    Example:

        koral-play console --listen 127.0.0.1:8088
    """
    host, port = server.parse_listen(listen)
    if not server.is_loopback(host):
        if not allow_remote:
            raise InputError(
                "--listen", f"{host} is not a loopback address; add --allow-remote to serve on it"
            )
        click.echo(f"warning: serving on {host}, reachable from other machines, over plain HTTP", err=True)
    token, new = auth.load_or_create_token(env.paths, rotate=rotate_token)
    where = auth.token_path(env.paths)
    if new and sys.stderr.isatty():
        click.echo(f"console login token (shown once; kept in {where}): {token}", err=True)
    elif new:  # stderr goes to a file or a journal: the token must not land in a log
        click.echo(f"console login token: new, in {where} (not shown: stderr is not a terminal)", err=True)
    else:
        click.echo(f"console login token: in {where} (--rotate-token replaces it)", err=True)
    click.echo(f"koral console: http://{listen}/ (Ctrl-C stops it)", err=True)
    server.serve(env.paths.home, token, host, port)
