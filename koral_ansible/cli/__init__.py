"""koral-play: the command line. Thin: parses flags, calls the library API, prints results.

Data goes to stdout, progress and errors to stderr. Exit codes: 0 ok, 1 operation failed,
2 bad input (one line naming the field and the allowed values; nothing changed).
"""

from __future__ import annotations

import sys

from koral_ansible.cli import autoscale as _autoscale
from koral_ansible.cli import bundle as _bundle
from koral_ansible.cli import cloud_provider as _cloud_provider
from koral_ansible.cli import console as _console
from koral_ansible.cli import dashboard as _dashboard
from koral_ansible.cli import doctor as _doctor
from koral_ansible.cli import lifecycle as _lifecycle  # noqa: F401  (registers its commands on root)
from koral_ansible.cli import loadbalancer as _loadbalancer
from koral_ansible.cli import registry as _registry
from koral_ansible.cli import rules as _rules
from koral_ansible.cli.common import run_cli
from koral_ansible.cli.root import root

_COMMANDS = (
    _autoscale.autoscale,
    _autoscale.autoscaler,
    _bundle.bundle,
    _cloud_provider.cloud_provider,
    _console.console,
    _dashboard.dashboard,
    _doctor.doctor,
    _loadbalancer.loadbalancer,
    _registry.registry,
    *_rules.COMMANDS,
)
for _command in _COMMANDS:
    root.add_command(_command)


def main() -> None:
    sys.exit(run_cli(root))


__all__ = ["main", "root"]
