"""ISOs and Mold / CloudStack Kubernetes Service supported versions in the test cloud.

Commands (names, parameters, response fields and error texts as the CloudStack API reference
and the Kubernetes Service plugin define them):

* ``registerIso`` (sync, user): ``name``, ``url``, ``zoneid`` (``-1`` = all zones) required;
  ``displaytext`` (defaults to the name), ``bootable`` (default true: then ``ostypeid`` is
  needed), ``checksum`` (``{ALGORITHM}hex`` with a Java digest name such as ``SHA-256``, plain
  hex = MD5), ``ispublic``, ``isfeatured``, ``isextractable``. Answer: a list response
  ``{count, iso: [...]}``. The record starts not ready; secondary storage then downloads the URL
  in the background and checks the checksum: ``isready`` true and status
  ``Successfully Installed``, or the failure in ``status``.
* ``deleteIso`` (async, user; others' ISOs need an admin): ``id``; job result ``{success}``.
* ``addKubernetesSupportedVersion`` (sync, admin): ``semanticversion``, ``mincpunumber``,
  ``minmemory`` required; ``name`` (default ``v<version>[-<zone name>]``), ``zoneid``, ``url``,
  ``checksum``, ``directdownload``. Registers the binaries ISO ``<name>-Kubernetes-Binaries-ISO``
  as the system account (public, not bootable) and answers ``{kubernetessupportedversion: {...}}``.
  Like the real service it does NOT refuse a second entry with the same version: clients check.
* ``listKubernetesSupportedVersions`` (list, user): ``id``, ``zoneid`` (that zone or all-zone
  entries), ``keyword``, ``minimumsemanticversion`` | ``minimumkubernetesversionid``.
* ``deleteKubernetesSupportedVersion`` (async, admin): ``id``; deletes the ISO as well.

The Kubernetes commands exist only while ``cloud.kubernetes.service.enabled`` is true (the
plugin registers them at start-up, KubernetesClusterManagerImpl.getCommands): otherwise a signed
request for one answers HTTP 401 ``errorresponse`` like any command the server does not have
(ApiServer.verifyRequest returns false before the signature check; ApiServlet writes 401).
``isostate`` follows the ISO's store state: ``Creating`` while downloading, ``Ready``, ``Failed``.
One deviation: CloudStack refuses URLs whose host is a loopback address; this simulator lives on
loopback only, so it accepts them (and downloads only what the test itself serves).
"""

from __future__ import annotations

import hashlib
import re
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from tests.cloudsim import errors as E
from tests.cloudsim.commands import Api, AsyncPlan, command
from tests.cloudsim.errors import ApiError, invalid_value
from tests.cloudsim.jobs import cs_time, new_id
from tests.cloudsim.model import Record, public
from tests.cloudsim.request import Request

_ISO_PKG = "org.apache.cloudstack.api.command.user.iso"
_K8S_ADMIN = "org.apache.cloudstack.api.command.admin.kubernetes.version"
_K8S_USER = "org.apache.cloudstack.api.command.user.kubernetes.version"
MIN_KUBERNETES_VERSION = "1.11.0"
MIN_HA_VERSION = "1.16.0"
MIN_AUTOSCALER_VERSION = "1.15.0"
MIN_CPU = 2
MIN_MEMORY = 2048
ISO_EXTENSIONS = (".iso", ".iso.zip", ".iso.bz2", ".iso.gz")
DIGESTS = {"MD5": "md5", "SHA-1": "sha1", "SHA-224": "sha224", "SHA-256": "sha256", "SHA-384": "sha384"}
DIGESTS["SHA-512"] = "sha512"
_CHECKSUM = re.compile(r"^(?:\{([A-Za-z0-9-]+)\})?([0-9a-fA-F]+)$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")
VERSIONS_KEY = "kubernetes_versions"


# ---- helpers -------------------------------------------------------------------------------------
def _versions(api: Api) -> dict[str, Record]:
    table: dict[str, Record] = api.extra.setdefault(VERSIONS_KEY, {})
    return table


def _semantic(text: str) -> tuple[int, ...]:
    parts = text.split(".")
    if not _VERSION.match(text) or len(parts) < 3:
        raise ApiError(
            E.PARAM_ERROR,
            f"Invalid version format, {text}. "
            "Semantic version should be specified in MAJOR.MINOR.PATCH format",
        )
    return tuple(int(p) for p in parts)


def _parse_checksum(raw: str | None) -> tuple[str, str] | None:
    """``{SHA-256}hex`` -> ("sha256", hex); plain hex is MD5, as CloudStack reads it."""
    if raw is None:
        return None
    m = _CHECKSUM.match(raw.strip())
    if not m:
        raise invalid_value(
            f"Checksum {raw} is not a hexadecimal string, optionally prefixed by {{algorithm}}"
        )
    algorithm = m.group(1) or "MD5"
    name = DIGESTS.get(algorithm)
    if name is None:
        raise invalid_value(
            f"Checksum algorithm {algorithm} is not supported (use one of {', '.join(DIGESTS)})"
        )
    digest = m.group(2).lower()
    if len(digest) != hashlib.new(name).digest_size * 2:
        raise invalid_value(f"Checksum {raw} has the wrong length for {algorithm}")
    return name, digest


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise invalid_value(f"Unsupported scheme for url: {url}")
    if not parts.hostname:
        raise invalid_value(f"Please specify a valid URL. URL:{url} has no host")
    if not parts.path.lower().endswith(ISO_EXTENSIONS):
        raise invalid_value(f"Please specify a valid URL. URL:{url} is an invalid for the format iso")


