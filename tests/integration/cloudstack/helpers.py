"""Build a CloudStackProvider wired to the test cloud, with a fresh state store."""

from __future__ import annotations

from dataclasses import dataclass, field

from cs import CloudStack, CloudStackApiException

from koral_ansible.paths import Paths
from koral_ansible.providers.base import ProviderContext
from koral_ansible.providers.cloudstack import CloudStackProvider
from koral_ansible.providers.cloudstack.config import CloudConfig
from koral_ansible.spec import ClusterSpec, validate_spec
from koral_ansible.state import StateStore
from tests.cloudsim import CloudSim

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ0bW9ja2tleWZvcmtvcmFsdGVzdHNvbmx5MTIzNDU2 koral@test"


@dataclass
class Harness:
    sim: CloudSim
    store: StateStore
    provider: CloudStackProvider
    spec: ClusterSpec
    messages: list[str] = field(default_factory=list)


def config_for(sim: CloudSim, **over: object) -> CloudConfig:
    base = CloudConfig(
        endpoint=sim.endpoint,
        key=sim.config.api_key,
        secret=sim.config.secret,
        timeout=5,
        template="koral-node-debian12",
        job_timeout=20,
        poll_interval=0.01,
        poll_max=0.05,
        retries=3,
        retry_delay=0.01,
    )
    return base.with_(**over)


def harness(
    sim: CloudSim, paths: Paths, name: str = "demo", config: CloudConfig | None = None, **spec: object
) -> Harness:
    data: dict[str, object] = {
        "name": name,
        "provider": "cloudstack",
        "zone": "zone1",
        "compute_offering": "Medium Instance",
        "size": 2,
    }
    data.update(spec)
    cspec = validate_spec(data)
    store = StateStore(paths)
    if store.find_cluster(name) is None:
        store.add_cluster(cspec)
    messages: list[str] = []
    ctx = ProviderContext(
        store=store, paths=paths, cluster=name, ssh_public_key=PUBKEY, report=messages.append
    )
    provider = CloudStackProvider(ctx, config=config or config_for(sim))
    return Harness(sim, store, provider, cspec, messages)


def signs_with(sim: CloudSim, key: str, secret: str) -> int:
    """The HTTP status the test cloud answers a call signed with this pair, made by the real ``cs``
    client (200: the pair works; 401: refused)."""
    try:
        CloudStack(endpoint=sim.endpoint, key=key, secret=secret, method="post").listZones()
    except CloudStackApiException as exc:
        return int(exc.response.status_code)
    return 200
