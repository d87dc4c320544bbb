"""KORAL_HOME for a module of CLI-driven integration tests, with its clusters deleted afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli


@contextmanager
def cli_home(home: Path, *clusters: str) -> Iterator[Path]:
    """Point KORAL_HOME (what `koral-play` reads) at ``home``; on exit delete ``clusters`` and restore it."""
    old = os.environ.get("KORAL_HOME")
    os.environ["KORAL_HOME"] = str(home)
    try:
        yield home
    finally:
        for name in clusters:
            run_cli(root, ["-q", "delete", name, "--yes"])
        if old is None:
            os.environ.pop("KORAL_HOME", None)
        else:
            os.environ["KORAL_HOME"] = old