def _download(api: Api, iso_id: str, url: str, checksum: tuple[str, str] | None) -> None:
    """What secondary storage does: fetch the URL, check the checksum, mark the ISO ready."""
    digest = hashlib.new(checksum[0] if checksum else "md5")
    size = 0
    error: str | None = None
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # the test's own loopback server
            for block in iter(lambda: resp.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    except (urllib.error.URLError, OSError) as exc:
        error = f"Failed to download {url}: {getattr(exc, 'reason', exc)}"
    if error is None and checksum is not None and digest.hexdigest() != checksum[1]:
        error = f'checksum "{digest.hexdigest()}" didn\'t match the given value, "{checksum[1]}"'
    with api.cloud.lock:
        rec = api.cloud.isos.get(iso_id)
        if rec is None:  # deleted while downloading
            return
        if error is None:
            rec.update(isready=True, status="Successfully Installed", size=size, _store_state="Ready")
        else:
            rec.update(isready=False, status=error, _store_state="Failed")
        api.extra.setdefault("downloads", []).append(url)


def register_iso(
    api: Api,
    req: Request,
    *,
    name: str,
    url: str,
    zone: Record | None,
    checksum: str | None,
    bootable: bool,
    account: str,
    public_iso: bool,
    display: str | None = None,
) -> Record:
    """Validate and record an ISO, then start its download (caller holds the cloud lock)."""
    _check_url(url)
    parsed = _parse_checksum(checksum)
    if bootable and req.get("ostypeid") is None:
        raise invalid_value("Please pass a valid GuestOS Id")
    iid = new_id()
    rec: Record = {
        "id": iid,
        "name": name,
        "displaytext": display or name,
        "ispublic": public_iso,
        "created": cs_time(),
        "isready": False,
        "bootable": bootable,
        "isfeatured": req.flag("isfeatured", False),
        "crossZones": zone is None,
        "ostypeid": req.get("ostypeid") or new_id(),
        "ostypename": "Other Linux (64-bit)",
        "account": account,
        "zoneid": zone["id"] if zone else None,
        "zonename": zone["name"] if zone else None,
        "status": "",
        "size": 0,
        "domain": "ROOT",
        "domainid": api.cloud.domain_id,
        "isextractable": req.flag("isextractable", False),
        "checksum": checksum,
        "directdownload": req.flag("directdownload", False),
        "tags": [],
        "_store_state": "Creating",
        "_owner_id": req.account.id if account == req.account.name else "system",
    }
    if zone is None:
        rec.pop("zoneid")
        rec.pop("zonename")
    api.cloud.isos[iid] = rec
    threading.Thread(target=_download, args=(api, iid, url, parsed), name="cloudsim-iso", daemon=True).start()
    return rec


# ---- ISOs ----------------------------------------------------------------------------------------
@command("registerIso", "sync", f"{_ISO_PKG}.RegisterIsoCmd")
def register_iso_cmd(api: Api, req: Request) -> dict[str, Any]:
    name = req.require("name")
    url = req.require("url")
    zone_raw = req.require("zoneid")
    zone = None if zone_raw == "-1" else req.entity(api.cloud.zones, "zoneid")
    rec = register_iso(
        api,
        req,
        name=name,
        url=url,
        zone=zone,
        checksum=req.get("checksum"),
        bootable=req.flag("bootable", True),
        account=req.account.name,
        public_iso=req.flag("ispublic", False),
        display=req.get("displaytext"),
    )
    return {"count": 1, "iso": [public(rec)]}


@command("deleteIso", "async", f"{_ISO_PKG}.DeleteIsoCmd")
def delete_iso_cmd(api: Api, req: Request) -> AsyncPlan:
    rec = req.entity(api.cloud.isos, "id")
    assert rec is not None
    if not req.account.is_admin and rec.get("_owner_id") != req.account.id:
        raise ApiError(
            E.ACCOUNT_ERROR,
            f"Account {req.account.name} does not have permission to operate with resource ISO {rec['id']}",
            E.CS_PERMISSION_DENIED,
        )

    def body() -> dict[str, Any]:
        with api.cloud.lock:
            api.cloud.isos.pop(rec["id"], None)
        return {"success": True}

    return AsyncPlan(body, instance_type="Iso", instance_id=rec["id"])


# ---- Kubernetes supported versions -----------------------------------------------------------------
def _version_view(api: Api, rec: Record) -> Record:
    out = dict(rec)
    iso = api.cloud.isos.get(rec["isoid"])
    if iso is not None:
        out["isostate"] = iso.get("_store_state", "Ready")
        out["isoname"] = iso["name"]
    else:
        for key in ("isoid", "isoname", "isostate"):
            out.pop(key, None)
    return out


@command(
    "addKubernetesSupportedVersion",
    "sync",
    f"{_K8S_ADMIN}.AddKubernetesSupportedVersionCmd",
    admin_only=True,
    plugin="kubernetes",
)
def add_kubernetes_supported_version(api: Api, req: Request) -> dict[str, Any]:
    version = req.require("semanticversion")
    if not _VERSION.match(version):
        raise ApiError(E.PARAM_ERROR, "Invalid version format. Semantic version needed")
    min_cpu = req.integer("mincpunumber", required=True)
    min_memory = req.integer("minmemory", required=True)
    zone = req.entity(api.cloud.zones, "zoneid", required=False)
    if min_cpu is None or min_cpu < MIN_CPU:
        raise invalid_value(f"Invalid value for mincpunumber parameter. Minimum {MIN_CPU} vCPUs required.")
    if min_memory is None or min_memory < MIN_MEMORY:
        raise invalid_value(f"Invalid value for minmemory parameter. Minimum {MIN_MEMORY}MB memory required")
    if _semantic(version) < _semantic(MIN_KUBERNETES_VERSION):
        raise invalid_value(
            "New supported Kubernetes version cannot be added as "
            f"{MIN_KUBERNETES_VERSION} is minimum version supported by Kubernetes Service"
        )
    url = req.get("url")
    if not url:
        raise invalid_value(f"Invalid URL for ISO specified, {url}")
    name = req.get("name") or (f"v{version}-{zone['name']}" if zone else f"v{version}")
    iso = register_iso(
        api,
        req,
        name=f"{name}-Kubernetes-Binaries-ISO",
        url=url,
        zone=zone,
        checksum=req.get("checksum"),
        bootable=False,
        account="system",
        public_iso=True,
    )
    vid = new_id()
    rec: Record = {
        "id": vid,
        "name": name,
        "semanticversion": version,
        "isoid": iso["id"],
        "isoname": iso["name"],
        "isostate": "Creating",
        "supportsha": _semantic(version) >= _semantic(MIN_HA_VERSION),
        "supportsautoscaling": _semantic(version) >= _semantic(MIN_AUTOSCALER_VERSION),
        "state": "Enabled",
        "mincpunumber": min_cpu,
        "minmemory": min_memory,
        "directdownload": req.flag("directdownload", False),
        "created": cs_time(),
    }
    if zone is not None:
        rec["zoneid"] = zone["id"]
        rec["zonename"] = zone["name"]
    _versions(api)[vid] = rec
    return {"kubernetessupportedversion": public(_version_view(api, rec))}


@command(
    "listKubernetesSupportedVersions",
    "list",
    f"{_K8S_USER}.ListKubernetesSupportedVersionsCmd",
    plugin="kubernetes",
)
def list_kubernetes_supported_versions(api: Api, req: Request) -> tuple[str, list[Record]]:
    table = _versions(api)
    minimum = req.get("minimumsemanticversion")
    min_id = req.get("minimumkubernetesversionid")
    if minimum and min_id:
        raise E.internal(
            "Both parameters minimumsemanticversion and minimumkubernetesversionid can not be passed together"
        )
    if min_id:
        found = table.get(min_id)
        if found is None:
            raise invalid_value("Invalid minimumkubernetesversionid passed")
        minimum = found["semanticversion"]
    out = []
    for rec in table.values():
        if req.get("id") and rec["id"] != req.get("id"):
            continue
        zone_id = req.get("zoneid")
        if zone_id and rec.get("zoneid") not in (None, zone_id):
            continue
        keyword = req.get("keyword")
        if keyword and keyword.lower() not in rec["name"].lower():
            continue
        if minimum and _semantic(minimum) > _semantic(rec["semanticversion"]):
            continue
        out.append(_version_view(api, rec))
    return "kubernetessupportedversion", out


@command(
    "deleteKubernetesSupportedVersion",
    "async",
    f"{_K8S_ADMIN}.DeleteKubernetesSupportedVersionCmd",
    admin_only=True,
    plugin="kubernetes",
)
def delete_kubernetes_supported_version(api: Api, req: Request) -> AsyncPlan:
    rec = req.entity(_versions(api), "id")
    assert rec is not None

    def body() -> dict[str, Any]:
        with api.cloud.lock:
            api.cloud.isos.pop(rec["isoid"], None)
            _versions(api).pop(rec["id"], None)
        return {"success": True}

    return AsyncPlan(body, instance_type="KubernetesSupportedVersion", instance_id=rec["id"])


def wait_isos_settled(api: Api, timeout: float = 30.0) -> list[Record]:
    """Test helper: wait until no ISO download is in progress; the ISOs as the API shows them."""
    import time

    end = time.monotonic() + timeout
    while True:
        with api.cloud.lock:
            busy = [r for r in api.cloud.isos.values() if r.get("_store_state") == "Creating"]
            if not busy or time.monotonic() > end:
                return [public(r) for r in api.cloud.isos.values()]
        time.sleep(0.05)
