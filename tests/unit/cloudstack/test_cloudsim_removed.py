"""The test cloud after deletes and for accounts that may not expunge, as Apache CloudStack answers.

- UUIDs resolve including removed rows (ParamProcessWorker.translateUuidToInternalId:
  findByUuidIncludingRemoved), so deleting again is the service's own answer, not the generic
  "entity does not exist": DeleteNetworkCmd.getEntityOwnerId "Network ID=<n> doesn't exist" (431,
  before the job), UserVmManagerImpl.destroyVm "unable to find a virtual machine with id <n>" (the
  job fails 431), IpAddressManagerImpl.releaseIpAddressInternal "not allocated, so do nothing"
  (the job succeeds). Firewall, port-forward and LB rules are deleted rows: their UUIDs no
  longer resolve.
- VmDestroyPermissionServiceImpl.checkExpungeVmPermission runs in the job: a PermissionDenied
  there is recorded by ApiAsyncJobDispatcher.runJob as 530 without cserrorcode.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cs import CloudStack, CloudStackApiException

from tests.cloudsim import CloudSim, SimConfig


@pytest.fixture
def sim() -> Iterator[CloudSim]:
    with CloudSim(SimConfig(job_latency=0)) as s:
        yield s


def client(sim: CloudSim) -> CloudStack:
    return CloudStack(
        endpoint=sim.endpoint,
        key=sim.config.api_key,
        secret=sim.config.secret,
        method="post",
        poll_interval=0.01,
    )


def network_and_vm(c: CloudStack, userdata: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    zone = c.listZones()["zone"][0]
    off = c.listServiceOfferings(name="Medium Instance")["serviceoffering"][0]
    tmpl = c.listTemplates(templatefilter="executable", name="koral-node-debian12")["template"][0]
    noff = c.listNetworkOfferings(name="DefaultNetworkOfferingforKubernetesService")["networkoffering"][0]
    net = c.createNetwork(name="n", displaytext="n", zoneid=zone["id"], networkofferingid=noff["id"])[
        "network"
    ]
    params = {"userdata": userdata} if userdata else {}
    vm = c.deployVirtualMachine(
        zoneid=zone["id"],
        serviceofferingid=off["id"],
        templateid=tmpl["id"],
        networkids=net["id"],
        name="vm-1",
        fetch_result=True,
        **params,
    )["virtualmachine"]
    return net, vm


def job_error(c: CloudStack, command: str, **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit an async command; its finished job (queryAsyncJobResult) and its jobresult."""
    out = getattr(c, command)(**params)
    job = c.queryAsyncJobResult(jobid=out["jobid"])
    return job, job["jobresult"]


def test_deleting_again_answers_as_cloudstack(sim: CloudSim) -> None:
    c = client(sim)
    net, vm = network_and_vm(c)
    vm_dbid = sim.cloud.vms[vm["id"]]["_dbid"]
    net_dbid = sim.cloud.networks[net["id"]]["_dbid"]
    extra = c.associateIpAddress(networkid=net["id"], fetch_result=True)["ipaddress"]
    fw = c.createFirewallRule(
        ipaddressid=extra["id"], protocol="tcp", startport=22, endport=22, fetch_result=True
    )["firewallrule"]

    c.deleteFirewallRule(id=fw["id"], fetch_result=True)
    with pytest.raises(CloudStackApiException) as err:
        c.deleteFirewallRule(id=fw["id"])  # a deleted rule: its UUID no longer resolves (before the job)
    assert err.value.response.status_code == 431
    assert (
        f"Invalid parameter id value={fw['id']} due to incorrect long value format"
        in err.value.error["errortext"]
    )

    c.disassociateIpAddress(id=extra["id"], fetch_result=True)
    job, result = job_error(c, "disassociateIpAddress", id=extra["id"])  # released: nothing to do
    assert (job["jobstatus"], result) == (1, {"success": True})

    c.destroyVirtualMachine(id=vm["id"], expunge=True, fetch_result=True)
    assert vm["id"] not in sim.cloud.vms and c.listVirtualMachines(id=vm["id"]) == {}
    job, result = job_error(c, "destroyVirtualMachine", id=vm["id"], expunge=True)
    assert (job["jobstatus"], job["jobresultcode"]) == (2, 431)
    assert result == {
        "uuidList": [],
        "errorcode": 431,
        "errortext": f"unable to find a virtual machine with id {vm_dbid}",
    }

    c.deleteNetwork(id=net["id"], fetch_result=True)
    assert c.listNetworks(id=net["id"]) == {}
    with pytest.raises(CloudStackApiException) as err:
        c.deleteNetwork(id=net["id"])  # answered before any job
    assert err.value.response.status_code == 431
    assert err.value.error == {
        "uuidList": [],
        "errorcode": 431,
        "cserrorcode": 4350,
        "errortext": f"Network ID={net_dbid} doesn't exist",
    }
    assert sim.counts() == dict.fromkeys(sim.counts(), 0)


