"""Autoscaling end to end on local nodes: cluster-autoscaler's side played by a grpcio client.

One 1 control + 1 worker cluster made with `koral-play create`. `koral-play autoscale --enable`
deploys cluster-autoscaler (checked through the real kubectl on the first control node), manual
`scale` is refused, `koral-play autoscaler serve` runs in a subprocess listening on the cluster
network's gateway, and a grpcio client holding the cluster's client certificate calls it as
cluster-autoscaler does: NodeGroups / NodeGroupNodes (instance ids = the Nodes' providerIDs),
NodeGroupIncreaseSize(2) -> two new local nodes joined, NodeGroupDeleteNodes -> one drained and
removed, past max -> FAILED_PRECONDITION, a foreign client certificate refused. `--disable`
removes the deployment. The Kubernetes binaries are the test doubles (tests/doubles).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from koral_ansible.autoscaler import settings
from koral_ansible.autoscaler.certs import cert_files, issue, new_ca
from koral_ansible.autoscaler.protos import externalgrpc_pb2 as pb
from koral_ansible.autoscaler.protos import externalgrpc_pb2_grpc as pb_grpc
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.provider_id import kube_provider_id
from koral_ansible.providers.local.nodes import container_name
from koral_ansible.providers.local.podman import podman_env
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home
from tests.versions import DEFAULT

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

NAME = "astest"
VERSION = DEFAULT
CONTROL = f"{NAME}-control-1"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
SCALE_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), NAME) as h:
        yield h


@pytest.fixture(scope="module")
def cluster(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    root_dir = tmp_path_factory.mktemp("bundle")
    bundle = make_double_bundle(root_dir, VERSION, iso=True)
    assert bundle.iso is not None
    started = time.monotonic()
    code = run_cli(
        root, ["create", NAME, "--size", "1", "--bundle", str(bundle.iso), "--allowed-cidrs", "10.0.0.0/8"]
    )
    assert code == 0
    print(f"create 1+1: {time.monotonic() - started:.0f}s")
    return Env.open(str(home), quiet=True)


def node_exec(env: Env, node: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", "exec", container_name(node), "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, **podman_env(env.paths)},
        timeout=120,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"{node}: {command}: {proc.stderr}"
    return proc


def api_nodes(env: Env) -> dict[str, dict[str, Any]]:
    items = json.loads(node_exec(env, CONTROL, f"{KUBECTL} get nodes -o json").stdout)["items"]
    return {i["metadata"]["name"]: i for i in items}


def api_object(env: Env, kind: str, name: str) -> dict[str, Any] | None:
    proc = node_exec(env, CONTROL, f"{KUBECTL} -n kube-system get {kind} {name} -o json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def container_exists(env: Env, node: str) -> bool:
    proc = subprocess.run(
        ["podman", "container", "exists", container_name(node)],
        env={**os.environ, **podman_env(env.paths)},
        check=False,
        timeout=60,
    )
    return proc.returncode == 0


def koral(*args: str) -> int:
    started = time.monotonic()
    code = run_cli(root, list(args))
    print(f"koral-play {' '.join(args)}: exit {code} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return code


def last_playbook_event(env: Env) -> str:
    """Summary of the last playbooks/autoscaler.yml run (``...: ok (Ns, changed=N)``)."""
    runs = [
        e for e in env.store.events(NAME) if e.operation == "autoscaler" and e.phase.startswith("ansible:")
    ]
    assert runs and runs[-1].result == "Completed", runs[-1:]
    return runs[-1].message


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def code_of(fn: Any, request: Any, timeout: float = 30) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        fn(request, timeout=timeout)
    code = err.value.code()  # type: ignore[attr-defined]
    assert isinstance(code, grpc.StatusCode)
    return code


def workers(env: Env) -> list[str]:
    return sorted(n.name for n in env.store.get_cluster(NAME).workers)


def start_service(home: Path, log: Path) -> subprocess.Popen[bytes]:
    koral_play = Path(sys.executable).parent / "koral-play"
    out = log.open("wb")
    proc = subprocess.Popen(
        [str(koral_play), "autoscaler", "serve", "--cluster", NAME],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "KORAL_HOME": str(home)},
    )
    deadline = time.monotonic() + 60
    while "serving cluster-autoscaler" not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.5)
    return proc


def test_autoscaling_end_to_end(cluster: Env, home: Path, tmp_path: Path) -> None:
    env = cluster
    gateway = str(env.store.get_cluster(NAME).endpoint["public_ip"])
    address = f"{gateway}:{free_port(gateway)}"

    # enable: cluster-autoscaler deployed with the externalgrpc provider pointing at the service
    assert koral("autoscale", NAME, "--enable", "--min", "1", "--max", "3", "--service-address", address) == 0
    deployment = api_object(env, "deployment", "cluster-autoscaler")
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--cloud-provider=externalgrpc" in container["args"]
    assert f"--nodes=1:3:{NAME}" in container["args"]
    assert container["image"].endswith(f"cluster-autoscaler:v{VERSION.rsplit('.', 1)[0]}.0")
    config = api_object(env, "configmap", "cluster-autoscaler-cloud-config")
    assert config is not None and f'address: "{address}"' in config["data"]["cloud-config"]
    secret = api_object(env, "secret", "cluster-autoscaler-certs")
    assert secret is not None and set(secret["data"]) == {"ca.crt", "client.crt", "client.key"}
    manifests = node_exec(
        env, CONTROL, "stat -c %a /etc/kubernetes/koral/autoscaler/secret.yaml"
    ).stdout.strip()
    assert manifests == "600"

    # the same settings again: the role changes nothing
    assert koral("autoscale", NAME, "--enable", "--min", "1", "--max", "3") == 0
    assert last_playbook_event(env).endswith("changed=0)")

    # while enabled, manual scale is refused (exit 2) and changes nothing
    assert koral("scale", NAME, "--size", "2") == 2
    assert workers(env) == [f"{NAME}-node-1"]

    log = tmp_path / "serve.log"
    service = start_service(home, log)
    certs = cert_files(env.paths, NAME)
    creds = grpc.ssl_channel_credentials(
        root_certificates=certs.ca_cert.read_bytes(),
        private_key=certs.client_key.read_bytes(),
        certificate_chain=certs.client_cert.read_bytes(),
    )
    channel = grpc.secure_channel(address, creds)
    stub = pb_grpc.CloudProviderStub(channel)
    try:
        groups = stub.NodeGroups(pb.NodeGroupsRequest(), timeout=30).nodeGroups
        assert [(g.id, g.minSize, g.maxSize) for g in groups] == [(NAME, 1, 3)]

        def instance_ids() -> list[str]:
            nodes = stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id=NAME), timeout=30).instances
            return sorted(n.id for n in nodes)

        api = api_nodes(env)
        assert instance_ids() == [api[f"{NAME}-node-1"]["spec"]["providerID"]]
        assert api[CONTROL]["spec"]["providerID"] == kube_provider_id(NAME, CONTROL)

        # scale up by 2, as cluster-autoscaler does: returns once the nodes joined
        started = time.monotonic()
        stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id=NAME, delta=2), timeout=SCALE_TIMEOUT)
        print(f"IncreaseSize(2): {time.monotonic() - started:.0f}s", file=sys.stderr)
        added = [f"{NAME}-node-2", f"{NAME}-node-3"]
        assert workers(env) == [f"{NAME}-node-1", *added]
        assert {n.name: n.state for n in env.store.get_cluster(NAME).workers} == dict.fromkeys(
            [f"{NAME}-node-1", *added], "Running"
        )
        api = api_nodes(env)
        assert set(api) == {CONTROL, f"{NAME}-node-1", *added}
        assert instance_ids() == sorted(api[n]["spec"]["providerID"] for n in api if n != CONTROL)
        assert all(container_exists(env, n) for n in added)
        target = stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id=NAME), timeout=30).targetSize
        assert target == 3

        # past max: refused with the code cluster-autoscaler reports as a failed scale-up
        assert (
            code_of(stub.NodeGroupIncreaseSize, pb.NodeGroupIncreaseSizeRequest(id=NAME, delta=1))
            == grpc.StatusCode.FAILED_PRECONDITION
        )

        # scale down one chosen node (cluster-autoscaler sends the Node's name and providerID)
        victim = f"{NAME}-node-2"
        started = time.monotonic()
        stub.NodeGroupDeleteNodes(
            pb.NodeGroupDeleteNodesRequest(
                id=NAME,
                nodes=[pb.ExternalGrpcNode(name=victim, providerID=kube_provider_id(NAME, victim))],
            ),
            timeout=SCALE_TIMEOUT,
        )
        print(f"DeleteNodes(1): {time.monotonic() - started:.0f}s", file=sys.stderr)
        assert workers(env) == [f"{NAME}-node-1", f"{NAME}-node-3"]
        assert victim not in api_nodes(env)
        assert not container_exists(env, victim)
        assert victim not in " ".join(instance_ids())

        # a client certificate from another CA is refused at the TLS handshake
        foreign_ca, foreign_key = new_ca("not koral")
        cert, key = issue(foreign_ca, foreign_key, "cluster-autoscaler", server=False)
        foreign = grpc.ssl_channel_credentials(
            root_certificates=certs.ca_cert.read_bytes(), private_key=key, certificate_chain=cert
        )
        with grpc.secure_channel(address, foreign) as bad:
            assert (
                code_of(pb_grpc.CloudProviderStub(bad).NodeGroups, pb.NodeGroupsRequest(), timeout=10)
                == grpc.StatusCode.UNAVAILABLE
            )
    except BaseException:
        print(f"--- autoscaler serve log ---\n{log.read_text(errors='replace')[-6000:]}", file=sys.stderr)
        raise
    finally:
        channel.close()
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
    assert service.returncode == 0, log.read_text(errors="replace")

    # disable: cluster-autoscaler and its objects removed, manual scale allowed again
    assert koral("autoscale", NAME, "--disable") == 0
    for kind, name in (
        ("deployment", "cluster-autoscaler"),
        ("secret", "cluster-autoscaler-certs"),
        ("configmap", "cluster-autoscaler-cloud-config"),
    ):
        assert api_object(env, kind, name) is None, (kind, name)
    assert node_exec(env, CONTROL, "test -e /etc/kubernetes/koral/autoscaler", check=False).returncode != 0
    assert koral("autoscale", NAME, "--disable") == 0
    assert last_playbook_event(env).endswith("changed=0)")
    assert settings.manual_scale_refusal(env.paths, NAME) is None
