"""The API key pair the cluster's cloud controller manager (CloudStack Kubernetes Provider) uses.

CKS gives the provider the keys of a separate service user ``kubeadmin`` in the cluster owner's
account (apache/cloudstack-kubernetes-provider README.md "Deployment"; apache/cloudstack
plugins/integrations/kubernetes-service ``KubernetesClusterService.KUBEADMIN_ACCOUNT_NAME``).
koral does the same with one user per cluster, ``koral-ccm-<cluster>``, in the operator's
account: ``createUser`` once, then ``getUserKeys`` (the pair it has) or ``registerUserKeys`` (a new
pair: first time, or ``rotate``; the old pair stops working). Where the cloud refuses to make
users or keys for the caller (a User-role account: createUser is for Admin and DomainAdmin,
CreateUserCmd), the operator's own pair is used instead, and said so (``dedicated`` False).

The secret key lives only in the returned object (its repr hides it); callers hand it to the
runner's secrets file, never to extravars, events or messages.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from koral_ansible.providers.cloudstack.client import ApiCallError, CloudClient

# CloudStack answers these when the caller may not do something: 432 the API is not available to
# the caller's role (DynamicRoleBasedAPIAccessChecker), 531 PermissionDeniedException.
_REFUSED = (432, 531)


@dataclass(frozen=True)
class CcmKeys:
    api_key: str
    secret_key: str = field(repr=False)
    user: str  # the CloudStack user the pair belongs to
    dedicated: bool  # False: the operator's own pair (the cloud refused a dedicated user)


def ccm_username(cluster: str) -> str:
    return f"koral-ccm-{cluster}"


def ensure_ccm_keys(client: CloudClient, cluster: str, rotate: bool = False) -> CcmKeys:
    """The provider's key pair for ``cluster``: the dedicated user's (made if missing), else the
    operator's when the cloud refuses to make users or keys for this caller."""
    username = ccm_username(cluster)
    try:
        user = next(iter(client.list("listUsers", username=username)), None)
        if user is None:
            account = client.list("listAccounts")[0]
            user = client.call(
                "createUser",
                account=account["name"],
                domainid=account["domainid"],
                username=username,
                # Never used to log in and never stored: API keys are the only way in.
                password=secrets.token_urlsafe(32),
                firstname="koral",
                lastname=f"ccm {cluster}",
                email=f"{username}@koral.invalid",
            )["user"]
        keys: dict[str, str] = {}
        if not rotate:
            keys = client.call("getUserKeys", id=user["id"]).get("userkeys") or {}
        if not keys.get("apikey") or not keys.get("secretkey"):
            keys = client.call("registerUserKeys", id=user["id"])["userkeys"]
    except ApiCallError as exc:
        if exc.errorcode not in _REFUSED:
            raise
        return CcmKeys(client.config.key, client.config.secret, "", dedicated=False)
    return CcmKeys(keys["apikey"], keys["secretkey"], username, dedicated=True)


def delete_ccm_user(client: CloudClient, cluster: str) -> bool:
    """Remove the cluster's dedicated user (and with it its keys); False if there was none, or
    the caller may not manage users (then it never made one)."""
    try:
        user = next(iter(client.list("listUsers", username=ccm_username(cluster))), None)
        if user is None:
            return False
        client.call("deleteUser", id=user["id"])
    except ApiCallError as exc:
        if exc.errorcode not in _REFUSED:
            raise
        return False
    return True


def provider_may_start(client: CloudClient) -> bool:
    """Whether the provider's start-up call is open to this account (the dedicated user has its
    account's role): v1.2.0 ``newCSCloud`` -> ``getManagementServerVersion`` calls
    ``listManagementServersMetrics`` and returns its error, so the CCM exits at start-up
    (apache/cloudstack-kubernetes-provider ``cloudstack.go``); the command is for admins only
    (apache/cloudstack ``plugins/metrics/.../ListMgmtsMetricsCmd.java`` ``authorized =
    {RoleType.Admin}``) unless the account's role is granted it."""
    try:
        client.call("listManagementServersMetrics")
    except ApiCallError as exc:
        if exc.errorcode in _REFUSED:
            return False
        raise
    return True