def test_user_without_expunge_permission() -> None:
    with CloudSim(SimConfig(role="User", job_latency=0)) as sim:
        c = client(sim)
        caps = c.listCapabilities()["capability"]
        assert caps["allowuserexpungerecovervm"] is False
        assert c.listAccounts()["account"][0]["accounttype"] == 0
        net, vm = network_and_vm(c)
        job, result = job_error(c, "destroyVirtualMachine", id=vm["id"], expunge=True)
        assert (job["jobstatus"], job["jobresultcode"]) == (2, 530)
        assert result == {
            "uuidList": [],
            "errorcode": 530,
            "errortext": "Account does not have permission for expunging.",
        }
        assert sim.cloud.vms[vm["id"]]["state"] == "Running"  # refused before anything happened
        assert (
            c.destroyVirtualMachine(id=vm["id"], fetch_result=True)["virtualmachine"]["state"] == "Destroyed"
        )
        # Destroying a Destroyed VM again (without expunge) is answered with the VM as it is.
        job, result = job_error(c, "destroyVirtualMachine", id=vm["id"])
        assert job["jobstatus"] == 1 and result["virtualmachine"]["state"] == "Destroyed"
        # The network cannot go while the VM is not expunged; CloudStack only logs why.
        job, result = job_error(c, "deleteNetwork", id=net["id"])
        assert result == {"uuidList": [], "errorcode": 530, "errortext": "Failed to delete network"}
        sim.cloud.set_config("allow.user.expunge.recover.vm", "true")
        assert c.listCapabilities()["capability"]["allowuserexpungerecovervm"] is True
        c.destroyVirtualMachine(id=vm["id"], expunge=True, fetch_result=True)
        c.deleteNetwork(id=net["id"], fetch_result=True)


def test_vm_user_data_is_answered_as_given(sim: CloudSim) -> None:
    """GetVMUserDataCmd: {virtualmachineuserdata: {virtualmachineid, userdata (base64)}}."""
    c = client(sim)
    data = base64.b64encode(b"#cloud-config\nhostname: vm-1\n").decode()
    _, vm = network_and_vm(c, userdata=data)
    out = c.getVirtualMachineUserData(virtualmachineid=vm["id"])
    assert out == {"virtualmachineuserdata": {"virtualmachineid": vm["id"], "userdata": data}}
    with pytest.raises(CloudStackApiException) as err:
        c.getVirtualMachineUserData()
    assert err.value.error["errortext"] == (
        "Unable to execute API command getvirtualmachineuserdata due to missing parameter virtualmachineid"
    )


def test_source_nat_address_is_refused_in_the_job(sim: CloudSim) -> None:
    """IpAddressManagerImpl.releaseIpAddressInternal: IllegalArgumentException -> job 530."""
    c = client(sim)
    net, _ = network_and_vm(c)  # the network is Implemented: its source NAT address is in use
    nat = c.listPublicIpAddresses(associatednetworkid=net["id"], issourcenat=True)["publicipaddress"][0]
    job, result = job_error(c, "disassociateIpAddress", id=nat["id"])
    assert (job["jobstatus"], job["jobresultcode"]) == (2, 530)
    assert result["errortext"] == "IP address is used for source nat purposes and can not be disassociated."
    assert nat["id"] in sim.cloud.public_ips


def test_a_user_sees_only_its_own_jobs() -> None:
    """ApiResponseHelper.queryJobResult: PermissionDeniedException (531/4365) for another's job."""
    from tests.cloudsim import Account

    other = Account("other", "other-key", "other-secret", role="User")
    with CloudSim(SimConfig(job_latency=0, extra_accounts=(other,))) as sim:
        admin = client(sim)
        zone = admin.listZones()["zone"][0]["id"]
        jobid = admin.associateIpAddress(zoneid=zone)["jobid"]
        user = CloudStack(endpoint=sim.endpoint, key="other-key", secret="other-secret", method="post")
        with pytest.raises(CloudStackApiException) as err:
            user.queryAsyncJobResult(jobid=jobid)
        assert err.value.response.status_code == 531
        assert err.value.error["cserrorcode"] == 4365
        assert err.value.error["errortext"] == f"Account other is not authorized to see job id={jobid}"
        own = user.associateIpAddress(zoneid=zone)["jobid"]
        assert user.queryAsyncJobResult(jobid=own)["jobstatus"] == 1
        assert admin.queryAsyncJobResult(jobid=own)["jobstatus"] == 1  # an administrator sees all
