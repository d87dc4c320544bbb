"""Register a bundle ISO in Mold / CloudStack so clusters can pick it by Kubernetes version.

Mold and CloudStack's Kubernetes Service take a binaries ISO by URL:
``addKubernetesSupportedVersion`` (semantic version, URL, checksum, zone, minimum CPU and
memory). Whether that service is on is read first from ``listCapabilities``
(``kubernetesserviceenabled``): with the service off its commands do not exist (a signed call
for one is answered HTTP 401, like a bad signature), so register and list stop with exit 2 and
say so. The cloud downloads the ISO
itself, so ``url`` must be reachable from the cloud's secondary storage; the checksum is the
ISO's sha256 in CloudStack's ``{SHA-256}hex`` form, so a tampered download is refused by the
cloud as well. Registration is idempotent: an existing entry with the same name and version
(and, where the cloud shows it, the same ISO checksum) is returned, not duplicated. Another
entry of the same Kubernetes version (a different name or ISO) is refused with exit 2: the cloud
itself would accept the duplicate and clusters could no longer pick the version unambiguously.
Versions koral cannot install, and the cloud's own "invalid parameter" answers (431), are input
errors (exit 2) as well.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from koral_ansible.bundle.iso import is_iso
from koral_ansible.bundle.verify import verify_bundle
from koral_ansible.errors import InputError, OperationError
from koral_ansible.providers.cloudstack.capabilities import kubernetes_service_enabled
from koral_ansible.versions import check_supported

# CloudStack: 431 = a parameter the cloud refused (InvalidParameterValueException, missing parameter).
PARAM_ERROR = 431
MIN_CPU = 2
MIN_MEMORY_MB = 2048


class Client(Protocol):
    """The calls used here (koral_ansible.providers.cloudstack.client.CloudClient has them)."""

    def call(self, command: str, **params: Any) -> dict[str, Any]: ...

    def list(self, command: str, **params: Any) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RegisteredVersion:
    id: str
    name: str
    kubernetes_version: str
    kind: str  # "kubernetes-version" (addKubernetesSupportedVersion)
    state: str
    zone: str


def iso_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "{SHA-256}" + digest.hexdigest()


def _zone_id(client: Client, zone: str | None) -> str | None:
    if not zone:
        return None
    zones = client.list("listZones")
    for z in zones:
        if zone in (z.get("id"), z.get("name")):
            return str(z["id"])
    names = ", ".join(sorted(str(z.get("name")) for z in zones)) or "none"
    raise InputError("--zone", f"must name a zone of this cloud (have: {names}; got {zone!r})")


def require_kubernetes_service(client: Client) -> None:
    """Exit 2 unless the cloud's Kubernetes service is on (listCapabilities)."""
    if not kubernetes_service_enabled(client):
        raise InputError(
            "--provider",
            "must name a cloud whose Kubernetes service is enabled (listCapabilities says "
            "kubernetesserviceenabled=false): an administrator sets the global setting "
            "cloud.kubernetes.service.enabled to true and restarts the management server",
        )


def _param_error(exc: Exception) -> bool:
    return getattr(exc, "errorcode", None) == PARAM_ERROR


def _refused(exc: Exception) -> InputError:
    return InputError("PATH", f"must be accepted by the cloud: {getattr(exc, 'errortext', exc)}")


def _iso_checksum_of(client: Client, iso_id: object) -> str | None:
    """The checksum the cloud recorded for a version's ISO (None when it does not say)."""
    if not iso_id:
        return None
    try:
        items = client.list("listIsos", id=str(iso_id), isofilter="all")
    except OperationError:
        return None
    for item in items:
        if item.get("id") == iso_id and item.get("checksum"):
            return str(item["checksum"]).lower()
    return None


def _same_scope(item: dict[str, Any], zone_id: str | None) -> bool:
    """Two entries compete when either is for all zones or both are for the same zone."""
    other = item.get("zoneid")
    return not other or not zone_id or other == zone_id


