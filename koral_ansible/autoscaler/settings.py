"""A cluster's autoscaling record: enabled, min and max worker count.

Stored as ``<koral home>/clusters/<name>/autoscaling.json`` (mode 0600, written atomically),
apart from the state database so that autoscaling needs no schema change. A missing file means
"autoscaling disabled". Bounds follow CKS: ``1 <= min <= max <= max cluster size``
(``cloud.kubernetes.cluster.max.size``, :func:`koral_ansible.spec.max_cluster_size`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from koral_ansible.errors import InputError, OperationError
from koral_ansible.paths import Paths, read_json_record, write_private
from koral_ansible.spec import max_cluster_size
from koral_ansible.state import now

FILE_NAME = "autoscaling.json"
#: Directory (in the cluster's directory) of the autoscaler's CA, server and client certificates.
CERTS_DIR = "autoscaler"


@dataclass(frozen=True)
class AutoscaleSettings:
    enabled: bool = False
    min_size: int = 0
    max_size: int = 0
    updated: str = ""
    #: HOST:PORT cluster-autoscaler dials (where ``koral-play autoscaler serve`` listens).
    service_address: str = ""

    def public_dict(self) -> dict[str, Any]:
        return asdict(self)


def settings_path(paths: Paths, cluster: str) -> Path:
    return paths.cluster_dir(cluster) / FILE_NAME


def load_settings(paths: Paths, cluster: str) -> AutoscaleSettings:
    """The cluster's record; disabled when there is none."""
    path = settings_path(paths, cluster)
    data = read_json_record(path, "autoscaling settings")
    if data is None:
        return AutoscaleSettings()
    try:
        return AutoscaleSettings(
            enabled=bool(data["enabled"]),
            min_size=int(data["min_size"]),
            max_size=int(data["max_size"]),
            updated=str(data.get("updated", "")),
            service_address=str(data.get("service_address", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OperationError(f"autoscaling settings {path} are malformed ({exc!r})") from None


def _integer(value: int | str | None, field: str, limit: int) -> int:
    allowed = f"an integer from 1 to {limit} (the max cluster size)"
    if value is None:
        raise InputError(field, f"is required with --enable: {allowed}")
    if isinstance(value, bool):
        raise InputError(field, f"must be {allowed}")
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise InputError(field, f"must be {allowed} (got {value!r})")
        value = int(text)
    if not 1 <= value <= limit:
        raise InputError(field, f"must be {allowed} (got {value})")
    return value


def validate_bounds(
    min_size: int | str | None, max_size: int | str | None, limit: int | None = None
) -> tuple[int, int]:
    """Check ``1 <= min <= max <= limit``; InputError names --min or --max."""
    top = max_cluster_size() if limit is None else limit
    low = _integer(min_size, "--min", top)
    high = _integer(max_size, "--max", top)
    if low > high:
        raise InputError("--max", f"must be at least --min ({low}); got {high}")
    return low, high


def enable(
    paths: Paths,
    cluster: str,
    min_size: int | str,
    max_size: int | str,
    limit: int | None = None,
    service_address: str = "",
) -> AutoscaleSettings:
    """Validate (against ``limit``, default the max cluster size) and record min/max, enabled,
    and the service address (kept from the previous record when not given)."""
    low, high = validate_bounds(min_size, max_size, limit)
    address = service_address or load_settings(paths, cluster).service_address
    return save(paths, cluster, AutoscaleSettings(True, low, high, now(), address))


def disable(paths: Paths, cluster: str) -> AutoscaleSettings:
    """Turn autoscaling off; min/max are kept for a later --enable to show."""
    old = load_settings(paths, cluster)
    return save(
        paths, cluster, AutoscaleSettings(False, old.min_size, old.max_size, now(), old.service_address)
    )


def forget(paths: Paths, cluster: str) -> None:
    """Drop the record and the cluster's autoscaler certificates (cluster deleted)."""
    settings_path(paths, cluster).unlink(missing_ok=True)
    shutil.rmtree(paths.cluster_dir(cluster) / CERTS_DIR, ignore_errors=True)


def manual_scale_refusal(paths: Paths, cluster: str) -> InputError | None:
    """The error ``koral-play scale`` must raise while autoscaling is on, else None."""
    s = load_settings(paths, cluster)
    if not s.enabled:
        return None
    return InputError(
        "--size",
        f"cluster {cluster!r} is autoscaled (workers {s.min_size}..{s.max_size}) and cluster-autoscaler "
        f"owns its size; run 'koral-play autoscale {cluster} --disable' first, or change the bounds "
        f"with 'koral-play autoscale {cluster} --enable --min A --max B'",
    )


def save(paths: Paths, cluster: str, settings: AutoscaleSettings) -> AutoscaleSettings:
    """Write the record as given (no validation: used to restore a previous record)."""
    write_private(settings_path(paths, cluster), json.dumps(settings.public_dict(), indent=2) + "\n")
    return settings
