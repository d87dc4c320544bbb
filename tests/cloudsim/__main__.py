"""``python -m tests.cloudsim --port 8080``: run a test cloud on loopback until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.cloudsim.faults import Fault
from tests.cloudsim.server import CloudSim, SimConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.cloudsim", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    p.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    p.add_argument("--key", default="koral-test-key", help="API key of the account")
    p.add_argument("--secret", default="koral-test-secret", help="secret key of the account")
    p.add_argument("--role", choices=("Admin", "User"), default="Admin")
    p.add_argument("--latency", type=float, default=0.5, help="seconds each async job takes")
    p.add_argument("--max-size", type=int, default=10, help="cloud.kubernetes.cluster.max.size")
    p.add_argument(
        "--allow-get",
        action="store_true",
        help="enforce.post.requests.and.timestamps off (CloudStack's default): GET for every command",
    )
    p.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="COMMAND[:MODE[:N,...]]",
        help="inject a failure, e.g. deployVirtualMachine:error:2 (modes: error, timeout, http503)",
    )
    args = p.parse_args(argv)
    config = SimConfig(
        host=args.host,
        port=args.port,
        api_key=args.key,
        secret=args.secret,
        role=args.role,
        job_latency=args.latency,
        max_cluster_size=args.max_size,
        enforce_post=not args.allow_get,
        faults=tuple(Fault.parse(f) for f in args.fail),
    )
    # Handlers first: a caller may send SIGTERM as soon as it has read the endpoint line.
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    sim = CloudSim(config).start()
    print(f"cloudsim listening: CLOUDSTACK_ENDPOINT={sim.endpoint} CLOUDSTACK_KEY={args.key}", flush=True)
    done.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
