"""The API commands of the test cloud: validation, records, async job bodies.

Each command is registered with :func:`command`; its kind decides how the server answers:
``list`` handlers return ``(item_key, records)`` and get filtering by tags and pagination;
``sync`` handlers return the response object; ``async`` handlers validate at once and return
an :class:`AsyncPlan` whose body runs later as a job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.cloudsim import errors as E
from tests.cloudsim.backend import MachineBackend, MachineSpec
from tests.cloudsim.errors import bad_id, conflict, internal, invalid_value
from tests.cloudsim.jobs import JobFn, JobRunner, cs_time, new_id
from tests.cloudsim.model import Cloud, Record, public
from tests.cloudsim.request import Request, tags_match

Kind = Literal["list", "sync", "async"]
VM_NAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
_PKG = "org.apache.cloudstack.api.command.user"
# The version this test cloud answers as (listCapabilities, listManagementServersMetrics).
CLOUDSTACK_VERSION = "4.20.1.0"


@dataclass
class AsyncPlan:
    body: JobFn
    on_error: Callable[[], None] | None = None
    created_id: str | None = None  # BaseAsyncCreateCmd answers {id, jobid}
    instance_type: str | None = None
    instance_id: str | None = None


@dataclass(frozen=True)
class Command:
    name: str
    kind: Kind
    fn: Callable[[Api, Request], Any]
    cmd_class: str
    admin_only: bool = False
    # A plugin's commands exist only while the plugin is on (it registers them at start-up):
    # "kubernetes" = cloud.kubernetes.service.enabled (KubernetesClusterManagerImpl.getCommands).
    plugin: str | None = None


COMMANDS: dict[str, Command] = {}


def command(
    name: str, kind: Kind, cmd_class: str = "", admin_only: bool = False, plugin: str | None = None
) -> Callable[..., Any]:
    def register(fn: Callable[[Api, Request], Any]) -> Callable[[Api, Request], Any]:
        COMMANDS[name.lower()] = Command(name, kind, fn, cmd_class or f"{_PKG}.{name}Cmd", admin_only, plugin)
        return fn

    return register


@dataclass
class Api:
    cloud: Cloud
    backend: MachineBackend
    jobs: JobRunner
    extra: dict[str, Any] = field(default_factory=dict)
    _publishing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self) -> None:
        """Hand the backend the whole current rule set (called after every rule change).

        Serialized, view taken inside: concurrent rule jobs never apply an older view last."""
        with self._publishing:
            with self.cloud.lock:
                view = self.cloud.network_view()
            self.backend.apply_network(view)


def _filter(records: list[Record], req: Request, fields: dict[str, str]) -> list[Record]:
    out = []
    for rec in records:
        ok = True
        for param, fld in fields.items():
            want = req.get(param)
            if want is None:
                continue
            have = rec.get(fld)
            ok = have == (want.lower() == "true") if isinstance(have, bool) else str(have) == want
            if not ok:
                break
        kw = req.get("keyword")
        if ok and kw is not None:
            ok = kw.lower() in str(rec.get("name", "")).lower()
        tags = req.maps("tags")
        if ok and tags:
            ok = tags_match(rec, tags)
        if ok:
            out.append(rec)
    return out


def _find_by_name(table: dict[str, Record], name: str) -> Record | None:
    return next((r for r in table.values() if r["name"] == name), None)


# ---- infrastructure lists ----------------------------------------------------------------------
@command("listZones", "list", f"{_PKG}.zone.ListZonesCmd")
def list_zones(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "zone", _filter(list(api.cloud.zones.values()), req, {"id": "id", "name": "name"})


@command("listServiceOfferings", "list", f"{_PKG}.offering.ListServiceOfferingsCmd")
def list_service_offerings(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "serviceoffering", _filter(
        list(api.cloud.service_offerings.values()), req, {"id": "id", "name": "name", "issystem": "issystem"}
    )


@command("listTemplates", "list", f"{_PKG}.template.ListTemplatesCmd")
def list_templates(api: Api, req: Request) -> tuple[str, list[Record]]:
    flt = req.require("templatefilter")
    allowed = ("featured", "self", "selfexecutable", "sharedexecutable", "executable", "community", "all")
    if flt not in allowed:
        raise invalid_value(f"templatefilter must be one of {', '.join(allowed)}")
    recs = _filter(list(api.cloud.templates.values()), req, {"id": "id", "name": "name", "zoneid": "zoneid"})
    if flt == "featured":
        recs = [r for r in recs if r["isfeatured"]]
    return "template", recs


@command("listIsos", "list", f"{_PKG}.iso.ListIsosCmd")
def list_isos(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "iso", _filter(
        list(api.cloud.isos.values()),
        req,
        {"id": "id", "name": "name", "zoneid": "zoneid", "bootable": "bootable"},
    )


@command("listNetworkOfferings", "list", f"{_PKG}.network.ListNetworkOfferingsCmd")
def list_network_offerings(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "networkoffering", _filter(
        list(api.cloud.network_offerings.values()),
        req,
        {
            "id": "id",
            "name": "name",
            "state": "state",
            "guestiptype": "guestiptype",
            "forvpc": "forvpc",
            "isdefault": "isdefault",
        },
    )


@command(
    "listConfigurations",
    "list",
    "org.apache.cloudstack.api.command.admin.config.ListCfgsByCmd",
    admin_only=True,
)
def list_configurations(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "configuration", _filter(
        list(api.cloud.configurations.values()), req, {"name": "name", "category": "category"}
    )


@command("listCapabilities", "sync", f"{_PKG}.config.ListCapabilitiesCmd")
def list_capabilities(api: Api, req: Request) -> dict[str, Any]:
    """CapabilitiesResponse (booleans as JSON booleans), from ManagementServerImpl.listCapabilities."""
    return {
        "capability": {
            "securitygroupsenabled": False,
            "dynamicrolesenabled": True,
            "cloudstackversion": CLOUDSTACK_VERSION,
            "userpublictemplateenabled": True,
            "supportELB": "false",
            "projectinviterequired": False,
            "allowusercreateprojects": True,
            "customdiskofferingminsize": 1,
            "customdiskofferingmaxsize": 1024,
            "regionsecondaryenabled": False,
            "apilimitinterval": 1,
            "apilimitmax": 10000,
            "kvmsnapshotenabled": True,
            "allowuserviewdestroyedvm": False,
            "allowuserexpungerecovervm": _setting(api, "allow.user.expunge.recover.vm") == "true",
            "allowuserexpungerecovervolume": False,
            "allowuserviewalldomainaccounts": False,
            "kubernetesserviceenabled": api.cloud.configurations["cloud.kubernetes.service.enabled"]["value"]
            == "true",
            "kubernetesclusterexperimentalfeaturesenabled": False,
            "defaultuipagesize": 20,
        }
    }


@command(
    "listManagementServersMetrics",
    "list",
    "org.apache.cloudstack.api.ListMgmtsMetricsCmd",
    admin_only=True,
)
def list_management_servers_metrics(api: Api, req: Request) -> tuple[str, list[Record]]:
    """plugins/metrics ListMgmtsMetricsCmd (since 4.17, authorized = {RoleType.Admin}): one
    ManagementServerMetricsResponse per management server, listed as "managementserver". The
    CloudStack Kubernetes Provider reads ``version`` of the first at start-up (cloudstack.go
    getManagementServerVersion)."""
    return "managementserver", [
        {
            "id": "ms-0000-0000-0000-000000000001",
            "name": "cloudsim-ms",
            "state": "Up",
            "version": CLOUDSTACK_VERSION,
            "ipaddress": "127.0.0.1",
            "osdistribution": "Debian 12",
            "agentcount": 0,
        }
    ]


@command("listAccounts", "list", f"{_PKG}.account.ListAccountsCmd")
def list_accounts(api: Api, req: Request) -> tuple[str, list[Record]]:
    acc = req.account
    rec = {
        "id": acc.id,
        "name": acc.name,
        "accounttype": 1 if acc.is_admin else 0,
        "roletype": acc.role,
        "domainid": api.cloud.domain_id,
        "domain": "ROOT",
        "state": "enabled",
        "user": [{"id": acc.user_id, "username": acc.name, "account": acc.name, "state": "enabled"}],
    }
    return "account", _filter([rec], req, {"id": "id", "name": "name"})


# ---- users and their API keys ------------------------------------------------------------------
_USER_PKG = "org.apache.cloudstack.api.command.admin.user"


def _user_view(api: Api, rec: Record) -> Record:
    """UserResponse without the keys (ApiResponseHelper.createUserResponse hides the secret key)."""
    return {k: v for k, v in public(rec).items() if k not in ("apikey", "secretkey")}


@command("listUsers", "list", f"{_USER_PKG}.ListUsersCmd")
def list_users(api: Api, req: Request) -> tuple[str, list[Record]]:
    acc = req.account
    recs = [r for r in api.cloud.users.values() if acc.is_admin or r["accountid"] == acc.id]
    return "user", [_user_view(api, r) for r in _filter(recs, req, {"id": "id", "username": "username"})]


@command("createUser", "sync", f"{_USER_PKG}.CreateUserCmd", admin_only=True)
def create_user(api: Api, req: Request) -> dict[str, Any]:
    """CreateUserCmd (authorized Admin, DomainAdmin): account, username, password, firstname,
    lastname, email required (domainid optional: the caller's). AccountManagerImpl.createUser:
    a username taken in the domain -> CloudRuntimeException (530) "The user NAME already exists in
    domain 1"; the new user belongs to the account and has its role, and no API keys."""
    acc = req.account
    for name in ("account", "username", "password", "firstname", "lastname", "email"):
        req.require(name)
    account = req.require("account")
    if account != acc.name:
        raise invalid_value(f"Unable to find account {account} in domain id=1")
    username = req.require("username")
    if any(r["username"] == username for r in api.cloud.users.values()) or username == acc.name:
        raise internal(f"The user {username} already exists in domain 1")
    uid = new_id()
    rec = {
        "id": uid,
        "username": username,
        "firstname": req.get("firstname"),
        "lastname": req.get("lastname"),
        "email": req.get("email"),
        "account": acc.name,
        "accountid": acc.id,
        "accounttype": 1 if acc.is_admin else 0,
        "roletype": acc.role,
        "domainid": api.cloud.domain_id,
        "domain": "ROOT",
        "state": "enabled",
        "created": cs_time(),
        "apikey": None,
        "secretkey": None,
    }
    api.cloud.users[uid] = rec
    return {"user": _user_view(api, rec)}


def _own_or_admin(api: Api, req: Request) -> Record:
    rec = req.entity(api.cloud.users, "id")
    assert rec is not None
    if not req.account.is_admin and rec["accountid"] != req.account.id:
        # AccountManagerImpl.checkAccess -> PermissionDeniedException (531)
        raise E.permission_denied(
            f"Account {req.account.name} does not have permission to operate on user {rec['id']}"
        )
    return rec


@command("registerUserKeys", "sync", f"{_USER_PKG}.RegisterCmd")
def register_user_keys(api: Api, req: Request) -> dict[str, Any]:
    """RegisterCmd (id required): AccountManagerImpl.createApiKeyAndSecretKey makes a new pair every
    call (the old pair stops working) and answers RegisterResponse "userkeys" {apikey, secretkey}."""
    from tests.cloudsim.model import Account

    rec = _own_or_admin(api, req)
    if rec["apikey"]:
        api.cloud.user_keys.pop(rec["apikey"], None)
    rec["apikey"] = base64.urlsafe_b64encode(hashlib.sha256(new_id().encode()).digest()).decode().rstrip("=")
    rec["secretkey"] = (
        base64.urlsafe_b64encode(hashlib.sha256(new_id().encode()).digest()).decode().rstrip("=")
    )
    owner = req.account if rec["accountid"] == req.account.id else None
    role = owner.role if owner else rec["roletype"]
    api.cloud.user_keys[rec["apikey"]] = Account(
        rec["account"], rec["apikey"], rec["secretkey"], role, id=rec["accountid"], user_id=rec["id"]
    )
    return {"userkeys": {"apikey": rec["apikey"], "secretkey": rec["secretkey"]}}


@command("getUserKeys", "sync", f"{_USER_PKG}.GetUserKeysCmd")
def get_user_keys(api: Api, req: Request) -> dict[str, Any]:
    """GetUserKeysCmd (id required, since 4.10): the user's current pair, "userkeys"; a user without
    keys gets an empty object."""
    rec = _own_or_admin(api, req)
    if not rec["apikey"]:
        return {"userkeys": {}}
    return {"userkeys": {"apikey": rec["apikey"], "secretkey": rec["secretkey"]}}


@command("deleteUser", "sync", f"{_USER_PKG}.DeleteUserCmd", admin_only=True)
def delete_user(api: Api, req: Request) -> dict[str, Any]:
    """DeleteUserCmd (id required, authorized Admin, DomainAdmin): the user and its keys go."""
    rec = _own_or_admin(api, req)
    if rec["apikey"]:
        api.cloud.user_keys.pop(rec["apikey"], None)
    del api.cloud.users[rec["id"]]
    return {"success": True}


@command("listDomains", "list", "org.apache.cloudstack.api.command.admin.domain.ListDomainsCmd")
def list_domains(api: Api, req: Request) -> tuple[str, list[Record]]:
    rec = {
        "id": api.cloud.domain_id,
        "name": "ROOT",
        "level": 0,
        "haschild": False,
        "path": "ROOT",
        "state": "Active",
    }
    return "domain", _filter([rec], req, {"id": "id", "name": "name"})


@command("listProjects", "list", f"{_PKG}.project.ListProjectsCmd")
def list_projects(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "project", []


# ---- SSH key pairs -----------------------------------------------------------------------------
def _fingerprint(public_key: str) -> str:
    parts = public_key.split()
    if len(parts) < 2:
        raise invalid_value("Public key is invalid")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise invalid_value("Public key is invalid") from None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@command("listSSHKeyPairs", "list", f"{_PKG}.ssh.ListSSHKeyPairsCmd")
def list_ssh_keypairs(api: Api, req: Request) -> tuple[str, list[Record]]:
    recs = [public(r) for r in api.cloud.keypairs.values()]
    return "sshkeypair", _filter(recs, req, {"name": "name", "fingerprint": "fingerprint", "id": "id"})


def _add_keypair(api: Api, req: Request, name: str, public_key: str) -> Record:
    if _find_by_name(api.cloud.keypairs, name):
        raise invalid_value(f"A key pair with name '{name}' already exists.")
    rid = new_id()
    rec = {
        "id": rid,
        "name": name,
        "fingerprint": _fingerprint(public_key),
        **api.cloud.owner(req.account),
        "_publickey": public_key,
    }
    api.cloud.keypairs[rid] = rec
    return rec


@command("registerSSHKeyPair", "sync", f"{_PKG}.ssh.RegisterSSHKeyPairCmd")
def register_ssh_keypair(api: Api, req: Request) -> dict[str, Any]:
    rec = _add_keypair(api, req, req.require("name"), req.require("publickey"))
    return {"keypair": public(rec)}


@command("createSSHKeyPair", "sync", f"{_PKG}.ssh.CreateSSHKeyPairCmd")
def create_ssh_keypair(api: Api, req: Request) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    priv = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    rec = _add_keypair(api, req, req.require("name"), pub.decode())
    return {"keypair": {**public(rec), "privatekey": priv.decode()}}


@command("deleteSSHKeyPair", "sync", f"{_PKG}.ssh.DeleteSSHKeyPairCmd")
def delete_ssh_keypair(api: Api, req: Request) -> dict[str, Any]:
    name = req.require("name")
    rec = _find_by_name(api.cloud.keypairs, name)
    if rec is None:
        raise invalid_value(
            f"A key pair with name '{name}' does not exist for account {req.account.name} "
            "in specified domain id"
        )
    del api.cloud.keypairs[rec["id"]]
    return {"success": True}


# ---- networks ----------------------------------------------------------------------------------
@command("listNetworks", "list", f"{_PKG}.network.ListNetworksCmd")
def list_networks(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "network", _filter(
        list(api.cloud.networks.values()),
        req,
        {
            "id": "id",
            "zoneid": "zoneid",
            "type": "type",
            "networkofferingid": "networkofferingid",
            "name": "name",
        },
    )


@command("createNetwork", "sync", f"{_PKG}.network.CreateNetworkCmd")
def create_network(api: Api, req: Request) -> dict[str, Any]:
    cloud = api.cloud
    name = req.require("name")
    offering = req.entity(cloud.network_offerings, "networkofferingid")
    zone = req.entity(cloud.zones, "zoneid")
    assert offering is not None and zone is not None
    if offering["state"] != "Enabled":
        raise invalid_value(
            f"Network offering with specified id is not in Enabled state, is {offering['state']}"
        )
    used = {r["cidr"] for r in cloud.networks.values()}
    cidr = req.get("gateway") and req.get("netmask")
    if cidr:
        net = ipaddress.IPv4Network(f"{req.get('gateway')}/{req.get('netmask')}", strict=False)
    else:
        net = cloud.guest_cidr
        while str(net) in used:  # keep every test network distinct (a real zone reuses 10.1.1.0/24)
            net = ipaddress.IPv4Network((int(net.network_address) + net.num_addresses, net.prefixlen))
    rid = new_id()
    rec: Record = {
        "id": rid,
        "name": name,
        "displaytext": req.get("displaytext", name),
        "broadcastdomaintype": "Vlan",
        "traffictype": "Guest",
        "gateway": str(next(net.hosts())),
        "netmask": str(net.netmask),
        "cidr": str(net),
        "zoneid": zone["id"],
        "zonename": zone["name"],
        "networkofferingid": offering["id"],
        "networkofferingname": offering["name"],
        "networkofferingdisplaytext": offering["displaytext"],
        "networkofferingconservemode": True,
        "networkofferingavailability": offering["availability"],
        "issystem": False,
        "state": "Allocated",
        "related": rid,
        "dns1": "8.8.8.8",
        "type": "Isolated",
        "acltype": "Account",
        **cloud.owner(req.account),
        "service": offering["service"],
        "networkdomain": f"cs{rid[:4]}cloud.internal",
        "physicalnetworkid": new_id(),
        "restartrequired": False,
        "specifyipranges": False,
        "canusefordeploy": True,
        "ispersistent": False,
        "tags": [],
        "displaynetwork": True,
        "redundantrouter": False,
        "egressdefaultpolicy": True,
        "supportsvmautoscaling": True,
        "created": cs_time(),
        "receivedbytes": 0,
        "sentbytes": 0,
        "hasannotations": False,
        "networkrate": offering["networkrate"],
        "_dbid": cloud.dbid(),
    }
    cloud.networks[rid] = rec
    return {"network": public(rec)}


def _implement(api: Api, network: Record, req: Request) -> None:
    """First use of an Allocated network: it gets its source NAT address and is Implemented."""
    if network["state"] == "Allocated":
        network["state"] = "Implemented"
    if api.cloud.source_nat_ip(network["id"]) is None:
        api.cloud.allocate_public_ip(req.account, api.cloud.zones[network["zoneid"]], network, True)


@command("deleteNetwork", "async", f"{_PKG}.network.DeleteNetworkCmd")
def delete_network(api: Api, req: Request) -> AsyncPlan:
    removed = api.cloud.removed_row(req.get("id"), "network")
    if removed is not None:
        # DeleteNetworkCmd.getEntityOwnerId (before the job): the UUID resolves to the removed row,
        # NetworkService.getNetwork does not find it.
        raise invalid_value(f"Network ID={removed['_dbid']} doesn't exist")
    network = req.entity(api.cloud.networks, "id")
    assert network is not None
    nid = network["id"]

    def body() -> dict[str, Any]:
        cloud = api.cloud
        with cloud.lock:
            # NetworkOrchestrator.destroyNetwork only logs why ("Can't delete the network, not all
            # user vms are expunged ...") and returns false; DeleteNetworkCmd.execute then throws
            # ServerApiException(INTERNAL_ERROR, "Failed to delete network").
            blocked = nid not in cloud.networks or any(
                any(n["networkid"] == nid for n in vm["nic"]) for vm in cloud.vms.values()
            )
            if blocked:
                raise E.server_api(E.INTERNAL_ERROR, "Failed to delete network")
            ips = {i for i, r in cloud.public_ips.items() if r.get("associatednetworkid") == nid}
            for table in (cloud.firewall_rules, cloud.pf_rules, cloud.lb_rules):
                for rid in [k for k, r in table.items() if r.get("ipaddressid", r.get("publicipid")) in ips]:
                    del table[rid]
            for ip in ips:
                _release(api, ip)
            cloud.remove(cloud.networks, nid, "network")
        api.publish()
        return {"success": True}

    return AsyncPlan(body, instance_type="Network", instance_id=nid)


def _release(api: Api, ip_id: str) -> None:
    """The address goes back to the pool: its row stays, Free (IpAddressManagerImpl)."""
    rec = api.cloud.public_ips.get(ip_id)
    if rec is not None:
        rec["state"] = "Free"
    api.cloud.remove(api.cloud.public_ips, ip_id, "public_ip")


# ---- public IP addresses -----------------------------------------------------------------------
@command("listPublicIpAddresses", "list", f"{_PKG}.address.ListPublicIpAddressesCmd")
def list_public_ips(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "publicipaddress", _filter(
        list(api.cloud.public_ips.values()),
        req,
        {
            "id": "id",
            "ipaddress": "ipaddress",
            "associatednetworkid": "associatednetworkid",
            "issourcenat": "issourcenat",
            "zoneid": "zoneid",
            "isstaticnat": "isstaticnat",
            "forvirtualnetwork": "forvirtualnetwork",
        },
    )


@command("associateIpAddress", "async", f"{_PKG}.address.AssociateIPAddrCmd")
def associate_ip(api: Api, req: Request) -> AsyncPlan:
    cloud = api.cloud
    network = req.entity(cloud.networks, "networkid", required=False)
    zone = req.entity(cloud.zones, "zoneid", required=False)
    if network is None and zone is None:
        raise invalid_value(
            "Unable to figure out zone to assign ip to. Please specify either zoneId, or "
            "networkId, or vpcId in the call"
        )
    zone = zone or cloud.zones[network["zoneid"]]  # type: ignore[index]
    # The first address of an isolated network without one becomes its source NAT address.
    source_nat = network is not None and cloud.source_nat_ip(network["id"]) is None
    rec = cloud.allocate_public_ip(req.account, zone, network, source_nat)
    rec["state"] = "Allocating"

    def body() -> dict[str, Any]:
        with cloud.lock:
            rec["state"] = "Allocated"
            if network is not None and network["state"] == "Allocated":
                network["state"] = "Implemented"
            return {"ipaddress": public(rec)}

    def on_error() -> None:
        with cloud.lock:
            cloud.public_ips.pop(rec["id"], None)

    return AsyncPlan(body, on_error, created_id=rec["id"], instance_type="IpAddress", instance_id=rec["id"])


@command("disassociateIpAddress", "async", f"{_PKG}.address.DisassociateIPAddrCmd")
def disassociate_ip(api: Api, req: Request) -> AsyncPlan:
    freed = api.cloud.removed_row(req.get("id"), "public_ip")
    if freed is not None:
        # IpAddressManagerImpl.releaseIpAddressInternal: "IP address ... is not allocated, so do
        # nothing." - the job succeeds.
        return AsyncPlan(lambda: {"success": True}, instance_type="IpAddress", instance_id=freed["id"])
    rec = req.entity(api.cloud.public_ips, "id")
    assert rec is not None

    def body() -> dict[str, Any]:
        cloud = api.cloud
        with cloud.lock:
            network = cloud.networks.get(rec.get("associatednetworkid") or "")
            if rec["issourcenat"] and network is not None and network["state"] != "Allocated":
                # IpAddressManagerImpl.releaseIpAddressInternal: IllegalArgumentException in the job
                raise internal("IP address is used for source nat purposes and can not be disassociated.")
            for table in (cloud.firewall_rules, cloud.pf_rules):
                for rid in [k for k, r in table.items() if r["ipaddressid"] == rec["id"]]:
                    del table[rid]
            for rid in [k for k, r in cloud.lb_rules.items() if r["publicipid"] == rec["id"]]:
                del cloud.lb_rules[rid]
            _release(api, rec["id"])
        api.publish()
        return {"success": True}

    return AsyncPlan(body, instance_type="IpAddress", instance_id=rec["id"])


# ---- virtual machines --------------------------------------------------------------------------
@command("listVirtualMachines", "list", f"{_PKG}.vm.ListVMsCmd")
def list_vms(api: Api, req: Request) -> tuple[str, list[Record]]:
    recs = _filter(
        list(api.cloud.vms.values()),
        req,
        {"id": "id", "name": "name", "zoneid": "zoneid", "state": "state", "templateid": "templateid"},
    )
    ids = req.ids("ids")
    if ids:
        recs = [r for r in recs if r["id"] in ids]
    net = req.get("networkid")
    if net:
        recs = [r for r in recs if any(n["networkid"] == net for n in r["nic"])]
    if req.get("state") is None:
        recs = (
            [r for r in recs if r["state"] not in ("Destroyed", "Expunging")]
            if not req.account.is_admin
            else recs
        )
    return "virtualmachine", recs


def _vm_job(api: Api, req: Request, vm: Record, action: Callable[[], None], final: str) -> JobFn:
    def body() -> dict[str, Any]:
        action()
        with api.cloud.lock:
            vm["state"] = final
            return {"virtualmachine": public(vm)}

    return body


@command("deployVirtualMachine", "async", f"{_PKG}.vm.DeployVMCmd")
def deploy_vm(api: Api, req: Request) -> AsyncPlan:
    cloud = api.cloud
    zone = req.entity(cloud.zones, "zoneid")
    offering = req.entity(cloud.service_offerings, "serviceofferingid")
    template = req.entity(cloud.templates, "templateid")
    assert zone is not None and offering is not None and template is not None
    if not template["isready"]:
        raise invalid_value(
            f"Template {template['id']} has not been completely downloaded to zone {zone['id']}"
        )
    net_ids = req.ids("networkids")
    if not net_ids:
        raise invalid_value("Can't deploy a VM in an advanced zone without specifying networkids")
    networks = []
    for nid in net_ids:
        net = cloud.networks.get(nid)
        if net is None:
            raise bad_id(req.command, "networkids", nid)
        if net["zoneid"] != zone["id"]:
            raise invalid_value(f"Network id={nid} doesn't belong to zone {zone['id']}")
        networks.append(net)
    vid = new_id()
    name = req.get("name") or f"VM-{vid}"
    if not VM_NAME.match(name):
        raise invalid_value(
            "Invalid name. Vm name can contain ASCII letters 'a' through 'z', the digits '0' "
            "through '9', and the hyphen ('-'), must be between 1 and 63 characters long, and "
            "can't start or end with \"-\" and can't start with digit"
        )
    for vm in cloud.vms.values():
        if vm["name"] == name and any(n["networkid"] in net_ids for n in vm["nic"]):
            raise invalid_value(
                f"The vm with hostName {name} already exists in the network domain: "
                f"{networks[0]['networkdomain']}; network={networks[0]['name']}"
            )
    keys: list[str] = []
    names = [k for k in (req.get("keypair"), *req.ids("keypairs")) if k]
    for kname in names:
        kp = _find_by_name(cloud.keypairs, kname)
        if kp is None:
            raise invalid_value(f"A key pair with name '{kname}' was not found.")
        keys.append(kp["_publickey"])
    userdata = ""
    if req.get("userdata"):
        try:
            userdata = base64.b64decode(req.require("userdata"), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            raise invalid_value("User data is not base64 encoded") from None
    root_gb = req.integer("rootdisksize", template["size"] // 1024**3) or 0
    if root_gb * 1024**3 < template["size"]:
        raise invalid_value(
            f"Unsupported: rootdisksize override ({root_gb} GB) is smaller than template size "
            f"{template['size']}B"
        )
    start = req.flag("startvm", True)
    primary = networks[0]
    ip = cloud.next_guest_ip(primary)
    vm = {
        "id": vid,
        "name": name,
        "displayname": req.get("displayname", name),
        **cloud.owner(req.account),
        "created": cs_time(),
        "state": "Starting" if start else "Stopped",
        "haenable": False,
        "zoneid": zone["id"],
        "zonename": zone["name"],
        "templateid": template["id"],
        "templatename": template["name"],
        "templatedisplaytext": template["displaytext"],
        "passwordenabled": False,
        "serviceofferingid": offering["id"],
        "serviceofferingname": offering["name"],
        "cpunumber": offering["cpunumber"],
        "cpuspeed": offering["cpuspeed"],
        "memory": offering["memory"],
        "guestosid": template["ostypeid"],
        "rootdeviceid": 0,
        "rootdevicetype": "ROOT",
        "securitygroup": [],
        "nic": [
            {
                "id": new_id(),
                "networkid": primary["id"],
                "networkname": primary["name"],
                "netmask": primary["netmask"],
                "gateway": primary["gateway"],
                "ipaddress": ip,
                "isolationuri": "vlan://1234",
                "broadcasturi": "vlan://1234",
                "traffictype": "Guest",
                "type": "Isolated",
                "isdefault": True,
                "macaddress": "02:00:" + ":".join(f"{int(x):02x}" for x in ip.split(".")),
                "secondaryip": [],
                "extradhcpoption": [],
                "deviceid": "0",
            }
        ],
        "hypervisor": "KVM",
        "keypairs": ",".join(names) if names else None,
        "tags": [],
        "affinitygroup": [],
        "displayvm": True,
        "isdynamicallyscalable": False,
        "ostypeid": template["ostypeid"],
        "osdisplayname": template["ostypename"],
        "details": {},
        "instancename": f"i-2-{len(cloud.vms) + 3}-VM",
        "_userdata": userdata,
        "_userdata_b64": req.get("userdata") or "",
        "_rootdisksize": root_gb,
        "_dbid": cloud.dbid(),
    }
    if vm["keypairs"] is None:
        del vm["keypairs"]
    cloud.vms[vid] = vm
    for net in networks:
        _implement(api, net, req)
    spec = MachineSpec(
        vid,
        name,
        ip,
        primary["id"],
        primary["cidr"],
        primary["gateway"],
        offering["cpunumber"],
        offering["memory"],
        root_gb,
        userdata,
        tuple(keys),
    )

    def action() -> None:
        api.backend.create(spec)
        if not start:
            api.backend.stop(vid)

    def on_error() -> None:
        with cloud.lock:
            vm["state"] = "Error"

    return AsyncPlan(
        _vm_job(api, req, vm, action, "Running" if start else "Stopped"),
        on_error,
        created_id=vid,
        instance_type="VirtualMachine",
        instance_id=vid,
    )


def _setting(api: Api, name: str) -> str:
    rec = api.cloud.configurations.get(name)
    return str(rec["value"]) if rec else ""


def _existing_vm(api: Api, req: Request) -> Record:
    vm = req.entity(api.cloud.vms, "id")
    assert vm is not None
    return vm


@command("startVirtualMachine", "async", f"{_PKG}.vm.StartVMCmd")
def start_vm(api: Api, req: Request) -> AsyncPlan:
    vm = _existing_vm(api, req)
    if vm["state"] in ("Destroyed", "Expunging", "Error"):
        raise invalid_value(f"Unable to start VM instance {vm['id']}; it is in state {vm['state']}")
    if vm["state"] != "Running":
        vm["state"] = "Starting"
    return AsyncPlan(
        _vm_job(api, req, vm, lambda: api.backend.start(vm["id"]), "Running"),
        instance_type="VirtualMachine",
        instance_id=vm["id"],
    )


@command("stopVirtualMachine", "async", f"{_PKG}.vm.StopVMCmd")
def stop_vm(api: Api, req: Request) -> AsyncPlan:
    vm = _existing_vm(api, req)
    if vm["state"] in ("Destroyed", "Expunging", "Error"):
        raise invalid_value(f"Unable to stop VM instance {vm['id']}; it is in state {vm['state']}")
    if vm["state"] != "Stopped":
        vm["state"] = "Stopping"
    return AsyncPlan(
        _vm_job(api, req, vm, lambda: api.backend.stop(vm["id"]), "Stopped"),
        instance_type="VirtualMachine",
        instance_id=vm["id"],
    )


@command("rebootVirtualMachine", "async", f"{_PKG}.vm.RebootVMCmd")
def reboot_vm(api: Api, req: Request) -> AsyncPlan:
    vm = _existing_vm(api, req)

    def action() -> None:
        api.backend.stop(vm["id"])
        api.backend.start(vm["id"])

    return AsyncPlan(
        _vm_job(api, req, vm, action, "Running"), instance_type="VirtualMachine", instance_id=vm["id"]
    )


def _expunge(api: Api, vm_id: str) -> None:
    """Remove a VM and everything that points at it (its port forwards and LB mappings).

    A port forward's firewall rule (openfirewall) goes with it: firewall_rules.related is a
    foreign key ON DELETE CASCADE (apache/cloudstack setup/db/create-schema.sql,
    fk_firewall_rules__related)."""
    cloud = api.cloud
    with cloud.lock:
        for rid in [k for k, r in cloud.pf_rules.items() if r["virtualmachineid"] == vm_id]:
            del cloud.pf_rules[rid]
            _drop_related_firewall(api, rid)
        for lb in cloud.lb_rules.values():
            if vm_id in lb["_vms"]:
                lb["_vms"].remove(vm_id)
        cloud.remove(cloud.vms, vm_id, "vm")
    api.publish()


# UserVmManagerImpl.destroyVm and VmDestroyPermissionServiceImpl.checkExpungeVmPermission.
EXPUNGE_DENIED = "Account does not have permission for expunging."


@command("destroyVirtualMachine", "async", f"{_PKG}.vm.DestroyVMCmd")
def destroy_vm(api: Api, req: Request) -> AsyncPlan:
    removed = api.cloud.removed_row(req.get("id"), "vm")
    vm = removed if removed is not None else _existing_vm(api, req)
    expunge = req.flag("expunge", False)
    may_expunge = req.account.is_admin or _setting(api, "allow.user.expunge.recover.vm") == "true"

    def body() -> dict[str, Any]:
        # All of this runs in the job (the API answers {jobid} first), in this order.
        if expunge and not may_expunge:
            raise E.permission_denied(EXPUNGE_DENIED)
        if removed is not None:
            raise invalid_value(f"unable to find a virtual machine with id {vm['_dbid']}")
        with api.cloud.lock:
            if vm["state"] in ("Destroyed", "Expunging") and not expunge:
                return {"virtualmachine": public(vm)}  # "Vm ... is already destroyed": answered as is
        api.backend.destroy(vm["id"])
        with api.cloud.lock:
            vm["state"] = "Expunging" if expunge else "Destroyed"
            out = public(vm)
        if expunge:
            _expunge(api, vm["id"])
        return {"virtualmachine": out}

    return AsyncPlan(body, instance_type="VirtualMachine", instance_id=vm["id"])


@command("getVirtualMachineUserData", "sync", "org.apache.cloudstack.api.command.admin.vm.GetVMUserDataCmd")
def get_vm_user_data(api: Api, req: Request) -> dict[str, Any]:
    """GetVMUserDataCmd: ``virtualmachineuserdata`` {virtualmachineid, userdata (base64, as given)}."""
    vm = req.entity(api.cloud.vms, "virtualmachineid")
    assert vm is not None
    out: dict[str, Any] = {"virtualmachineid": vm["id"]}
    if vm.get("_userdata_b64"):
        out["userdata"] = vm["_userdata_b64"]
    return {"virtualmachineuserdata": out}


@command("expungeVirtualMachine", "async", "org.apache.cloudstack.api.command.admin.vm.ExpungeVMCmd")
def expunge_vm(api: Api, req: Request) -> AsyncPlan:
    vm = _existing_vm(api, req)
    if vm["state"] not in ("Destroyed", "Error"):
        raise invalid_value("Please specify a VM that is in Destroyed or Error state")

    def body() -> dict[str, Any]:
        api.backend.destroy(vm["id"])
        _expunge(api, vm["id"])
        return {"success": True}

    return AsyncPlan(body, instance_type="VirtualMachine", instance_id=vm["id"])


@command("attachIso", "async", f"{_PKG}.iso.AttachIsoCmd")
def attach_iso(api: Api, req: Request) -> AsyncPlan:
    iso = req.entity(api.cloud.isos, "id")
    vm = req.entity(api.cloud.vms, "virtualmachineid")
    assert iso is not None and vm is not None
    if vm.get("isoid"):
        raise invalid_value(f"An ISO is already attached to VM {vm['name']}")

    def action() -> None:
        with api.cloud.lock:
            vm.update(isoid=iso["id"], isoname=iso["name"], isodisplaytext=iso["displaytext"])

    return AsyncPlan(
        _vm_job(api, req, vm, action, vm["state"]), instance_type="VirtualMachine", instance_id=vm["id"]
    )


@command("detachIso", "async", f"{_PKG}.iso.DetachIsoCmd")
def detach_iso(api: Api, req: Request) -> AsyncPlan:
    vm = req.entity(api.cloud.vms, "virtualmachineid")
    assert vm is not None

    def action() -> None:
        with api.cloud.lock:
            for key in ("isoid", "isoname", "isodisplaytext"):
                vm.pop(key, None)

    return AsyncPlan(
        _vm_job(api, req, vm, action, vm["state"]), instance_type="VirtualMachine", instance_id=vm["id"]
    )


# ---- firewall and port forwarding --------------------------------------------------------------
def _ports(req: Request, start: str, end: str) -> tuple[int, int]:
    first = req.integer(start, required=True)
    last = req.integer(end, first)
    assert first is not None and last is not None
    for p in (first, last):
        if not 1 <= p <= 65535:
            raise invalid_value(f"Invalid port specified: {p}")
    if last < first:
        raise invalid_value(f"Start port can't be bigger than end port ({first} > {last})")
    return first, last


def _cidrs(req: Request) -> str:
    raw = req.ids("cidrlist") or ["0.0.0.0/0"]
    for c in raw:
        try:
            ipaddress.IPv4Network(c, strict=False)
        except ValueError:
            raise invalid_value(f"Source cidrs formatting error {c}") from None
    return ",".join(raw)


def _protocol(req: Request, allowed: tuple[str, ...]) -> str:
    proto = req.require("protocol").lower()
    if proto not in allowed:
        raise invalid_value(f"Invalid protocol {proto}; allowed: {', '.join(allowed)}")
    return proto


def _check_public_port_free(api: Api, ip: Record, proto: str, first: int, last: int) -> None:
    for r in api.cloud.pf_rules.values():
        if (
            r["ipaddressid"] == ip["id"]
            and r["protocol"] == proto
            and not (last < int(r["publicport"]) or first > int(r["publicendport"]))
        ):
            raise conflict(
                f"The range specified, {first}-{last}, conflicts with rule {r['_dbid']} which has "
                f"{r['publicport']}-{r['publicendport']}"
            )
    for r in api.cloud.lb_rules.values():
        if r["publicipid"] == ip["id"] and first <= int(r["publicport"]) <= last:
            raise conflict(
                f"The range specified, {first}-{last}, conflicts with rule {r['_dbid']} which has "
                f"{r['publicport']}-{r['publicport']}"
            )


def _add_firewall(
    api: Api,
    req: Request,
    ip: Record,
    proto: str,
    first: int,
    last: int,
    cidrs: str,
    related: str | None = None,
) -> Record:
    for r in api.cloud.firewall_rules.values():
        if (
            r["ipaddressid"] == ip["id"]
            and r["protocol"] == proto
            and r["cidrlist"] == cidrs
            and not (last < int(r["startport"]) or first > int(r["endport"]))
        ):
            raise conflict(
                f"The range specified, {first}-{last}, conflicts with rule {r['_dbid']} which has "
                f"{r['startport']}-{r['endport']}"
            )
    rid = new_id()
    rec = {
        "id": rid,
        "protocol": proto,
        "startport": first,
        "endport": last,
        "ipaddressid": ip["id"],
        "ipaddress": ip["ipaddress"],
        "state": "Add",
        "cidrlist": cidrs,
        "tags": [],
        "fordisplay": True,
        "networkid": ip.get("associatednetworkid"),
        "_related": related,
        "_dbid": api.cloud.dbid(),
    }
    api.cloud.firewall_rules[rid] = rec
    ip["hasrules"] = True
    return rec


def _rule_ip(api: Api, req: Request) -> Record:
    ip = req.entity(api.cloud.public_ips, "ipaddressid")
    assert ip is not None
    if not ip.get("associatednetworkid"):
        raise invalid_value(
            f"Unable to create the rule; ip address id={ip['id']} is not associated with any network"
        )
    return ip


def _activate(api: Api, table: dict[str, Record], rec: Record, key: str) -> JobFn:
    def body() -> dict[str, Any]:
        with api.cloud.lock:
            if rec["id"] not in table:
                raise internal("The rule was removed while it was being applied")
            rec["state"] = "Active"
            out = public(rec)
        api.publish()
        return {key: out}

    return body


def _revoke(
    api: Api, table: dict[str, Record], rec: Record, before: Callable[[], None] | None = None
) -> JobFn:
    def body() -> dict[str, Any]:
        with api.cloud.lock:
            if before:
                before()
            table.pop(rec["id"], None)
        api.publish()
        return {"success": True}

    return body


@command("listFirewallRules", "list", f"{_PKG}.firewall.ListFirewallRulesCmd")
def list_firewall_rules(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "firewallrule", _filter(
        list(api.cloud.firewall_rules.values()),
        req,
        {"id": "id", "ipaddressid": "ipaddressid", "networkid": "networkid"},
    )


@command("createFirewallRule", "async", f"{_PKG}.firewall.CreateFirewallRuleCmd")
def create_firewall_rule(api: Api, req: Request) -> AsyncPlan:
    ip = _rule_ip(api, req)
    proto = _protocol(req, ("tcp", "udp", "icmp", "all"))
    first, last = _ports(req, "startport", "endport") if proto in ("tcp", "udp") else (0, 0)
    rec = _add_firewall(api, req, ip, proto, first, last, _cidrs(req))
    table = api.cloud.firewall_rules

    def on_error() -> None:
        with api.cloud.lock:
            table.pop(rec["id"], None)

    return AsyncPlan(
        _activate(api, table, rec, "firewallrule"),
        on_error,
        created_id=rec["id"],
        instance_type="FirewallRule",
        instance_id=rec["id"],
    )


@command("deleteFirewallRule", "async", f"{_PKG}.firewall.DeleteFirewallRuleCmd")
def delete_firewall_rule(api: Api, req: Request) -> AsyncPlan:
    rec = req.entity(api.cloud.firewall_rules, "id")
    assert rec is not None
    return AsyncPlan(
        _revoke(api, api.cloud.firewall_rules, rec), instance_type="FirewallRule", instance_id=rec["id"]
    )


@command("listPortForwardingRules", "list", f"{_PKG}.firewall.ListPortForwardingRulesCmd")
def list_pf_rules(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "portforwardingrule", _filter(
        list(api.cloud.pf_rules.values()),
        req,
        {"id": "id", "ipaddressid": "ipaddressid", "networkid": "networkid"},
    )


@command("createPortForwardingRule", "async", f"{_PKG}.firewall.CreatePortForwardingRuleCmd")
def create_pf_rule(api: Api, req: Request) -> AsyncPlan:
    cloud = api.cloud
    ip = _rule_ip(api, req)
    vm = req.entity(cloud.vms, "virtualmachineid")
    assert vm is not None
    proto = _protocol(req, ("tcp", "udp"))
    pub_first, pub_last = _ports(req, "publicport", "publicendport")
    priv_first, priv_last = _ports(req, "privateport", "privateendport")
    if pub_last - pub_first != priv_last - priv_first:
        raise invalid_value("Private port range and public port range must be of the same size")
    nic = next((n for n in vm["nic"] if n["networkid"] == ip["associatednetworkid"]), None)
    if nic is None:
        raise invalid_value(
            f"Unable to create port forwarding rule; vm {vm['name']} isn't in the network of "
            f"ip address id={ip['id']}"
        )
    if vm["state"] in ("Destroyed", "Expunging", "Error"):
        raise invalid_value(f"Invalid user vm: {vm['id']} is in state {vm['state']}")
    _check_public_port_free(api, ip, proto, pub_first, pub_last)
    rid = new_id()
    rec = {
        "id": rid,
        "privateport": str(priv_first),
        "privateendport": str(priv_last),
        "protocol": proto,
        "publicport": str(pub_first),
        "publicendport": str(pub_last),
        "virtualmachineid": vm["id"],
        "virtualmachinename": vm["name"],
        "virtualmachinedisplayname": vm["displayname"],
        "ipaddressid": ip["id"],
        "ipaddress": ip["ipaddress"],
        "state": "Add",
        "cidrlist": "",
        "tags": [],
        "vmguestip": req.get("vmguestip") or nic["ipaddress"],
        "networkid": nic["networkid"],
        "fordisplay": True,
        "_dbid": cloud.dbid(),
    }
    cloud.pf_rules[rid] = rec
    fw = None
    if req.flag("openfirewall", True):
        fw = _add_firewall(api, req, ip, proto, pub_first, pub_last, _cidrs(req), related=rid)

    def on_error() -> None:
        with cloud.lock:
            cloud.pf_rules.pop(rid, None)
            if fw is not None:
                cloud.firewall_rules.pop(fw["id"], None)

    return AsyncPlan(
        _activate(api, cloud.pf_rules, rec, "portforwardingrule"),
        on_error,
        created_id=rid,
        instance_type="FirewallRule",
        instance_id=rid,
    )


def _drop_related_firewall(api: Api, rule_id: str) -> None:
    for fid in [k for k, r in api.cloud.firewall_rules.items() if r.get("_related") == rule_id]:
        del api.cloud.firewall_rules[fid]


@command("deletePortForwardingRule", "async", f"{_PKG}.firewall.DeletePortForwardingRuleCmd")
def delete_pf_rule(api: Api, req: Request) -> AsyncPlan:
    rec = req.entity(api.cloud.pf_rules, "id")
    assert rec is not None
    return AsyncPlan(
        _revoke(api, api.cloud.pf_rules, rec, lambda: _drop_related_firewall(api, rec["id"])),
        instance_type="FirewallRule",
        instance_id=rec["id"],
    )


# ---- load balancer -----------------------------------------------------------------------------
def _lb_view(rec: Record) -> Record:
    return public(rec)


@command("listLoadBalancerRules", "list", f"{_PKG}.loadbalancer.ListLoadBalancerRulesCmd")
def list_lb_rules(api: Api, req: Request) -> tuple[str, list[Record]]:
    recs = _filter(
        list(api.cloud.lb_rules.values()),
        req,
        {
            "id": "id",
            "name": "name",
            "publicipid": "publicipid",
            "networkid": "networkid",
            "zoneid": "zoneid",
        },
    )
    vm = req.get("virtualmachineid")
    if vm:
        recs = [r for r in recs if vm in r["_vms"]]
    return "loadbalancerrule", [_lb_view(r) for r in recs]


@command("listLoadBalancerRuleInstances", "list", f"{_PKG}.loadbalancer.ListLoadBalancerRuleInstancesCmd")
def list_lb_instances(api: Api, req: Request) -> tuple[str, list[Record]]:
    rec = req.entity(api.cloud.lb_rules, "id")
    assert rec is not None
    return "loadbalancerruleinstance", [api.cloud.vms[v] for v in rec["_vms"] if v in api.cloud.vms]


@command("createLoadBalancerRule", "async", f"{_PKG}.loadbalancer.CreateLoadBalancerRuleCmd")
def create_lb_rule(api: Api, req: Request) -> AsyncPlan:
    cloud = api.cloud
    name = req.require("name")
    algorithm = req.require("algorithm").lower()
    if algorithm not in ("roundrobin", "leastconn", "source"):
        raise invalid_value(f"Invalid algorithm: {algorithm}")
    priv, _ = _ports(req, "privateport", "privateport")
    pub, _ = _ports(req, "publicport", "publicport")
    ip = req.entity(cloud.public_ips, "publicipid", required=False)
    network = req.entity(cloud.networks, "networkid", required=False)
    if ip is None:
        raise invalid_value("Public ip address id is required for an isolated network load balancer rule")
    if network is None:
        network = cloud.networks.get(ip.get("associatednetworkid", ""))
    if network is None or ip.get("associatednetworkid") != network["id"]:
        raise invalid_value(f"Ip address id={ip['id']} is not associated with network")
    proto = (req.get("protocol") or "tcp").lower()
    if proto not in ("tcp", "udp", "tcp-proxy"):
        raise invalid_value(f"Invalid protocol {proto}")
    _check_public_port_free(api, ip, proto, pub, pub)
    rid = new_id()
    zone = cloud.zones[network["zoneid"]]
    rec = {
        "id": rid,
        "name": name,
        "description": req.get("description", ""),
        "publicipid": ip["id"],
        "publicip": ip["ipaddress"],
        "publicport": str(pub),
        "privateport": str(priv),
        "algorithm": algorithm,
        "networkid": network["id"],
        "cidrlist": req.get("cidrlist", ""),
        **cloud.owner(req.account),
        "state": "Add",
        "zoneid": zone["id"],
        "zonename": zone["name"],
        "protocol": proto,
        "tags": [],
        "fordisplay": True,
        "_vms": [],
        "_dbid": cloud.dbid(),
    }
    cloud.lb_rules[rid] = rec
    fw = None
    if req.flag("openfirewall", True):
        fw = _add_firewall(api, req, ip, "tcp", pub, pub, _cidrs(req), related=rid)

    def on_error() -> None:
        with cloud.lock:
            cloud.lb_rules.pop(rid, None)
            if fw is not None:
                cloud.firewall_rules.pop(fw["id"], None)

    return AsyncPlan(
        _activate(api, cloud.lb_rules, rec, "loadbalancer"),
        on_error,
        created_id=rid,
        instance_type="LoadBalancerRule",
        instance_id=rid,
    )


@command("deleteLoadBalancerRule", "async", f"{_PKG}.loadbalancer.DeleteLoadBalancerRuleCmd")
def delete_lb_rule(api: Api, req: Request) -> AsyncPlan:
    rec = req.entity(api.cloud.lb_rules, "id")
    assert rec is not None
    return AsyncPlan(
        _revoke(api, api.cloud.lb_rules, rec, lambda: _drop_related_firewall(api, rec["id"])),
        instance_type="LoadBalancerRule",
        instance_id=rec["id"],
    )


@command("updateLoadBalancerRule", "async", f"{_PKG}.loadbalancer.UpdateLoadBalancerRuleCmd")
def update_lb_rule(api: Api, req: Request) -> AsyncPlan:
    """UpdateLoadBalancerRuleCmd: id (required), name, description, algorithm, protocol; cidrlist is a
    parameter only since 4.22 (this cloud answers as CLOUDSTACK_VERSION, so it is ignored, as
    CloudStack ignores any parameter a command does not declare). LoadBalancingRulesManagerImpl
    .updateLoadBalancerRule checks the algorithm against the provider's capabilities and
    re-applies the rule; the job's result is the LoadBalancerResponse ("loadbalancer")."""
    rec = req.entity(api.cloud.lb_rules, "id")
    assert rec is not None
    algorithm = req.get("algorithm")
    if algorithm is not None and algorithm.lower() not in ("roundrobin", "leastconn", "source"):
        raise invalid_value(f"Invalid algorithm: {algorithm}")
    proto = req.get("protocol")
    if proto is not None and proto.lower() not in ("tcp", "udp", "tcp-proxy"):
        raise invalid_value(f"Invalid protocol {proto}")

    def body() -> dict[str, Any]:
        with api.cloud.lock:
            if algorithm is not None:
                rec["algorithm"] = algorithm.lower()
            if proto is not None:
                rec["protocol"] = proto.lower()
            for key in ("name", "description"):
                if req.get(key) is not None:
                    rec[key] = req.get(key)
            rec["state"] = "Active"
            out = _lb_view(rec)
        api.publish()
        return {"loadbalancer": out}

    return AsyncPlan(body, instance_type="LoadBalancerRule", instance_id=rec["id"])


def _lb_vms(api: Api, req: Request, rec: Record) -> list[str]:
    ids = req.ids("virtualmachineids")
    if not ids:
        ids = [m["vmid"] for m in req.maps("vmidipmap") if "vmid" in m]
    if not ids:
        raise E.missing_param(req.command, "virtualmachineids")
    for vid in ids:
        vm = api.cloud.vms.get(vid)
        if vm is None:
            raise bad_id(req.command, "virtualmachineids", vid)
        if not any(n["networkid"] == rec["networkid"] for n in vm["nic"]):
            raise invalid_value(f"VM {vm['name']} is not in the network of load balancer rule {rec['name']}")
    return ids


@command("assignToLoadBalancerRule", "async", f"{_PKG}.loadbalancer.AssignToLoadBalancerRuleCmd")
def assign_to_lb(api: Api, req: Request) -> AsyncPlan:
    rec = req.entity(api.cloud.lb_rules, "id")
    assert rec is not None
    ids = _lb_vms(api, req, rec)
    for vid in ids:
        if vid in rec["_vms"]:
            raise invalid_value(
                f"VM {api.cloud.vms[vid]['name']} is already mapped to load balancer {rec['name']}"
            )

    def body() -> dict[str, Any]:
        with api.cloud.lock:
            rec["_vms"].extend(v for v in ids if v not in rec["_vms"])
            rec["state"] = "Active"
        api.publish()
        return {"success": True}

    return AsyncPlan(body, instance_type="LoadBalancerRule", instance_id=rec["id"])


@command("removeFromLoadBalancerRule", "async", f"{_PKG}.loadbalancer.RemoveFromLoadBalancerRuleCmd")
def remove_from_lb(api: Api, req: Request) -> AsyncPlan:
    rec = req.entity(api.cloud.lb_rules, "id")
    assert rec is not None
    ids = _lb_vms(api, req, rec)

    def body() -> dict[str, Any]:
        with api.cloud.lock:
            rec["_vms"][:] = [v for v in rec["_vms"] if v not in ids]
        api.publish()
        return {"success": True}

    return AsyncPlan(body, instance_type="LoadBalancerRule", instance_id=rec["id"])


# ---- tags --------------------------------------------------------------------------------------
_TAGGABLE = {
    "uservm": "vms",
    "network": "networks",
    "publicipaddress": "public_ips",
    "firewallrule": "firewall_rules",
    "portforwardingrule": "pf_rules",
    "loadbalancer": "lb_rules",
}


def _tag_table(api: Api, req: Request) -> tuple[str, dict[str, Record]]:
    rtype = req.require("resourcetype")
    attr = _TAGGABLE.get(rtype.lower())
    if attr is None:
        raise invalid_value(
            f"Resource type {rtype} is not taggable here; allowed: UserVm, Network, "
            "PublicIpAddress, FirewallRule, PortForwardingRule, LoadBalancer"
        )
    return rtype, getattr(api.cloud, attr)


@command("createTags", "async", f"{_PKG}.tag.CreateTagsCmd")
def create_tags(api: Api, req: Request) -> AsyncPlan:
    rtype, table = _tag_table(api, req)
    ids = req.ids("resourceids") or [req.require("resourceids")]
    tags = req.maps("tags")
    if not tags:
        raise E.missing_param(req.command, "tags")
    for rid in ids:
        rec = table.get(rid)
        if rec is None:
            raise bad_id(req.command, "resourceids", rid)
        have = {t["key"] for t in rec["tags"]}
        for t in tags:
            if t.get("key") in have:
                raise invalid_value(f"tag {t.get('key')} already on {rtype} with id {rid}")

    def body() -> dict[str, Any]:
        with api.cloud.lock:
            for rid in ids:
                rec = table.get(rid)
                if rec is None:
                    continue
                for t in tags:
                    rec["tags"].append(
                        {
                            "key": t.get("key", ""),
                            "value": t.get("value", ""),
                            "resourcetype": rtype,
                            "resourceid": rid,
                            **api.cloud.owner(req.account),
                        }
                    )
        return {"success": True}

    return AsyncPlan(body)


@command("deleteTags", "async", f"{_PKG}.tag.DeleteTagsCmd")
def delete_tags(api: Api, req: Request) -> AsyncPlan:
    _, table = _tag_table(api, req)
    ids = req.ids("resourceids")
    keys = {t.get("key") for t in req.maps("tags")}

    def body() -> dict[str, Any]:
        with api.cloud.lock:
            for rid in ids:
                rec = table.get(rid)
                if rec is not None:
                    rec["tags"] = [t for t in rec["tags"] if keys and t["key"] not in keys]
        return {"success": True}

    return AsyncPlan(body)


@command("listTags", "list", f"{_PKG}.tag.ListTagsCmd")
def list_tags(api: Api, req: Request) -> tuple[str, list[Record]]:
    out = []
    for attr in _TAGGABLE.values():
        for rec in getattr(api.cloud, attr).values():
            out.extend(rec.get("tags", []))
    flt = {
        "resourceid": req.get("resourceid"),
        "resourcetype": req.get("resourcetype"),
        "key": req.get("key"),
        "value": req.get("value"),
    }
    out = [t for t in out if all(v is None or str(t.get(k)).lower() == v.lower() for k, v in flt.items())]
    return "tag", out


# ---- async jobs (answered by the server from its job table) -------------------------------------
@command("queryAsyncJobResult", "sync", f"{_PKG}.job.QueryAsyncJobResultCmd")
def query_async_job_result(api: Api, req: Request) -> dict[str, Any]:
    raise internal("queryAsyncJobResult is answered by the server")  # pragma: no cover


# ---- read-only extras the ngine_io.cloudstack modules ask for -----------------------------------
@command("listNics", "list", f"{_PKG}.vm.ListNicsCmd")
def list_nics(api: Api, req: Request) -> tuple[str, list[Record]]:
    vm = req.entity(api.cloud.vms, "virtualmachineid")
    assert vm is not None
    nics = [{**n, "virtualmachineid": vm["id"]} for n in vm["nic"]]
    net = req.get("networkid")
    return "nic", [n for n in nics if net is None or n["networkid"] == net]


@command("listVPCs", "list", f"{_PKG}.vpc.ListVPCsCmd")
def list_vpcs(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "vpc", []


@command("listEgressFirewallRules", "list", f"{_PKG}.firewall.ListEgressFirewallRulesCmd")
def list_egress_rules(api: Api, req: Request) -> tuple[str, list[Record]]:
    return "firewallrule", []


@command("listVolumes", "list", f"{_PKG}.volume.ListVolumesCmd")
def list_volumes(api: Api, req: Request) -> tuple[str, list[Record]]:
    out = []
    for vm in api.cloud.vms.values():
        if req.get("virtualmachineid") not in (None, vm["id"]):
            continue
        out.append(
            {
                "id": vm["id"][:-4] + "0001",
                "name": f"ROOT-{vm['instancename'].split('-')[2]}",
                "type": "ROOT",
                "deviceid": 0,
                "virtualmachineid": vm["id"],
                "vmname": vm["name"],
                "vmstate": vm["state"],
                "size": int(vm["_rootdisksize"]) * 1024**3,
                "state": "Ready",
                "zoneid": vm["zoneid"],
                "zonename": vm["zonename"],
                "storagetype": "shared",
                "provisioningtype": "thin",
                "account": vm["account"],
                "domainid": vm["domainid"],
                "domain": vm["domain"],
                "tags": [],
            }
        )
    return "volume", _filter(out, req, {"id": "id", "type": "type", "zoneid": "zoneid"})


# ISOs and Kubernetes supported versions live in their own module; importing it registers them.
from tests.cloudsim import iso_commands  # noqa: E402, F401
