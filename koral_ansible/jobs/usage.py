"""Each node's CPU, memory and root-disk use, read from the node itself over SSH.

The same way Ansible reaches the nodes (:mod:`koral_ansible.inventory`: host, port, user, the
cluster's key and known_hosts), one short command per node, all nodes at once, each with a
timeout. A node that cannot be read has ``error`` set; it never raises.

What is read (the node kernel's view: exact on cloud VMs; on local nodes, containers sharing
the host kernel, CPU and load are the host's and memory is the node's cgroup limit if it has one):
CPUs (``nproc``), load average, CPU busy % over :data:`SAMPLE_SECONDS` (/proc/stat, proc(5)),
memory (/proc/meminfo MemTotal - MemAvailable, or the cgroup's usage and limit), and ``df`` of /.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from koral_ansible.inventory import host_vars, ssh_connection_vars
from koral_ansible.operations.context import Env
from koral_ansible.providers.base import Endpoint
from koral_ansible.state import NodeRecord

SAMPLE_SECONDS = 0.3
TIMEOUT = 10.0
CONNECT_TIMEOUT = 5

#: POSIX sh on the node; every value on its own keyed line.
USAGE_COMMAND = (
    "echo nproc $(nproc); echo loadavg $(cat /proc/loadavg); echo cpu0 $(head -n1 /proc/stat); "
    f"sleep {SAMPLE_SECONDS}; echo cpu1 $(head -n1 /proc/stat); "
    "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; "
    "echo cglimit $(cat /sys/fs/cgroup/memory.max 2>/dev/null "
    "|| cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null); "
    "echo cgusage $(cat /sys/fs/cgroup/memory.current 2>/dev/null "
    "|| cat /sys/fs/cgroup/memory/memory.usage_in_bytes 2>/dev/null); "
    "echo df $(df -P -B1 / | tail -n 1)"
)

Runner = Callable[[Sequence[str], float], subprocess.CompletedProcess[str]]


class NodeUsage(BaseModel):
    name: str
    cpus: int = 0
    load1: float = 0.0
    load_percent: float = 0.0  # 1-minute load per CPU, in %
    cpu_percent: float = 0.0  # busy time over the sample, in %
    memory_used: int = 0  # bytes
    memory_total: int = 0
    disk_used: int = 0  # bytes, the root file system
    disk_total: int = 0
    error: str = ""  # why the node could not be read ("" = read)


def _cpu_busy(first: list[int], second: list[int]) -> float:
    """Busy % between two /proc/stat "cpu" lines (user nice system idle iowait irq softirq steal)."""
    delta = [b - a for a, b in zip(first, second, strict=False)]
    total = sum(delta[:8])
    idle = sum(delta[3:5])
    return round(100.0 * (total - idle) / total, 1) if total > 0 else 0.0


def parse_usage(name: str, text: str) -> NodeUsage:
    """The node's answer to :data:`USAGE_COMMAND`; a missing or garbled value is an error."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(" ")
        values[key.rstrip(":")] = rest.split()
    try:
        cpus = int(values["nproc"][0])
        load1 = float(values["loadavg"][0])
        cpu = _cpu_busy([int(v) for v in values["cpu0"][1:]], [int(v) for v in values["cpu1"][1:]])
        mem_total = int(values["MemTotal"][0]) * 1024
        mem_used = mem_total - int(values["MemAvailable"][0]) * 1024
        limit, usage = values.get("cglimit", []), values.get("cgusage", [])
        if limit and usage and limit[0].isdigit() and 0 < int(limit[0]) < mem_total:
            mem_total, mem_used = int(limit[0]), int(usage[0])
        df = values["df"]  # Filesystem 1-blocks Used Available Capacity Mounted-on
        disk_total, disk_used = int(df[1]), int(df[2])
    except (KeyError, IndexError, ValueError) as exc:
        return NodeUsage(name=name, error=f"unexpected answer from the node ({type(exc).__name__}: {exc})")
    return NodeUsage(
        name=name,
        cpus=cpus,
        load1=load1,
        load_percent=round(100.0 * load1 / cpus, 1) if cpus else 0.0,
        cpu_percent=cpu,
        memory_used=mem_used,
        memory_total=mem_total,
        disk_used=disk_used,
        disk_total=disk_total,
    )


def ssh_argv(env: Env, cluster: str, node: NodeRecord, endpoint: Endpoint) -> list[str]:
    """ssh to ``node`` exactly as Ansible does (inventory host vars + the cluster's key and known_hosts)."""
    host = host_vars(node, endpoint)
    conn = ssh_connection_vars(env.paths, cluster)
    return [
        "ssh",
        "-i",
        str(conn["ansible_ssh_private_key_file"]),
        "-p",
        str(host["ansible_port"]),
        *shlex.split(str(conn["ansible_ssh_common_args"])),
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={CONNECT_TIMEOUT}",
        f"{host['ansible_user']}@{host['ansible_host']}",
        USAGE_COMMAND,
    ]


def _run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )


def _one(env: Env, cluster: str, node: NodeRecord, endpoint: Endpoint, run: Runner) -> NodeUsage:
    try:
        proc = run(ssh_argv(env, cluster, node, endpoint), TIMEOUT)
    except subprocess.TimeoutExpired:
        return NodeUsage(name=node.name, error=f"no answer within {TIMEOUT:.0f} s")
    except OSError as exc:
        return NodeUsage(name=node.name, error=f"cannot run ssh: {exc.strerror}")
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        return NodeUsage(name=node.name, error=env.redactor.text(f"ssh failed: {why}"))
    return parse_usage(node.name, proc.stdout)


def node_usage(env: Env, cluster: str, run: Runner = _run) -> list[NodeUsage]:
    """Every node's usage, in the cluster's node order; per-node errors as values."""
    record = env.store.get_cluster(cluster)
    endpoint = Endpoint.from_dict(record.endpoint)
    if not record.nodes:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(record.nodes))) as pool:
        return list(pool.map(lambda n: _one(env, cluster, n, endpoint, run), record.nodes))
