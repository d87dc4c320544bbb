"""koral-play: the command line. Thin: parses flags, calls the library API, prints results.

Data goes to stdout, progress and errors to stderr. Exit codes: 0 ok, 1 operation failed,
2 bad input (one line naming the field and the allowed values; nothing changed).
"""

from __future__ import annotations

import sys

import click

from koral_ansible.cli.bundle import bundle
from koral_ansible.cli.common import run_cli
from koral_ansible.cli.registry import registry
from koral_ansible.cli.root import root

root.add_command(bundle)
root.add_command(registry)


def main() -> None:
    sys.exit(run_cli(root))


__all__ = ["click", "main", "root"]
