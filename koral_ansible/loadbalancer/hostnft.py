"""Program the host: load or remove a cluster's load-balancer table (through providers/local's nft)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from koral_ansible.loadbalancer.rules import render_delete, table_name
from koral_ansible.providers.local import nft


def current(cluster: str) -> str | None:
    """The table as the kernel lists it, or None when there is none."""
    proc = subprocess.run(
        ["nft", "list", "table", "ip", table_name(cluster)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.stdout if proc.returncode == 0 else None


def apply(cluster: str, script: str, save_to: Path) -> bool:
    """Load ``script`` unless ``save_to`` already holds it and the table exists; True if loaded."""
    if save_to.is_file() and save_to.read_text() == script and current(cluster) is not None:
        return False
    nft.apply(script, save_to=save_to)
    return True


def delete(cluster: str, saved: Path | None = None) -> None:
    nft.apply(render_delete(cluster))
    if saved is not None:
        saved.unlink(missing_ok=True)
