"""A CloudStack API server for tests: ``CloudSim(SimConfig(...)).start()`` or ``python -m tests.cloudsim``.

It speaks the CloudStack HTTP API on loopback for the commands koral's cloudstack provider,
the ``cs`` client and the ngine_io.cloudstack modules use: signed requests (HMAC-SHA1,
``signatureVersion=3`` + ``expires``), CloudStack's JSON wrappers, field names and error format,
async jobs with ``queryAsyncJobResult``, list pagination, configurable job latency and failure
injection. Machines come from a pluggable backend (:mod:`tests.cloudsim.backend`).
"""

from tests.cloudsim.backend import MachineBackend, MachineSpec, MemoryBackend, NetworkView
from tests.cloudsim.errors import ApiError
from tests.cloudsim.faults import Fault
from tests.cloudsim.model import Account
from tests.cloudsim.server import CloudSim, SimConfig

__all__ = [
    "Account",
    "ApiError",
    "CloudSim",
    "Fault",
    "MachineBackend",
    "MachineSpec",
    "MemoryBackend",
    "NetworkView",
    "SimConfig",
]
