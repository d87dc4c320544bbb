"""The test cloud's records: what a CloudStack database would hold, as response-shaped dicts.

Every record is the JSON object CloudStack returns for it (real field names); keys starting
with ``_`` are private to the simulator and stripped from responses.
"""

from __future__ import annotations

import copy
import ipaddress
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.cloudsim.backend import FirewallRule, LoadBalancer, NetworkView, PortForward
from tests.cloudsim.jobs import cs_time, new_id

Record = dict[str, Any]

K8S_OFFERING = "DefaultNetworkOfferingforKubernetesService"
ISOLATED_OFFERING = "DefaultIsolatedNetworkOfferingWithSourceNatService"
VR_SERVICES = (
    "Dhcp",
    "Dns",
    "SourceNat",
    "StaticNat",
    "Firewall",
    "PortForwarding",
    "Lb",
    "UserData",
    "Vpn",
)


@dataclass(frozen=True)
class Account:
    name: str
    api_key: str
    secret: str
    role: str = "Admin"  # Admin | User
    id: str = field(default_factory=new_id)
    user_id: str = field(default_factory=new_id)
    dbid: int = 2  # the internal id (2 = the first account CloudStack creates, "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "Admin"


def public(record: Record) -> Record:
    """A deep copy without the private ``_`` keys."""
    return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}


