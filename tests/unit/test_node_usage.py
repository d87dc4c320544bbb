"""node_usage: the command each node runs, its parser, the ssh command line, per-node errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

import pytest

from koral_ansible.jobs import usage
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState, NodeRecord, StateStore

SAMPLE = """nproc 2
loadavg 4.94 2.80 1.93 6/244 22267
cpu0 cpu 2312382 96 718606 2209324 26710 0 12600 2257 0 0
cpu1 cpu 2312434 96 718619 2209374 26710 0 12600 2257 0 0
MemTotal:       24683584 kB
MemAvailable:   23188132 kB
cglimit 9223372036854771712
cgusage 9367158784
df /dev/vda 270553174016 59014623232 49929670656 55% /
"""


def test_parse_sample() -> None:
    got = usage.parse_usage("n1", SAMPLE)
    assert got.error == ""
    assert (got.cpus, got.load1, got.load_percent) == (2, 4.94, 247.0)
    assert got.cpu_percent == round(100 * 65 / 115, 1)  # 52+13 busy ticks of 115
    assert (got.memory_total, got.memory_used) == (24683584 * 1024, (24683584 - 23188132) * 1024)
    assert (got.disk_total, got.disk_used) == (270553174016, 59014623232)


def test_parse_takes_a_cgroup_limit_below_the_kernel_total() -> None:
    text = SAMPLE.replace("cglimit 9223372036854771712", "cglimit 2147483648").replace(
        "cgusage 9367158784", "cgusage 1073741824"
    )
    got = usage.parse_usage("n1", text)
    assert (got.memory_total, got.memory_used) == (2147483648, 1073741824)
    unlimited = usage.parse_usage("n1", SAMPLE.replace("cglimit 9223372036854771712", "cglimit max"))
    assert unlimited.memory_total == 24683584 * 1024


@pytest.mark.parametrize("drop", ["nproc", "loadavg", "cpu1", "MemTotal", "df"])
def test_parse_garbled_answer_is_an_error_value(drop: str) -> None:
    text = "\n".join(ln for ln in SAMPLE.splitlines() if not ln.startswith(drop))
    got = usage.parse_usage("n1", text)
    assert got.error.startswith("unexpected answer from the node") and got.cpus == 0


def test_the_command_runs_on_a_debian_machine() -> None:
    """The real command, run here with sh, parses to this machine's own numbers."""
    proc = subprocess.run(["sh", "-c", usage.USAGE_COMMAND], capture_output=True, text=True, check=True)
    got = usage.parse_usage("here", proc.stdout)
    assert got.error == ""
    assert got.cpus == len(os.sched_getaffinity(0))
    assert 0.0 <= got.cpu_percent <= 100.0
    assert 0 < got.memory_used < got.memory_total
    assert got.disk_total == shutil.disk_usage("/").total and 0 < got.disk_used < got.disk_total


@pytest.fixture
def env(koral_home: Paths) -> Env:
    e = Env(paths=koral_home, store=StateStore(koral_home), quiet=True)
    e.store.add_cluster(validate_spec({"name": "demo", "size": 2}), ClusterState.RUNNING)
    e.store.set_endpoint("demo", {"public_ip": "10.1.0.1", "ssh_user": "root"})
    for idx, (name, role) in enumerate(
        [("demo-control-1", "control"), ("demo-node-1", "worker"), ("demo-node-2", "worker")]
    ):
        e.store.upsert_node(
            "demo", NodeRecord(name=name, role=role, idx=idx, state="Running", ssh_port=2222 + idx)
        )
    return e


def test_node_usage_reads_every_node_and_reports_errors_per_node(env: Env) -> None:
    seen: list[list[str]] = []

    def run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        seen.append(list(argv))
        port = argv[argv.index("-p") + 1]
        if port == "2223":
            return subprocess.CompletedProcess(
                argv, 255, "", "ssh: connect to host 10.1.0.1 port 2223: Connection refused\n"
            )
        if port == "2224":
            raise subprocess.TimeoutExpired(argv, timeout)
        return subprocess.CompletedProcess(argv, 0, SAMPLE, "")

    got = usage.node_usage(env, "demo", run=run)
    assert [u.name for u in got] == ["demo-control-1", "demo-node-1", "demo-node-2"]
    assert got[0].error == "" and got[0].cpus == 2
    assert got[1].error == "ssh failed: ssh: connect to host 10.1.0.1 port 2223: Connection refused"
    assert got[2].error == f"no answer within {usage.TIMEOUT:.0f} s"
    argv = next(a for a in seen if a[a.index("-p") + 1] == "2222")
    assert argv[:5] == ["ssh", "-i", str(env.paths.ssh_key("demo")), "-p", "2222"]
    assert f"UserKnownHostsFile={env.paths.known_hosts('demo')}" in argv
    assert "StrictHostKeyChecking=accept-new" in argv and "BatchMode=yes" in argv
    assert argv[-2:] == ["root@10.1.0.1", usage.USAGE_COMMAND]


def test_node_usage_of_a_cluster_without_nodes(env: Env) -> None:
    env.store.add_cluster(validate_spec({"name": "empty", "size": 1}), ClusterState.CREATED)
    assert usage.node_usage(env, "empty") == []
