"""Local record of the bundles built or verified on this machine (``<home>/bundles.json``).

One entry per bundle name: versions, arch, directory, ISO and manifest checksum, so
``koral-play bundle list`` can show what is available and clusters can pick a bundle by
Kubernetes version. Written atomically (temp file + rename).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from koral_ansible.bundle.manifest import Manifest
from koral_ansible.errors import OperationError
from koral_ansible.paths import write_private
from koral_ansible.versions import Version

FILE_NAME = "bundles.json"


@dataclass(frozen=True)
class BundleRecord:
    name: str
    kubernetes_version: str
    arch: str
    directory: str
    iso: str
    checksum: str
    recorded: str


def registry_path(home: Path) -> Path:
    return home / FILE_NAME


def list_bundles(home: Path) -> list[BundleRecord]:
    """Recorded bundles, newest Kubernetes version first."""
    path = registry_path(home)
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        records = [BundleRecord(**entry) for entry in raw.get("bundles", [])]
    except (ValueError, TypeError, AttributeError) as exc:
        raise OperationError(f"{path} is damaged ({exc}); move it away to start a new bundle list") from exc

    def key(r: BundleRecord) -> tuple[Version, str]:
        try:
            return (Version.parse(r.kubernetes_version), r.name)
        except ValueError:
            return (Version(0, 0, 0), r.name)

    return sorted(records, key=key, reverse=True)


def record_bundle(home: Path, manifest: Manifest, directory: Path | None, iso: Path | None) -> BundleRecord:
    """Add or replace the entry for ``manifest.name``."""
    record = BundleRecord(
        name=manifest.name,
        kubernetes_version=manifest.kubernetes_version,
        arch=manifest.arch,
        directory=str(directory) if directory else "",
        iso=str(iso) if iso else "",
        checksum=manifest.checksum,
        recorded=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    records = [r for r in list_bundles(home) if r.name != record.name] + [record]
    data = {"bundles": [asdict(r) for r in sorted(records, key=lambda r: r.name)]}
    write_private(registry_path(home), json.dumps(data, indent=2) + "\n")
    return record


def find_bundle(home: Path, kubernetes_version: str, arch: str = "amd64") -> BundleRecord | None:
    """The recorded bundle for a Kubernetes version and arch (most recently recorded wins)."""
    matches = [
        r
        for r in list_bundles(home)
        if r.kubernetes_version == kubernetes_version.lstrip("v") and r.arch == arch
    ]
    return max(matches, key=lambda r: r.recorded) if matches else None
