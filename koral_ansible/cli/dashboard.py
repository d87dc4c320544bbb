"""``koral-play dashboard NAME [--enable|--disable]``: the Kubernetes dashboard of a cluster.

Wire with ``root.add_command(dashboard)``.

- ``--enable`` / ``--disable`` record the switch and apply / delete the dashboard from the
  bundle's dashboard.yaml (playbooks/dashboard.yml); if that fails the previous record is restored.
- No switch: how to reach the dashboard and a short-lived login token (TokenRequest API,
  ``--duration``, default 1h). The token goes to stdout only: never to the koral home, an event,
  a log or stderr.
"""

from __future__ import annotations

from typing import Any

import click

from koral_ansible.cli.common import emit, output_option, pass_env
from koral_ansible.dashboard import access, deploy, settings
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env
from koral_ansible.operations.create import resolve_spec_bundle


def switch(env: Env, name: str, enabled: bool) -> settings.DashboardSettings:
    """Record the switch and apply it; the old record comes back if applying fails."""
    old = settings.load_settings(env.paths, name)
    with env.store.lock(name, "dashboard"):
        new = settings.set_enabled(env.paths, name, enabled)
        env.store.event(name, "dashboard", "settings", "Completed", "enabled" if enabled else "disabled")
    try:
        deploy.apply_dashboard(env, name, enabled)
    except BaseException:
        with env.store.lock(name, "dashboard"):
            settings.save(env.paths, name, old)
        raise
    return new


def _login(env: Env, name: str, seconds: int) -> dict[str, Any]:
    record = env.store.get_cluster(name)
    bundle = resolve_spec_bundle(env, record.spec)
    with access.host_kubectl(bundle.path if bundle else None) as kubectl:
        token = access.login_token(kubectl, env.paths.kubeconfig(name), seconds)
    return {
        "name": name,
        "enabled": True,
        "service_account": f"{access.NAMESPACE}/{access.ADMIN}",
        **access.reach(name),
        "token_expires": token.expires,
        "token": token.token,
    }


@click.command()
@click.argument("name")
@click.option("--enable", "enable_", is_flag=True, help="Apply the dashboard from the cluster's bundle.")
@click.option("--disable", is_flag=True, help="Delete the dashboard and its login ServiceAccount.")
@click.option(
    "--duration",
    help=f"Lifetime of the login token, 10m or more (default {access.DEFAULT_DURATION}); "
    "the API refuses shorter ones.",
)
@output_option
@pass_env
def dashboard(env: Env, name: str, enable_: bool, disable: bool, duration: str | None, output: str) -> None:
    """Enable or disable the Kubernetes dashboard of a cluster, or print how to reach it
    with a short-lived login token (never stored). Examples:

    \b
        koral-play dashboard demo --enable
        koral-play dashboard demo --duration 30m
    """
    if enable_ and disable:
        raise InputError("--enable/--disable", "give one of them, not both")
    if duration is not None and (enable_ or disable):
        raise InputError("--duration", "goes without --enable/--disable")
    seconds = access.parse_duration(duration or access.DEFAULT_DURATION)
    env.store.get_cluster(name)
    if enable_ or disable:
        new = switch(env, name, enable_)
        state = "enabled" if new.enabled else "disabled"
        hint = (
            f"; 'koral-play dashboard {name}' prints how to reach it and a login token" if new.enabled else ""
        )
        click.echo(f"dashboard {state} for {name}{hint}", err=True)
        emit({"name": name, **new.public_dict()}, output)
        return
    if not settings.load_settings(env.paths, name).enabled:
        raise InputError(
            "NAME", f"{name} has no dashboard; enable it with 'koral-play dashboard {name} --enable'"
        )
    info = _login(env, name, seconds)
    if output in ("json", "yaml"):
        emit(info, output)
        return
    click.echo(
        f"Dashboard of {name} (login token of {info['service_account']}, expires {info['token_expires']}):\n"
        f"  kubectl proxy:  {info['proxy_command']}\n"
        f"                  then open {info['proxy_url']}\n"
        f"  port-forward:   {info['port_forward_command']}\n"
        f"                  then open {info['port_forward_url']}",
        err=True,
    )
    click.echo(info["token"])
