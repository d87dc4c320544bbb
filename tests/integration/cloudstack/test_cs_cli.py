"""The ``cs`` command line client (PyPI ``cs``), unchanged, against the test cloud (loopback).

A real client is the judge of the simulator's HTTP side: its signing (v3 with expires), its
reading of error bodies and HTTP statuses, its async-job polling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cloudsim import CloudSim

CS = str(Path(sys.executable).with_name("cs"))


def cs(sim: CloudSim, *args: str) -> tuple[int, Any, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSTACK_")}
    env.update(sim.client_env())
    out = subprocess.run([CS, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr


def test_cs_cli_against_the_test_cloud(cloudsim: CloudSim) -> None:
    cloudsim.set_latency(0)
    code, zones, _ = cs(cloudsim, "listZones")
    assert code == 0 and zones["zone"][0]["name"] == "zone1"
    zone = zones["zone"][0]["id"]

    # POST is enforced for state-changing commands: cs without --post is refused, nothing made.
    code, body, err = cs(cloudsim, "associateIpAddress", f"zoneid={zone}")
    assert code == 1 and "HTTP 405" in err
    assert body["associateipaddressresponse"]["errortext"] == (
        "State changing command associateIpAddress needs to be sent using POST request"
    )
    assert cloudsim.counts()["public_ips"] == 0
    code, body, _ = cs(cloudsim, "--post", "associateIpAddress", f"zoneid={zone}")
    assert code == 0 and body["ipaddress"]["zoneid"] == zone  # cs waits for the job, prints its result

    # A command the server does not have: 401 errorresponse (also a plugin's, when it is off).
    unknown = {
        "errorresponse": {
            "errorcode": 401,
            "errortext": "unable to verify user credentials and/or request signature",
            "uuidList": [],
        }
    }
    assert cs(cloudsim, "listZonez")[:2] == (1, unknown)
    assert cs(cloudsim, "listKubernetesSupportedVersions")[0] == 0
    cloudsim.cloud.set_config("cloud.kubernetes.service.enabled", "false")
    assert cs(cloudsim, "listKubernetesSupportedVersions")[:2] == (1, unknown)

    # A failed async job as cs reports it: jobstatus 2, jobresultcode and jobresult {errorcode,
    # errortext} without cserrorcode (ApiAsyncJobDispatcher.runJob).
    c = cloudsim.cloud
    offering = next(o["id"] for o in c.network_offerings.values() if o["name"].endswith("KubernetesService"))
    code, body, _ = cs(
        cloudsim, "--post", "createNetwork", "name=n1", "displaytext=n1", f"zoneid={zone}",
        f"networkofferingid={offering}",
    )  # fmt: skip
    assert code == 0
    net = body["network"]["id"]
    code, body, _ = cs(
        cloudsim, "--post", "deployVirtualMachine", f"zoneid={zone}", f"networkids={net}", "name=vm-1",
        f"serviceofferingid={next(iter(c.service_offerings))}",
        f"templateid={next(t['id'] for t in c.templates.values() if t['name'] == 'koral-node-debian12')}",
    )  # fmt: skip
    assert code == 0 and body["virtualmachine"]["state"] == "Running"
    code, body, err = cs(cloudsim, "--post", "deleteNetwork", f"id={net}")
    assert code == 1 and "Job failure" in err
    job = body["queryasyncjobresultresponse"]
    assert (job["jobstatus"], job["jobresultcode"], job["cmd"]) == (
        2,
        530,
        "org.apache.cloudstack.api.command.user.network.DeleteNetworkCmd",
    )
    assert job["jobresult"] == {"uuidList": [], "errorcode": 530, "errortext": "Failed to delete network"}
