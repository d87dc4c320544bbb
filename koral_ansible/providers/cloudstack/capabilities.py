"""What this cloud and this account may do, read before acting (not learnt from refusals).

- ``listCapabilities`` (any account; apache/cloudstack ListCapabilitiesCmd /
  ManagementServerImpl.listCapabilities): ``kubernetesserviceenabled`` (the Kubernetes service
  plugin is on, so its commands exist at all), ``allowuserexpungerecovervm`` (users may expunge).
- ``listAccounts`` (any account): a user sees only its own account, an administrator sees the
  accounts of its domain, its own among them; so the caller is an administrator exactly when an
  administrator's account is listed (``accounttype`` 1 root admin, 2 domain admin, 4 resource
  domain admin; ``roletype`` Admin, DomainAdmin, ResourceAdmin).
"""

from __future__ import annotations

from typing import Any, Protocol

ADMIN_ACCOUNT_TYPES = frozenset({1, 2, 4})
ADMIN_ROLE_TYPES = frozenset({"Admin", "DomainAdmin", "ResourceAdmin"})


class Client(Protocol):
    def call(self, command: str, **params: Any) -> dict[str, Any]: ...

    def list(self, command: str, **params: Any) -> list[dict[str, Any]]: ...


def capabilities(client: Client) -> dict[str, Any]:
    """The ``capability`` object of listCapabilities."""
    caps = client.call("listCapabilities").get("capability")
    return caps if isinstance(caps, dict) else {}


def flag(caps: dict[str, Any], name: str) -> bool:
    value = caps.get(name)
    return value is True or str(value).lower() == "true"


def kubernetes_service_enabled(client: Client) -> bool:
    return flag(capabilities(client), "kubernetesserviceenabled")


def caller_is_admin(client: Client) -> bool:
    for account in client.list("listAccounts"):
        try:
            kind = int(account.get("accounttype", -1))
        except (TypeError, ValueError):
            kind = -1
        if kind in ADMIN_ACCOUNT_TYPES or account.get("roletype") in ADMIN_ROLE_TYPES:
            return True
    return False


def may_expunge(client: Client) -> bool:
    """destroyVirtualMachine may carry ``expunge=true`` (VmDestroyPermissionServiceImpl:
    administrators, or anyone when allow.user.expunge.recover.vm is true)."""
    return flag(capabilities(client), "allowuserexpungerecovervm") or caller_is_admin(client)