class Cloud:
    """All tables, guarded by one lock (handlers hold it; job bodies take it when they mutate)."""

    def __init__(
        self,
        public_range: str = "127.0.100.10-127.0.100.250",
        guest_cidr: str = "10.1.1.0/24",
        kubernetes_enabled: bool = True,
        max_cluster_size: int = 10,
    ) -> None:
        self.lock = threading.RLock()
        self.domain_id = new_id()
        self.guest_cidr = ipaddress.IPv4Network(guest_cidr)
        start, end = (ipaddress.IPv4Address(x) for x in public_range.split("-"))
        self._public_pool = [str(ipaddress.IPv4Address(i)) for i in range(int(start), int(end) + 1)]
        self.public_network_id = new_id()
        self.zones: dict[str, Record] = {}
        self.service_offerings: dict[str, Record] = {}
        self.templates: dict[str, Record] = {}
        self.isos: dict[str, Record] = {}
        self.network_offerings: dict[str, Record] = {}
        self.networks: dict[str, Record] = {}
        self.public_ips: dict[str, Record] = {}
        self.vms: dict[str, Record] = {}
        self.firewall_rules: dict[str, Record] = {}
        self.pf_rules: dict[str, Record] = {}
        self.lb_rules: dict[str, Record] = {}
        self.keypairs: dict[str, Record] = {}
        self.configurations: dict[str, Record] = {}
        # Soft deletes: CloudStack keeps removed networks and VMs as rows with ``removed`` set and
        # released public IPs as Free rows, and the API resolves their UUIDs
        # (ParamProcessWorker.translateUuidToInternalId: findByUuidIncludingRemoved); the
        # services then answer "doesn't exist" / "unable to find" / nothing to do.
        self.removed: dict[str, Record] = {}
        # Users made by createUser (id -> record) and the API keys registerUserKeys gave them
        # (api key -> the caller they sign as: their account's name and role, their own user id).
        self.users: dict[str, Record] = {}
        self.user_keys: dict[str, Account] = {}
        self._next_dbid = 200
        self._seed(kubernetes_enabled, max_cluster_size)

    def dbid(self) -> int:
        """The next internal (database) id; error texts of the services name rows by it."""
        self._next_dbid += 1
        return self._next_dbid

    def remove(self, table: dict[str, Record], rid: str, kind: str) -> None:
        """Move a row out of its table into the removed rows (its UUID still resolves)."""
        rec = table.pop(rid, None)
        if rec is not None:
            rec["_kind"] = kind
            rec["_removed"] = cs_time()
            self.removed[rid] = rec

    def removed_row(self, rid: str | None, kind: str) -> Record | None:
        rec = self.removed.get(rid or "")
        return rec if rec is not None and rec.get("_kind") == kind else None

    # ---- seed data ----------------------------------------------------------------------------
    def _seed(self, kubernetes_enabled: bool, max_size: int) -> None:
        self.add_zone("zone1")
        self.add_service_offering("Small Instance", 1, 512)
        self.add_service_offering("Medium Instance", 2, 2048)
        self.add_service_offering("Large Instance", 4, 8192)
        self.add_template("koral-node-debian12", ostype="Debian GNU/Linux 12 (64-bit)")
        self.add_template("CentOS 5.5(64-bit) no GUI (KVM)", ostype="CentOS 5.5 (64-bit)", featured=True)
        self.add_iso("setup-v1.33.1")
        self.add_network_offering(K8S_OFFERING, "Network Offering used for CloudStack Kubernetes service")
        self.add_network_offering(
            ISOLATED_OFFERING, "Offering for Isolated networks with Source Nat service enabled", default=True
        )
        self.set_config(
            "cloud.kubernetes.service.enabled",
            "true" if kubernetes_enabled else "false",
            "Indicates whether Kubernetes Service plugin is enabled or not. Management server "
            "restart needed on change",
            "Boolean",
            "false",
        )
        self.set_config(
            "cloud.kubernetes.cluster.max.size",
            str(max_size),
            "Maximum size of the kubernetes cluster.",
            "Integer",
            "10",
        )
        self.set_config(
            "cloud.kubernetes.cluster.network.offering",
            K8S_OFFERING,
            "Name of the network offering that will be used to create isolated network in "
            "which Kubernetes cluster VMs will be launched",
            "String",
            K8S_OFFERING,
        )
        self.set_config(
            "allow.user.expunge.recover.vm",
            "false",
            "Determines whether users can expunge or recover their vm",
            "Boolean",
            "false",
        )
        self.set_config("default.page.size", "500", "Default page size for API list* commands", "Long", "500")
        # apache/cloudstack server/src/main/java/com/cloud/api/ApiServer.java
        # (EnforcePostRequestsAndTimestamps; the test cloud runs with it on, see SimConfig).
        self.set_config(
            "enforce.post.requests.and.timestamps",
            "false",
            "Enable/Disable whether the ApiServer should only accept POST requests for state-changing "
            "APIs and requests with timestamps.",
            "Boolean",
            "false",
        )

    def add_zone(self, name: str) -> Record:
        zid = new_id()
        self.zones[zid] = {
            "id": zid,
            "name": name,
            "description": f"{name} (test cloud)",
            "dns1": "8.8.8.8",
            "internaldns1": "10.0.0.2",
            "guestcidraddress": str(self.guest_cidr),
            "networktype": "Advanced",
            "securitygroupsenabled": False,
            "allocationstate": "Enabled",
            "zonetoken": new_id(),
            "dhcpprovider": "VirtualRouter",
            "localstorageenabled": False,
            "tags": [],
            "hasannotations": False,
            "type": "Core",
        }
        return self.zones[zid]

    def add_service_offering(self, name: str, cpu: int, memory: int, speed: int = 1000) -> Record:
        oid = new_id()
        self.service_offerings[oid] = {
            "id": oid,
            "name": name,
            "displaytext": f"{name} ({cpu} vCPU, {memory} MB)",
            "cpunumber": cpu,
            "cpuspeed": speed,
            "memory": memory,
            "created": cs_time(),
            "storagetype": "shared",
            "provisioningtype": "thin",
            "offerha": False,
            "limitcpuuse": False,
            "isvolatile": False,
            "issystem": False,
            "defaultuse": False,
            "iscustomized": False,
            "dynamicscalingenabled": True,
            "diskofferingstrictness": False,
            "hasannotations": False,
        }
        return self.service_offerings[oid]

    def add_template(self, name: str, ostype: str, featured: bool = False, size_gb: int = 5) -> Record:
        tid = new_id()
        zone = next(iter(self.zones.values()))
        self.templates[tid] = {
            "id": tid,
            "name": name,
            "displaytext": name,
            "ispublic": True,
            "created": cs_time(),
            "isready": True,
            "passwordenabled": False,
            "format": "QCOW2",
            "isfeatured": featured,
            "crossZones": False,
            "ostypeid": new_id(),
            "ostypename": ostype,
            "account": "system",
            "zoneid": zone["id"],
            "zonename": zone["name"],
            "status": "Download Complete",
            "size": size_gb * 1024**3,
            "templatetype": "USER",
            "hypervisor": "KVM",
            "domain": "ROOT",
            "domainid": self.domain_id,
            "isextractable": False,
            "sshkeyenabled": True,
            "isdynamicallyscalable": False,
            "directdownload": False,
            "deployasis": False,
            "requireshvm": True,
            "tags": [],
            "hasannotations": False,
        }
        return self.templates[tid]

    def add_iso(self, name: str) -> Record:
        iid = new_id()
        zone = next(iter(self.zones.values()))
        self.isos[iid] = {
            "id": iid,
            "name": name,
            "displaytext": f"Kubernetes binaries ISO {name}",
            "ispublic": True,
            "created": cs_time(),
            "isready": True,
            "bootable": False,
            "isfeatured": False,
            "crossZones": False,
            "ostypeid": new_id(),
            "ostypename": "Other Linux (64-bit)",
            "account": "system",
            "zoneid": zone["id"],
            "zonename": zone["name"],
            "status": "Successfully Installed",
            "size": 1024**3,
            "domain": "ROOT",
            "domainid": self.domain_id,
            "isextractable": False,
            "tags": [],
        }
        return self.isos[iid]

    def add_network_offering(self, name: str, text: str, default: bool = False) -> Record:
        oid = new_id()
        self.network_offerings[oid] = {
            "id": oid,
            "name": name,
            "displaytext": text,
            "traffictype": "Guest",
            "isdefault": default,
            "specifyvlan": False,
            "conservemode": True,
            "specifyipranges": False,
            "availability": "Optional",
            "networkrate": 200,
            "state": "Enabled",
            "guestiptype": "Isolated",
            "serviceofferingid": None,
            "service": [{"name": s, "provider": [{"name": "VirtualRouter"}]} for s in VR_SERVICES],
            "forvpc": False,
            "ispersistent": False,
            "egressdefaultpolicy": True,
            "supportsstrechedl2subnet": False,
            "supportspublicaccess": False,
            "fortungsten": False,
            "fornsx": False,
            "internetprotocol": "IPv4",
            "created": cs_time(),
            "hasannotations": False,
        }
        return self.network_offerings[oid]

    def set_config(
        self, name: str, value: str, description: str = "", kind: str = "String", default: str = ""
    ) -> None:
        self.configurations[name] = {
            "category": "Advanced",
            "name": name,
            "value": value,
            "description": description,
            "isdynamic": True,
            "type": kind,
            "defaultvalue": default,
            "component": "ManagementServer",
            "group": "Miscellaneous",
            "subgroup": "Others",
            "displaytext": name,
        }

    # ---- owners -------------------------------------------------------------------------------
    def owner(self, account: Account) -> Record:
        return {"account": account.name, "domainid": self.domain_id, "domain": "ROOT"}

    # ---- public IPs ---------------------------------------------------------------------------
    def allocate_public_ip(
        self, account: Account, zone: Record, network: Record | None, source_nat: bool
    ) -> Record:
        used = {r["ipaddress"] for r in self.public_ips.values()}
        free = [ip for ip in self._public_pool if ip not in used]
        if not free:
            from tests.cloudsim.errors import CS_INSUFFICIENT_CAPACITY, ApiError

            raise ApiError(533, "Insufficient address capacity", CS_INSUFFICIENT_CAPACITY)
        rid = new_id()
        rec: Record = {
            "id": rid,
            "ipaddress": free[0],
            "allocated": cs_time(),
            "zoneid": zone["id"],
            "zonename": zone["name"],
            "issourcenat": source_nat,
            **self.owner(account),
            "forvirtualnetwork": True,
            "isstaticnat": False,
            "issystem": False,
            "networkid": self.public_network_id,
            "state": "Allocated",
            "physicalnetworkid": new_id(),
            "tags": [],
            "isportable": False,
            "fordisplay": True,
            "hasrules": False,
            "_dbid": self.dbid(),
        }
        if network is not None:
            rec["associatednetworkid"] = network["id"]
            rec["associatednetworkname"] = network["name"]
        self.public_ips[rid] = rec
        return rec

    def source_nat_ip(self, network_id: str) -> Record | None:
        for rec in self.public_ips.values():
            if rec.get("associatednetworkid") == network_id and rec["issourcenat"]:
                return rec
        return None

    # ---- guest addresses ----------------------------------------------------------------------
    def next_guest_ip(self, network: Record) -> str:
        cidr = ipaddress.IPv4Network(network["cidr"])
        used = {network["gateway"]}
        for vm in self.vms.values():
            for nic in vm["nic"]:
                if nic["networkid"] == network["id"]:
                    used.add(nic["ipaddress"])
        for host in list(cidr.hosts())[1:]:
            if str(host) not in used:
                return str(host)
        from tests.cloudsim.errors import CS_INSUFFICIENT_CAPACITY, ApiError

        raise ApiError(
            533, f"Insufficient address capacity in network {network['name']}", CS_INSUFFICIENT_CAPACITY
        )

    # ---- the view backends reconcile to ------------------------------------------------------
    def network_view(self) -> NetworkView:
        pfs = tuple(
            PortForward(
                r["ipaddress"], int(r["publicport"]), r["vmguestip"], int(r["privateport"]), r["protocol"]
            )
            for r in self.pf_rules.values()
        )
        lbs = []
        for r in self.lb_rules.values():
            backends = tuple(self.vms[v]["nic"][0]["ipaddress"] for v in r["_vms"] if v in self.vms)
            lbs.append(
                LoadBalancer(
                    r["name"],
                    r["publicip"],
                    int(r["publicport"]),
                    int(r["privateport"]),
                    r["algorithm"],
                    r["protocol"],
                    backends,
                )
            )
        fws = tuple(
            FirewallRule(
                r["ipaddress"],
                r["protocol"],
                int(r.get("startport", 0) or 0),
                int(r.get("endport", 0) or 0),
                tuple(r["cidrlist"].split(",")),
            )
            for r in self.firewall_rules.values()
        )
        return NetworkView(pfs, tuple(lbs), fws)

    def counts(self) -> dict[str, int]:
        """How many user-created resources exist (the leak check of the tests)."""
        return {
            "networks": len(self.networks),
            "public_ips": len(self.public_ips),
            "vms": len(self.vms),
            "firewall_rules": len(self.firewall_rules),
            "port_forwarding_rules": len(self.pf_rules),
            "load_balancer_rules": len(self.lb_rules),
        }
