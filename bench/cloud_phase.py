"""Cloud phase of `create` for 10 nodes against the test cloud: concurrent jobs vs one by one.

    python -m bench.cloud_phase [--scale 1.0] [--control 3] [--workers 7]

Runs CloudStackProvider.provision (network, public IP, VMs, firewall, port forwards, API LB)
against tests.cloudsim on 127.0.0.1 with job latencies shaped like a real cloud (VM deploys
dominate), once with every job submitted at once and polled together (the default) and once
with one job in flight at a time, and prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from koral_ansible.paths import Paths
from koral_ansible.providers.base import ProviderContext
from koral_ansible.providers.cloudstack import CloudStackProvider
from koral_ansible.providers.cloudstack.config import CloudConfig
from koral_ansible.spec import validate_spec
from koral_ansible.state import StateStore
from tests.cloudsim import CloudSim, SimConfig

# Seconds per async job at --scale 1 (a real KVM deploy takes 30-90 s; rules a few seconds).
LATENCY = {
    "deployVirtualMachine": 6.0,
    "associateIpAddress": 1.0,
    "createFirewallRule": 0.8,
    "createPortForwardingRule": 0.8,
    "createLoadBalancerRule": 1.5,
    "assignToLoadBalancerRule": 1.5,
    "createTags": 0.3,
    "destroyVirtualMachine": 0.05,
}
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ0bW9ja2tleWZvcmtvcmFsdGVzdHNvbmx5MTIzNDU2 bench"


def run(scale: float, control: int, workers: int, inflight: int) -> float:
    config = SimConfig(
        job_latency=0.5 * scale, command_latency={k.lower(): v * scale for k, v in LATENCY.items()}
    )
    with CloudSim(config) as sim, tempfile.TemporaryDirectory() as tmp:
        paths = Paths.resolve(home=Path(tmp) / "home")
        store = StateStore(paths)
        spec = validate_spec(
            {
                "name": "bench",
                "provider": "cloudstack",
                "zone": "zone1",
                "compute_offering": "Medium Instance",
                "control_nodes": control,
                "size": workers,
            },
            max_size=1000,
        )
        store.add_cluster(spec)
        cfg = CloudConfig(
            endpoint=sim.endpoint,
            key=sim.config.api_key,
            secret=sim.config.secret,
            template="koral-node-debian12",
            poll_interval=0.2 * scale,
            poll_max=1.0 * scale,
            max_inflight_jobs=inflight,
        )
        provider = CloudStackProvider(ProviderContext(store, paths, "bench", PUBKEY), config=cfg)
        t0 = time.monotonic()
        provider.provision(spec)
        elapsed = time.monotonic() - t0
        assert len(sim.cloud.vms) == control + workers
        provider.destroy(spec)
        store.close()
        return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply every job latency (0.1 for a quick run)"
    )
    p.add_argument("--control", type=int, default=3)
    p.add_argument("--workers", type=int, default=7)
    args = p.parse_args()
    n = args.control + args.workers
    concurrent = run(args.scale, args.control, args.workers, inflight=0)
    serial = run(args.scale, args.control, args.workers, inflight=1)
    print(
        f"cloud phase, {n} nodes ({args.control} control + {args.workers} workers), scale {args.scale:g}"
    )
    print(f"  concurrent jobs : {concurrent:6.1f} s")
    print(f"  one by one      : {serial:6.1f} s")
    print(f"  ratio           : {serial / concurrent:6.1f}x")


if __name__ == "__main__":
    main()
