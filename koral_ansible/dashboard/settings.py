"""A cluster's dashboard record: enabled or not, and when that last changed.

Stored as ``<koral home>/clusters/<name>/dashboard.json`` (mode 0600, written atomically), apart
from the state database as the autoscaling record is. A missing file means "not enabled". No
token is ever stored here (or anywhere in the koral home).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from koral_ansible.errors import OperationError
from koral_ansible.paths import Paths, read_json_record, write_private
from koral_ansible.state import now

FILE_NAME = "dashboard.json"


@dataclass(frozen=True)
class DashboardSettings:
    enabled: bool = False
    updated: str = ""

    def public_dict(self) -> dict[str, Any]:
        return asdict(self)


def settings_path(paths: Paths, cluster: str) -> Path:
    return paths.cluster_dir(cluster) / FILE_NAME


def load_settings(paths: Paths, cluster: str) -> DashboardSettings:
    """The cluster's record; disabled when there is none."""
    path = settings_path(paths, cluster)
    data = read_json_record(path, "dashboard settings")
    if data is None:
        return DashboardSettings()
    if not isinstance(data, dict) or not isinstance(data.get("enabled"), bool):
        raise OperationError(f"dashboard settings {path} are malformed (no boolean 'enabled')")
    return DashboardSettings(enabled=data["enabled"], updated=str(data.get("updated", "")))


def save(paths: Paths, cluster: str, s: DashboardSettings) -> None:
    write_private(settings_path(paths, cluster), json.dumps(s.public_dict(), indent=2) + "\n")


def set_enabled(paths: Paths, cluster: str, enabled: bool) -> DashboardSettings:
    new = DashboardSettings(enabled=enabled, updated=now())
    save(paths, cluster, new)
    return new
