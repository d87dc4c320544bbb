"""A bare node container for the bundle/registry integration tests (koral's node image, own network)."""

from __future__ import annotations

import time

from koral_ansible.paths import Paths
from koral_ansible.providers.local import network, nodes
from koral_ansible.providers.local.image import ensure_image
from koral_ansible.providers.local.podman import Podman, home_id


def start_node(paths: Paths, cluster: str) -> tuple[Podman, str, str, str]:
    """A node container of this test on its own podman network: (podman, container, ip, network)."""
    podman = Podman(paths)
    hid = home_id(paths)
    net = network.ensure_network(podman, cluster, hid)
    spec = nodes.NodeSpec(
        cluster=cluster,
        name=f"{cluster}-node",
        ip=net.node_ip(0),
        network=net.name,
        image=ensure_image(paths),
        cpus=1,
        memory_mib=1024,
    )
    keys = nodes.authorized_keys(paths, cluster, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKoralTestOnlyKey test")
    nodes.create(podman, spec, hid, nodes.make_dirs(paths, cluster, spec.name), keys)
    container = nodes.container_name(spec.name)
    for _ in range(90):
        proc = podman.run("exec", container, "systemctl", "is-system-running", check=False)
        if proc.stdout.strip() in ("running", "degraded"):
            break
        time.sleep(1)
    return podman, container, str(spec.ip), net.name


def stop_node(podman: Podman, container: str, net: str) -> None:
    podman.run("rm", "--force", "--time", "0", container, check=False)
    network.remove_network(podman, net)
