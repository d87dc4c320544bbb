"""``koral-play doctor``: check this host for everything the local provider needs."""

from __future__ import annotations

import click

from koral_ansible import doctor as lib
from koral_ansible.cli.common import emit, output_option
from koral_ansible.errors import KoralError
from koral_ansible.paths import Paths


@click.command()
@output_option
@click.option("--no-cache", is_flag=True, help="Re-run the podman network check even if it passed recently.")
@click.pass_context
def doctor(ctx: click.Context, output: str, no_cache: bool) -> None:
    """Check this host for the local provider: packages, podman networking (end to end), nftables,
    haproxy, ip_forward, cgroups, disk, root. One line per check with its fix; exit 0 when every
    check passes, 1 otherwise. `create` runs the same checks first."""
    home = ctx.find_root().obj.get("home")
    checks = lib.run_checks(Paths.resolve(home=home), use_stamp=not no_cache)
    if output == "table":
        for check in checks:
            click.echo(check.line())
    else:
        emit([c.to_dict() for c in checks], output)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise KoralError(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")  # exit 1
