"""Per-cluster SSH key pairs (ed25519), generated once and kept 0600 in the cluster's dir."""

from __future__ import annotations

import subprocess
from pathlib import Path

from koral_ansible.errors import OperationError
from koral_ansible.paths import Paths, private_dir


def ensure_keypair(paths: Paths, cluster: str) -> tuple[Path, str]:
    """Return (private key path, public key text), generating the pair on first use."""
    key = paths.ssh_key(cluster)
    private_dir(key.parent)
    if not key.exists():
        proc = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"koral-{cluster}", "-f", str(key)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise OperationError(f"ssh-keygen failed for cluster {cluster}: {proc.stderr.strip()}")
    key.chmod(0o600)
    pub = key.with_suffix(".pub")
    return key, pub.read_text().strip()
