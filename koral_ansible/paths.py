"""Where koral-play keeps its state, run directories, keys and caches.

Default home: ``~/.local/share/koral`` (XDG data dir), overridable with ``KORAL_HOME`` or the
CLI's ``--state-dir``. Node images are cached under ``KORAL_CACHE`` (default
``~/.cache/koral``) so that separate homes (tests) share one warm image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koral_ansible.errors import OperationError

HOME_ENV = "KORAL_HOME"
CACHE_ENV = "KORAL_CACHE"


def default_home() -> Path:
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "koral"


def default_cache() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "koral"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def read_json_record(path: Path, what: str) -> Any:
    """A JSON record koral wrote with :func:`write_private`; None when there is none. A file that
    cannot be read or parsed is an OperationError naming ``what`` and the path."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OperationError(f"cannot read {what} {path}: {exc}") from None


def write_private(path: Path, data: str | bytes) -> Path:
    """Atomically write a 0600 file (temp file + rename in the same directory)."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Paths:
    """Every location derived from one home directory."""

    home: Path
    cache: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None, cache: str | Path | None = None) -> Paths:
        return cls(
            home=Path(home).expanduser().resolve() if home else default_home(),
            cache=Path(cache).expanduser().resolve() if cache else default_cache(),
        )

    @property
    def db(self) -> Path:
        return self.home / "koral.db"

    @property
    def locks(self) -> Path:
        return self.home / "locks"

    def cluster_lock(self, name: str) -> Path:
        """The lock every operation on cluster ``name`` holds (a CLI command or a console job's worker)."""
        return self.locks / f"{name}.lock"

    def cluster_dir(self, name: str) -> Path:
        return self.home / "clusters" / name

    def ssh_key(self, name: str) -> Path:
        return self.cluster_dir(name) / "ssh" / "id_ed25519"

    def known_hosts(self, name: str) -> Path:
        return self.cluster_dir(name) / "ssh" / "known_hosts"

    def kubeconfig(self, name: str) -> Path:
        return self.cluster_dir(name) / "kubeconfig"

    def secrets(self, name: str) -> Path:
        return self.cluster_dir(name) / "secrets.json"

    @property
    def jobs(self) -> Path:
        """Background operations started by the console: one directory per job."""
        return self.home / "jobs"

    def runs(self, name: str) -> Path:
        return self.home / "runs" / name

    def local_dir(self, name: str) -> Path:
        """Provider-local working files of a cluster (nft rules, haproxy config, bind mounts)."""
        return self.cluster_dir(name) / "local"
