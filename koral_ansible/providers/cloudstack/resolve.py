"""Validation: look every name of the spec up in the cloud, before anything is created."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from koral_ansible.errors import InputError, OperationError
from koral_ansible.providers.cloudstack import plan
from koral_ansible.providers.cloudstack.client import CloudClient
from koral_ansible.providers.cloudstack.config import TEMPLATE_ENV
from koral_ansible.spec import ClusterSpec

K8S_OFFERING = "DefaultNetworkOfferingforKubernetesService"
SETTINGS = (
    "cloud.kubernetes.service.enabled",
    "cloud.kubernetes.cluster.max.size",
    "cloud.kubernetes.cluster.network.offering",
)


@dataclass(frozen=True)
class Resolved:
    """The cloud ids a spec names."""

    zone_id: str
    zone_name: str
    offering_id: str
    template_id: str
    network_id: str | None  # the given network; None: auto-create
    network_offering_id: str | None
    keypair: str | None
    max_size: int
    settings: dict[str, str]


def _pick(items: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    by_id = [i for i in items if str(i.get("id")) == wanted]
    if by_id:
        return by_id[0]
    by_name = [i for i in items if str(i.get("name")) == wanted]
    return by_name[0] if by_name else None


def _names(items: list[dict[str, Any]]) -> str:
    names = sorted({str(i.get("name")) for i in items})
    return ", ".join(names[:20]) + (" ..." if len(names) > 20 else "") if names else "none"


def read_settings(client: CloudClient) -> dict[str, str]:
    """The Kubernetes global settings this account may read (admins only; others get {})."""
    out: dict[str, str] = {}
    for name in SETTINGS:
        try:
            items = client.list("listConfigurations", name=name)
        except OperationError:
            return out  # not allowed for this account: the checks fall back to defaults
        for item in items:
            if item.get("name") == name:
                out[name] = str(item.get("value", ""))
    return out


def resolve(client: CloudClient, spec: ClusterSpec, template: str | None) -> Resolved:
    """Check the cloud's settings and every name of the spec; ``template`` is the configured fallback
    (``KORAL_CLOUDSTACK_TEMPLATE`` / ``koral_template``) used when the spec has no ``template``."""
    settings = read_settings(client)
    if settings.get("cloud.kubernetes.service.enabled", "true").lower() != "true":
        raise InputError(
            "cloud.kubernetes.service.enabled",
            "is false on this cloud: an administrator must "
            "enable the Kubernetes service (global setting) first",
        )
    raw_max = settings.get("cloud.kubernetes.cluster.max.size", "")
    max_size = int(raw_max) if raw_max.isdigit() else 10
    problem = plan.check_size(spec.size, max_size)
    if problem:
        raise InputError("size", problem)

    zones = client.list("listZones")
    zone = _pick(zones, spec.zone)
    if zone is None:
        raise InputError("zone", f"no zone {spec.zone!r} in this cloud (allowed: {_names(zones)})")
    if zone.get("allocationstate", "Enabled") != "Enabled":
        raise InputError("zone", f"zone {zone['name']!r} is {zone.get('allocationstate')} (must be Enabled)")

    offerings = client.list("listServiceOfferings")
    big = [o for o in offerings if plan.offering_ok(int(o.get("cpunumber", 0)), int(o.get("memory", 0)))]
    offering = _pick(offerings, spec.compute_offering or "")
    if offering is None:
        raise InputError(
            "compute_offering", f"no compute offering {spec.compute_offering!r} (allowed: {_names(big)})"
        )
    if offering not in big:
        raise InputError(
            "compute_offering",
            f"{offering['name']!r} has {offering.get('cpunumber')} vCPU and "
            f"{offering.get('memory')} MB; needs >= 2 vCPU and >= 2048 MB (allowed: {_names(big)})",
        )

    templates = [
        t
        for t in client.list("listTemplates", templatefilter="executable", zoneid=zone["id"])
        if t.get("isready", True)
    ]
    # The spec's field first, then the configured fallback; errors name where the value came from.
    source = "template" if spec.template else TEMPLATE_ENV
    template = spec.template or template
    if not template:
        raise InputError(
            "template",
            f"must name the node template (or set {TEMPLATE_ENV} / cloudstack.ini koral_template; "
            f"ready templates in zone {zone['name']}: {_names(templates)})",
        )
    tmpl = _pick(templates, template)
    if tmpl is None:
        raise InputError(
            source,
            f"no ready template {template!r} in zone {zone['name']} (allowed: {_names(templates)})",
        )
    size_gb = -(-int(tmpl.get("size") or 0) // 1024**3)
    if spec.root_disk_size < size_gb:
        raise InputError(
            "root_disk_size", f"must be at least the template size, {size_gb} GB (got {spec.root_disk_size})"
        )

    keypair = None
    if spec.ssh_keypair:
        pairs = client.list("listSSHKeyPairs")
        if not any(p.get("name") == spec.ssh_keypair for p in pairs):
            raise InputError(
                "ssh_keypair", f"no SSH key pair {spec.ssh_keypair!r} (allowed: {_names(pairs)})"
            )
        keypair = spec.ssh_keypair

    network_id = None
    offering_id = None
    if spec.network:
        nets = client.list("listNetworks", zoneid=zone["id"])
        net = _pick(nets, spec.network)
        if net is None:
            raise InputError(
                "network",
                f"no network {spec.network!r} in zone {zone['name']} (allowed: "
                f"{_names(nets)}, or leave it unset to create one)",
            )
        if str(net.get("type", "Isolated")) != "Isolated":
            raise InputError("network", f"{net['name']!r} is a {net.get('type')} network; must be Isolated")
        network_id = str(net["id"])
    else:
        name = settings.get("cloud.kubernetes.cluster.network.offering") or K8S_OFFERING
        offs = client.list("listNetworkOfferings", zoneid=zone["id"])
        off = _pick(offs, name)
        if off is None or off.get("state", "Enabled") != "Enabled":
            enabled = [o for o in offs if o.get("state") == "Enabled" and o.get("guestiptype") == "Isolated"]
            raise InputError(
                "network",
                f"no network given and the Kubernetes network offering {name!r} is not "
                f"available (enabled isolated offerings: {_names(enabled)})",
            )
        offering_id = str(off["id"])

    return Resolved(
        str(zone["id"]),
        str(zone["name"]),
        str(offering["id"]),
        str(tmpl["id"]),
        network_id,
        offering_id,
        keypair,
        max_size,
        settings,
    )