def _existing_version(
    client: Client, version: str, display: str, zone_id: str | None, checksum: str
) -> dict[str, Any] | None:
    """The entry to reuse for this bundle, None to add one; InputError for a competing entry."""
    for item in client.list("listKubernetesSupportedVersions"):
        if item.get("semanticversion") != version or not _same_scope(item, zone_id):
            continue
        recorded = _iso_checksum_of(client, item.get("isoid"))
        if item.get("name") == display and recorded in (None, checksum.lower()):
            return item
        what = "from a different ISO" if item.get("name") == display else f"as {item.get('name')!r}"
        raise InputError(
            "PATH",
            f"must be a Kubernetes version not yet registered in the cloud: {version} is already "
            f"registered {what} (id {item.get('id')}, zone {item.get('zonename') or 'all zones'}); "
            "delete that version first (deleteKubernetesSupportedVersion) or register with the same "
            "--name and ISO",
        )
    return None


def _from_version(item: dict[str, Any]) -> RegisteredVersion:
    return RegisteredVersion(
        id=str(item.get("id", "")),
        name=str(item.get("name", "")),
        kubernetes_version=str(item.get("semanticversion", "")),
        kind="kubernetes-version",
        state=str(item.get("isostate") or item.get("state") or ""),
        zone=str(item.get("zonename") or item.get("zoneid") or "all zones"),
    )


def register_bundle(
    client: Client,
    iso: str | Path,
    url: str,
    *,
    zone: str | None = None,
    name: str | None = None,
    min_cpu: int = MIN_CPU,
    min_memory_mb: int = MIN_MEMORY_MB,
) -> RegisteredVersion:
    """Verify ``iso`` and register it from ``url`` (where the cloud can download it)."""
    path = Path(iso).expanduser()
    if not is_iso(path):
        raise InputError(
            "PATH", f"must be a bundle ISO (build one with koral-play bundle build; got {str(iso)!r})"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("--url", f"must be the http(s) URL the cloud downloads the ISO from (got {url!r})")
    if min_cpu < MIN_CPU or min_memory_mb < MIN_MEMORY_MB:
        raise InputError(
            "--min-cpu", f"must be >= {MIN_CPU} CPUs and >= {MIN_MEMORY_MB} MB (Kubernetes minimum)"
        )
    manifest = verify_bundle(path)
    display = name or manifest.name
    version = manifest.kubernetes_version
    try:
        check_supported(version)
    except ValueError as exc:
        raise InputError("PATH", f"must be a bundle of a Kubernetes version koral installs ({exc})") from None
    require_kubernetes_service(client)
    zone_id = _zone_id(client, zone)
    checksum = iso_checksum(path)
    try:
        existing = _existing_version(client, version, display, zone_id, checksum)
        if existing is not None:
            return _from_version(existing)
        params: dict[str, Any] = {
            "name": display,
            "semanticversion": version,
            "url": url,
            "checksum": checksum,
            "mincpunumber": min_cpu,
            "minmemory": min_memory_mb,
        }
        if zone_id:
            params["zoneid"] = zone_id
        created = client.call("addKubernetesSupportedVersion", **params)
    except OperationError as exc:
        if _param_error(exc):
            raise _refused(exc) from None
        raise
    return _from_version(created.get("kubernetessupportedversion", created))


def registered_versions(client: Client) -> list[RegisteredVersion]:
    """Kubernetes versions the cloud offers (Mold's supported versions), newest first."""
    require_kubernetes_service(client)
    items = client.list("listKubernetesSupportedVersions")
    versions = [_from_version(i) for i in items]

    def key(v: RegisteredVersion) -> tuple[int, ...]:
        try:
            return tuple(int(p) for p in v.kubernetes_version.split("."))
        except ValueError:
            return (0,)

    return sorted(versions, key=key, reverse=True)
