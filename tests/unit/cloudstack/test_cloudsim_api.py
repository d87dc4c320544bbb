"""The test cloud's HTTP answers: wrappers, errors, async jobs, pagination, faults (loopback only)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cs import CloudStack, CloudStackApiException, CloudStackException

from tests.cloudsim import CloudSim, SimConfig
from tests.cloudsim.signing import sign


@pytest.fixture
def sim() -> Iterator[CloudSim]:
    with CloudSim(SimConfig(job_latency=0.02)) as s:
        yield s


def client(sim: CloudSim, **kw: Any) -> CloudStack:
    kw.setdefault("method", "post")  # the test cloud enforces POST for state-changing commands
    return CloudStack(
        endpoint=sim.endpoint, key=sim.config.api_key, secret=sim.config.secret, poll_interval=0.01, **kw
    )


def signed(sim: CloudSim, **params: str) -> dict[str, str]:
    expires = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    params = {
        "apiKey": sim.config.api_key,
        "response": "json",
        "signatureVersion": "3",
        "expires": expires,
        **params,
    }
    params["signature"] = sign(params, sim.config.secret)
    return params


def raw_get(sim: CloudSim, **params: str) -> tuple[int, str, dict[str, Any]]:
    r = requests.get(sim.endpoint, params=signed(sim, **params), timeout=5)
    return r.status_code, r.headers["Content-Type"], r.json()


def raw_post(sim: CloudSim, **params: str) -> tuple[int, dict[str, Any]]:
    r = requests.post(sim.endpoint, data=signed(sim, **params), timeout=5)
    return r.status_code, r.json()


def test_list_wrapper_and_fields(sim: CloudSim) -> None:
    status, ctype, body = raw_get(sim, command="listZones")
    assert status == 200 and ctype.startswith("application/json")
    zones = body["listzonesresponse"]
    assert zones["count"] == 1 and zones["zone"][0]["name"] == "zone1"
    assert {"id", "name", "networktype", "allocationstate"} <= set(zones["zone"][0])
    _, _, body = raw_get(sim, command="listNetworks")
    assert body == {"listnetworksresponse": {}}  # an empty list has no count and no key


def test_error_format_and_status(sim: CloudSim) -> None:
    status, _, body = raw_get(sim, command="listTemplates")
    assert status == 431
    assert body == {
        "listtemplatesresponse": {
            "uuidList": [],
            "errorcode": 431,
            "cserrorcode": 9999,
            "errortext": "Unable to execute API command listtemplates due to missing parameter "
            "templatefilter",
        }
    }
    status, body = raw_post(sim, command="deleteNetwork", id="no-such-id")
    assert (
        status == 431
        and "Invalid parameter id value=no-such-id" in body["deletenetworkresponse"]["errortext"]
    )


def test_unknown_command_is_401_errorresponse(sim: CloudSim) -> None:
    """ApiServer.verifyRequest: a command the server does not have fails verification (401)."""
    unknown = {
        "errorresponse": {
            "uuidList": [],
            "errorcode": 401,
            "errortext": "unable to verify user credentials and/or request signature",
        }
    }
    assert raw_get(sim, command="listZonez")[::2] == (401, unknown)
    assert raw_get(sim, command="listzones")[::2] == (401, unknown)  # command names are case-sensitive
    # The Kubernetes service's commands exist only while the service is enabled.
    assert raw_get(sim, command="listKubernetesSupportedVersions")[0] == 200
    sim.cloud.set_config("cloud.kubernetes.service.enabled", "false")
    assert raw_get(sim, command="listKubernetesSupportedVersions")[::2] == (401, unknown)


def test_state_changing_commands_need_post(sim: CloudSim) -> None:
    """enforce.post.requests.and.timestamps (ApiServer/ApiServlet): GET only for list/get/query/find."""
    zone = raw_get(sim, command="listZones")[2]["listzonesresponse"]["zone"][0]
    status, _, body = raw_get(sim, command="associateIpAddress", zoneid=zone["id"])
    assert status == 405
    assert body == {
        "associateipaddressresponse": {
            "uuidList": [],
            "errorcode": 405,
            "cserrorcode": 9999,
            "errortext": "State changing command associateIpAddress needs to be sent using POST request",
        }
    }
    assert sim.counts()["public_ips"] == 0
    assert raw_post(sim, command="associateIpAddress", zoneid=zone["id"])[0] == 200
    # Only signatureVersion 3 with an expires at most 15 minutes ahead is accepted.
    v1 = {"command": "listZones", "apiKey": sim.config.api_key, "response": "json"}
    v1["signature"] = sign(v1, sim.config.secret)
    assert requests.get(sim.endpoint, params=v1, timeout=5).status_code == 401
    far = (datetime.now(UTC) + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    assert raw_get(sim, command="listZones", expires=far)[0] == 401
    with CloudSim(SimConfig(enforce_post=False)) as lax:  # CloudStack's default: both accepted
        assert requests.get(lax.endpoint, params={**v1}, timeout=5).status_code == 200
        assert raw_get(lax, command="associateIpAddress", zoneid=zone["id"])[0] != 405


def test_bad_signature_is_401(sim: CloudSim) -> None:
    bad = CloudStack(endpoint=sim.endpoint, key=sim.config.api_key, secret="wrong")
    with pytest.raises(CloudStackApiException) as err:
        bad.listZones()
    assert err.value.response.status_code == 401
    assert err.value.error == {
        "uuidList": [],
        "errorcode": 401,
        "errortext": "unable to verify user credentials and/or request signature",
    }
    with CloudSim(SimConfig(enforce_post=False)) as lax:  # timestamps not enforced: v1 signatures pass
        v1 = client(lax, expiration=-1)  # cs then sends no expires/signatureVersion: plain v1 signature
        assert v1.listZones()["count"] == 1
    # an expired v3 request
    params = {
        "command": "listZones",
        "apiKey": sim.config.api_key,
        "response": "json",
        "signatureVersion": "3",
        "expires": "2020-01-01T00:00:00+0000",
    }
    params["signature"] = sign(params, sim.config.secret)
    assert requests.get(sim.endpoint, params=params, timeout=5).status_code == 401


def test_post_requests_work(sim: CloudSim) -> None:
    assert client(sim, method="post").listZones()["count"] == 1


def test_async_job_lifecycle(sim: CloudSim) -> None:
    c = client(sim)
    sim.set_latency(0.3)
    zone = c.listZones()["zone"][0]
    off = c.listNetworkOfferings(name="DefaultNetworkOfferingforKubernetesService")["networkoffering"][0]
    net = c.createNetwork(name="n1", displaytext="n1", zoneid=zone["id"], networkofferingid=off["id"])[
        "network"
    ]
    assert net["state"] == "Allocated"
    out = c.associateIpAddress(networkid=net["id"])
    assert set(out) == {"id", "jobid"}
    job = c.queryAsyncJobResult(jobid=out["jobid"])
    assert job["jobstatus"] == 0 and "jobresult" not in job
    assert job["cmd"] == "org.apache.cloudstack.api.command.user.address.AssociateIPAddrCmd"
    time.sleep(0.5)
    job = c.queryAsyncJobResult(jobid=out["jobid"])
    assert (job["jobstatus"], job["jobresultcode"], job["jobresulttype"]) == (1, 0, "object")
    ip = job["jobresult"]["ipaddress"]
    assert ip["id"] == out["id"] and ip["issourcenat"] and ip["associatednetworkid"] == net["id"]


def test_injected_job_failure_and_timeout(sim: CloudSim) -> None:
    c = client(sim, job_timeout=1)
    sim.inject("associateIpAddress", "error", [1], errortext="Insufficient address capacity")
    zone = c.listZones()["zone"][0]
    with pytest.raises(CloudStackApiException) as err:
        c.associateIpAddress(zoneid=zone["id"], fetch_result=True)
    # ApiAsyncJobDispatcher.runJob: ExceptionResponse without cserrorcode; 530 for a non-API exception
    assert err.value.error == {"uuidList": [], "errorcode": 530, "errortext": "Insufficient address capacity"}
    assert sim.counts()["public_ips"] == 0  # the failed job left nothing behind
    sim.inject("associateIpAddress", "timeout", [2])
    with pytest.raises(CloudStackException, match="Timeout waiting for async job result"):
        c.associateIpAddress(zoneid=zone["id"], fetch_result=True)
    c.associateIpAddress(zoneid=zone["id"], fetch_result=True)  # call 3 is fine


def test_sync_fault_modes(sim: CloudSim) -> None:
    c = client(sim)
    sim.inject("listZones", "http503", [1])
    sim.inject("listZones", "error", [2], errorcode=530, cserrorcode=4250, errortext="db down")
    with pytest.raises(CloudStackException, match="HTTP 503"):
        c.listZones()
    with pytest.raises(CloudStackApiException) as err:
        c.listZones()
    assert err.value.error["errortext"] == "db down"
    assert c.listZones()["count"] == 1


def test_pagination(sim: CloudSim) -> None:
    for i in range(7):
        sim.cloud.add_service_offering(f"extra-{i}", 2, 2048)
    c = client(sim)
    page2 = c.listServiceOfferings(page=2, pagesize=4)
    assert page2["count"] == 10 and len(page2["serviceoffering"]) == 4
    assert c.listServiceOfferings(page=4, pagesize=4) == {}
    all_items = c.listServiceOfferings(fetch_list=True, pagesize=3)
    assert len(all_items) == 10 and len({o["id"] for o in all_items}) == 10
    sim.cloud.set_config("default.page.size", "5")
    assert len(c.listServiceOfferings()["serviceoffering"]) == 5  # default page size applies
    with pytest.raises(CloudStackApiException, match="Page size can't exceed max allowed page size value: 5"):
        c.listServiceOfferings(page=1, pagesize=6)
    assert len(c.listServiceOfferings(pagesize=-1)["serviceoffering"]) == 10


def test_user_cannot_read_global_settings() -> None:
    """ApiServer.commandAvailable (before the signature): the role checker's UnavailableCommandException."""
    with CloudSim(SimConfig(role="User")) as s:
        with pytest.raises(CloudStackApiException) as err:
            client(s).listConfigurations(name="cloud.kubernetes.cluster.max.size")
        assert err.value.response.status_code == 432
        acc = s.accounts[s.config.api_key]
        assert err.value.error == {
            "uuidList": [],
            "errorcode": 432,
            "cserrorcode": 9999,
            "errortext": "The API [listConfigurations] does not exist or is not available for the account "
            f'Account {{"id":3,"uuid":"{acc.id}","accountName":"user","domainId":1}}.',
        }
        wrong = CloudStack(endpoint=s.endpoint, key=s.config.api_key, secret="wrong", method="post")
        with pytest.raises(CloudStackApiException) as err:
            wrong.listConfigurations()
        assert err.value.response.status_code == 432  # checked before the signature


def test_control_endpoint_and_loopback_only(sim: CloudSim) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{sim.port}/_cloudsim/faults",
        method="POST",
        data=json.dumps({"add": ["listZones:error:1"]}).encode(),
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.load(r)["faults"][0]["command"] == "listZones"
    with pytest.raises(CloudStackApiException):
        client(sim).listZones()
    with pytest.raises(ValueError, match="loopback"):
        CloudSim(SimConfig(host="0.0.0.0"))


def test_vm_rules_and_cleanup_through_cs(sim: CloudSim) -> None:
    c = client(sim)
    zone = c.listZones()["zone"][0]
    off = c.listServiceOfferings(name="Medium Instance")["serviceoffering"][0]
    tmpl = c.listTemplates(templatefilter="executable", name="koral-node-debian12")["template"][0]
    noff = c.listNetworkOfferings(name="DefaultNetworkOfferingforKubernetesService")["networkoffering"][0]
    net = c.createNetwork(name="n", displaytext="n", zoneid=zone["id"], networkofferingid=noff["id"])[
        "network"
    ]
    vm = c.deployVirtualMachine(
        zoneid=zone["id"],
        serviceofferingid=off["id"],
        templateid=tmpl["id"],
        networkids=net["id"],
        name="vm-1",
        fetch_result=True,
    )["virtualmachine"]
    with pytest.raises(CloudStackApiException, match="already exists in the network"):
        c.deployVirtualMachine(
            zoneid=zone["id"],
            serviceofferingid=off["id"],
            templateid=tmpl["id"],
            networkids=net["id"],
            name="vm-1",
        )
    ip = c.listPublicIpAddresses(associatednetworkid=net["id"], issourcenat=True)["publicipaddress"][0]
    pf = c.createPortForwardingRule(
        ipaddressid=ip["id"],
        protocol="tcp",
        publicport=2222,
        privateport=22,
        virtualmachineid=vm["id"],
        fetch_result=True,
    )["portforwardingrule"]
    assert pf["state"] == "Active" and pf["vmguestip"] == vm["nic"][0]["ipaddress"]
    assert c.listFirewallRules(ipaddressid=ip["id"])["count"] == 1  # openfirewall defaults to true
    with pytest.raises(CloudStackApiException) as err:
        c.createPortForwardingRule(
            ipaddressid=ip["id"], protocol="tcp", publicport=2222, privateport=22, virtualmachineid=vm["id"]
        )
    assert err.value.error["errorcode"] == 537
    lb = c.createLoadBalancerRule(
        name="lb",
        algorithm="roundrobin",
        publicport=6443,
        privateport=6443,
        publicipid=ip["id"],
        openfirewall=False,
        fetch_result=True,
    )["loadbalancer"]
    c.assignToLoadBalancerRule(id=lb["id"], virtualmachineids=vm["id"], fetch_result=True)
    inst = c.listLoadBalancerRuleInstances(id=lb["id"])
    assert inst["loadbalancerruleinstance"][0]["id"] == vm["id"]
    with pytest.raises(CloudStackApiException, match="'errortext': 'Failed to delete network'"):
        c.deleteNetwork(id=net["id"], fetch_result=True)  # a VM is still on it (only logged by CloudStack)
    c.destroyVirtualMachine(id=vm["id"], expunge=True, fetch_result=True)
    assert c.listPortForwardingRules(ipaddressid=ip["id"]) == {}
    c.deleteNetwork(id=net["id"], fetch_result=True)
    assert sim.counts() == dict.fromkeys(sim.counts(), 0)


def test_runs_as_a_module() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.cloudsim", "--port", "0", "--latency", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        endpoint = line.split("CLOUDSTACK_ENDPOINT=")[1].split()[0]
        assert endpoint.startswith("http://127.0.0.1:")
        c = CloudStack(endpoint=endpoint, key="koral-test-key", secret="koral-test-secret")
        assert c.listZones()["zone"][0]["name"] == "zone1"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
