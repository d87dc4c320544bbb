"""The externalgrpc CloudProvider service driven over mTLS (loopback) as cluster-autoscaler drives it.

koral's real scale operations are replaced by a fake that takes the cluster's file lock, records
its calls and updates the state store's worker records, like the real ones do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from koral_ansible.autoscaler import settings
from koral_ansible.autoscaler.certs import CertFiles, ensure_certs, issue, new_ca
from koral_ansible.autoscaler.protos import externalgrpc_pb2 as pb
from koral_ansible.autoscaler.protos import externalgrpc_pb2_grpc as pb_grpc
from koral_ansible.autoscaler.server import GPU_LABEL, OTHER_ERROR_CLASS, build_server
from koral_ansible.autoscaler.state_scaler import StateScaler
from koral_ansible.paths import Paths
from koral_ansible.provider_id import kube_provider_id
from koral_ansible.spec import validate_spec
from koral_ansible.state import NodeRecord, StateStore

CLUSTER = "demo"
TIMEOUT = 10.0


@dataclass
class FakeOps:
    """Stands in for koral-play scale / remove-node: lock, record, update the node records."""

    paths: Paths
    delay: float = 0.0
    calls: list[tuple[str, str, int | str]] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    fail_with: BaseException | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def _enter(self) -> None:
        with self._guard:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def _leave(self) -> None:
        with self._guard:
            self.active -= 1

    def scale_to(self, cluster: str, size: int) -> None:
        store = StateStore(self.paths)
        try:
            with store.lock(cluster, "scale"):
                self._enter()
                try:
                    self.calls.append(("scale_to", cluster, size))
                    if self.fail_with is not None:
                        raise self.fail_with
                    workers = [n for n in store.nodes(cluster) if not n.is_control]  # read ...
                    time.sleep(self.delay)  # ... long operation ...
                    top = max((n.idx for n in store.nodes(cluster)), default=0)
                    for i in range(size - len(workers)):  # ... write: a lost update would show here
                        idx = top + 1 + i
                        store.upsert_node(
                            cluster, NodeRecord(f"{cluster}-node-{idx}", "worker", idx, state="Running")
                        )
                finally:
                    self._leave()
        finally:
            store.close()

    def remove_node(self, cluster: str, node: str) -> None:
        store = StateStore(self.paths)
        try:
            with store.lock(cluster, "remove-node"):
                self.calls.append(("remove_node", cluster, node))
                store.remove_node(cluster, node)
        finally:
            store.close()


@dataclass
class Env:
    paths: Paths
    store: StateStore
    ops: FakeOps
    certs: CertFiles
    port: int
    stub: pb_grpc.CloudProviderStub

    def set_bounds(self, low: int, high: int) -> None:
        settings.enable(self.paths, CLUSTER, low, high)

    def workers(self) -> list[str]:
        return [n.name for n in self.store.nodes(CLUSTER) if not n.is_control]


def _credentials(ca: bytes, cert: bytes | None = None, key: bytes | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def client_credentials(certs: CertFiles) -> grpc.ChannelCredentials:
    return _credentials(
        certs.ca_cert.read_bytes(), certs.client_cert.read_bytes(), certs.client_key.read_bytes()
    )


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    paths = Paths.resolve(tmp_path / "home", tmp_path / "cache")
    store = StateStore(paths)
    store.add_cluster(validate_spec({"name": CLUSTER, "size": 2}))
    store.add_cluster(validate_spec({"name": "other", "size": 1}))
    for cluster, count in ((CLUSTER, 2), ("other", 1)):
        store.upsert_node(cluster, NodeRecord(f"{cluster}-control-1", "control", 0, state="Running"))
        for idx in range(1, count + 1):
            store.upsert_node(cluster, NodeRecord(f"{cluster}-node-{idx}", "worker", idx, state="Running"))
    settings.enable(paths, CLUSTER, 1, 4)  # "other" stays disabled
    ops = FakeOps(paths)
    scaler = StateScaler(paths, ops.scale_to, ops.remove_node)
    certs = ensure_certs(paths, CLUSTER)
    server, port = build_server(scaler, certs, "127.0.0.1:0")
    server.start()
    channel = grpc.secure_channel(f"127.0.0.1:{port}", client_credentials(certs))
    try:
        yield Env(paths, store, ops, certs, port, pb_grpc.CloudProviderStub(channel))
    finally:
        channel.close()
        server.stop(grace=None).wait()
        store.close()


def code_of(call: object) -> grpc.StatusCode:
    assert isinstance(call, grpc.RpcError)
    code = call.code()
    assert isinstance(code, grpc.StatusCode)
    return code


def expect(code: grpc.StatusCode, fn: object, request: object, timeout: float = TIMEOUT) -> str:
    with pytest.raises(grpc.RpcError) as err:
        fn(request, timeout=timeout)  # type: ignore[operator]
    assert code_of(err.value) == code, err.value
    return str(err.value.details())  # type: ignore[attr-defined]


def target(env: Env) -> int:
    return int(
        env.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id=CLUSTER), timeout=TIMEOUT).targetSize
    )


# ---- reads ------------------------------------------------------------------------------------------
def test_node_groups_lists_enabled_clusters_with_bounds(env: Env) -> None:
    groups = env.stub.NodeGroups(pb.NodeGroupsRequest(), timeout=TIMEOUT).nodeGroups
    assert [(g.id, g.minSize, g.maxSize) for g in groups] == [(CLUSTER, 1, 4)]
    assert "target=2" in groups[0].debug
    assert target(env) == 2
    nodes = env.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id=CLUSTER), timeout=TIMEOUT).instances
    assert [n.id for n in nodes] == [kube_provider_id(CLUSTER, f"{CLUSTER}-node-{i}") for i in (1, 2)]
    assert {n.status.instanceState for n in nodes} == {pb.InstanceStatus.instanceRunning}
    assert all(n.status.errorInfo.errorCode == "" for n in nodes)


def test_unknown_or_disabled_group_is_not_found(env: Env) -> None:
    for group in ("nope", "other"):
        expect(
            grpc.StatusCode.NOT_FOUND, env.stub.NodeGroupTargetSize, pb.NodeGroupTargetSizeRequest(id=group)
        )
        expect(grpc.StatusCode.NOT_FOUND, env.stub.NodeGroupNodes, pb.NodeGroupNodesRequest(id=group))
        expect(
            grpc.StatusCode.NOT_FOUND,
            env.stub.NodeGroupIncreaseSize,
            pb.NodeGroupIncreaseSizeRequest(id=group, delta=1),
        )
        expect(
            grpc.StatusCode.NOT_FOUND,
            env.stub.NodeGroupDeleteNodes,
            pb.NodeGroupDeleteNodesRequest(id=group, nodes=[pb.ExternalGrpcNode(name=f"{group}-node-1")]),
        )
    assert env.ops.calls == []


def test_node_group_for_node(env: Env) -> None:
    def group_of(**node: str) -> str:
        req = pb.NodeGroupForNodeRequest(node=pb.ExternalGrpcNode(**node))
        return str(env.stub.NodeGroupForNode(req, timeout=TIMEOUT).nodeGroup.id)

    assert group_of(providerID=kube_provider_id(CLUSTER, "demo-node-1"), name="demo-node-1") == CLUSTER
    assert group_of(name="demo-node-2") == CLUSTER  # providerID not set on the Node
    resp = env.stub.NodeGroupForNode(
        pb.NodeGroupForNodeRequest(node=pb.ExternalGrpcNode(name="demo-node-2")), timeout=TIMEOUT
    )
    assert (resp.nodeGroup.minSize, resp.nodeGroup.maxSize) == (1, 4)
    # not managed: control plane, a cluster without autoscaling, a stranger -> empty id, no error
    assert group_of(providerID=kube_provider_id(CLUSTER, "demo-control-1"), name="demo-control-1") == ""
    assert group_of(name="other-node-1") == ""
    assert group_of(providerID="aws:///us-east-1a/i-0123", name="stranger") == ""


def test_optional_methods_and_constants(env: Env) -> None:
    s = env.stub
    expect(grpc.StatusCode.UNIMPLEMENTED, s.PricingNodePrice, pb.PricingNodePriceRequest())
    expect(grpc.StatusCode.UNIMPLEMENTED, s.PricingPodPrice, pb.PricingPodPriceRequest(pod_bytes=b"\n\x00"))
    expect(
        grpc.StatusCode.UNIMPLEMENTED,
        s.NodeGroupTemplateNodeInfo,
        pb.NodeGroupTemplateNodeInfoRequest(id=CLUSTER),
    )
    opts = pb.NodeGroupAutoscalingOptions(
        scaleDownUtilizationThreshold=0.5, scaleDownUnneededTime=pb.KubeDuration(duration=600_000_000_000)
    )
    expect(
        grpc.StatusCode.UNIMPLEMENTED,
        s.NodeGroupGetOptions,
        pb.NodeGroupAutoscalingOptionsRequest(id=CLUSTER, defaults=opts),
    )
    expect(grpc.StatusCode.NOT_FOUND, s.NodeGroupGetOptions, pb.NodeGroupAutoscalingOptionsRequest(id="nope"))
    assert s.GPULabel(pb.GPULabelRequest(), timeout=TIMEOUT).label == GPU_LABEL
    assert dict(s.GetAvailableGPUTypes(pb.GetAvailableGPUTypesRequest(), timeout=TIMEOUT).gpuTypes) == {}
    s.Refresh(pb.RefreshRequest(), timeout=TIMEOUT)
    s.Cleanup(pb.CleanupRequest(), timeout=TIMEOUT)


# ---- scale up ---------------------------------------------------------------------------------------
def test_increase_by_two_scales_to_size_plus_two(env: Env) -> None:
    env.stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=2), timeout=TIMEOUT)
    assert env.ops.calls == [("scale_to", CLUSTER, 4)]
    assert target(env) == 4
    ids = [
        i.id for i in env.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id=CLUSTER), timeout=TIMEOUT).instances
    ]
    assert ids == [kube_provider_id(CLUSTER, f"{CLUSTER}-node-{i}") for i in (1, 2, 3, 4)]
    events = [(e.operation, e.phase, e.result) for e in env.store.events(CLUSTER)]
    assert ("autoscaler", "increase", "Requested") in events


def test_increase_beyond_max_is_refused(env: Env) -> None:
    details = expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        env.stub.NodeGroupIncreaseSize,
        pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=3),
    )
    assert "above its max of 4" in details
    assert env.ops.calls == [] and target(env) == 2
    assert env.store.events(CLUSTER)[-1].result == "Refused"
    for delta in (0, -1):
        expect(
            grpc.StatusCode.INVALID_ARGUMENT,
            env.stub.NodeGroupIncreaseSize,
            pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=delta),
        )
    assert env.ops.calls == []


def test_concurrent_increases_are_serialized(env: Env) -> None:
    env.set_bounds(1, 8)
    env.ops.delay = 0.3
    errors: list[BaseException] = []

    def one() -> None:
        try:
            env.stub.NodeGroupIncreaseSize(
                pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=1), timeout=TIMEOUT
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert env.ops.max_active == 1
    assert [c[2] for c in env.ops.calls] == [3, 4, 5]  # each saw the size the previous one made
    assert target(env) == 5 and len(env.workers()) == 5


def test_request_whose_client_gave_up_while_waiting_is_dropped(env: Env) -> None:
    env.ops.delay = 1.0
    errors: list[BaseException] = []

    def first() -> None:
        try:
            env.stub.NodeGroupIncreaseSize(
                pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=1), timeout=TIMEOUT
            )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.2)
    with pytest.raises(grpc.RpcError) as err:
        env.stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=1), timeout=0.3)
    # the server gives up waiting for the lock at the deadline (ABORTED) or the client's deadline hits first
    assert code_of(err.value) in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED)
    thread.join()
    time.sleep(0.2)
    assert errors == []
    assert env.ops.calls == [("scale_to", CLUSTER, 3)]
    assert target(env) == 3


def test_cluster_busy_with_another_koral_operation_is_aborted(env: Env) -> None:
    with env.store.lock(CLUSTER, "upgrade"):
        details = expect(
            grpc.StatusCode.ABORTED,
            env.stub.NodeGroupIncreaseSize,
            pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=1),
        )
    assert "busy" in details and "upgrade" in details
    assert target(env) == 2
    env.stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=1), timeout=TIMEOUT)
    assert target(env) == 3


def test_unexpected_failure_is_unknown_without_details(env: Env) -> None:
    env.ops.fail_with = RuntimeError("token=s3cr3t-value")
    details = expect(
        grpc.StatusCode.UNKNOWN,
        env.stub.NodeGroupIncreaseSize,
        pb.NodeGroupIncreaseSizeRequest(id=CLUSTER, delta=1),
    )
    assert "s3cr3t" not in details and "RuntimeError" in details


# ---- scale down -------------------------------------------------------------------------------------
def test_delete_node_calls_remove_node(env: Env) -> None:
    env.stub.NodeGroupDeleteNodes(
        pb.NodeGroupDeleteNodesRequest(
            id=CLUSTER,
            nodes=[
                pb.ExternalGrpcNode(name="demo-node-2", providerID=kube_provider_id(CLUSTER, "demo-node-2"))
            ],
        ),
        timeout=TIMEOUT,
    )
    assert env.ops.calls == [("remove_node", CLUSTER, "demo-node-2")]
    assert env.workers() == ["demo-node-1"] and target(env) == 1


def test_delete_by_provider_id_only(env: Env) -> None:
    req = pb.NodeGroupDeleteNodesRequest(
        id=CLUSTER, nodes=[pb.ExternalGrpcNode(providerID=kube_provider_id(CLUSTER, "demo-node-1"))]
    )
    env.stub.NodeGroupDeleteNodes(req, timeout=TIMEOUT)
    assert env.ops.calls == [("remove_node", CLUSTER, "demo-node-1")]


def test_delete_below_min_is_refused_and_removes_nothing(env: Env) -> None:
    env.set_bounds(2, 4)
    details = expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        env.stub.NodeGroupDeleteNodes,
        pb.NodeGroupDeleteNodesRequest(id=CLUSTER, nodes=[pb.ExternalGrpcNode(name="demo-node-1")]),
    )
    assert "below its min of 2" in details
    env.set_bounds(1, 4)
    expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        env.stub.NodeGroupDeleteNodes,
        pb.NodeGroupDeleteNodesRequest(
            id=CLUSTER,
            nodes=[pb.ExternalGrpcNode(name="demo-node-1"), pb.ExternalGrpcNode(name="demo-node-2")],
        ),
    )
    assert env.ops.calls == [] and len(env.workers()) == 2


def test_delete_of_nodes_outside_the_group_is_invalid(env: Env) -> None:
    for name in ("demo-control-1", "other-node-1", "ghost"):
        expect(
            grpc.StatusCode.INVALID_ARGUMENT,
            env.stub.NodeGroupDeleteNodes,
            pb.NodeGroupDeleteNodesRequest(
                id=CLUSTER, nodes=[pb.ExternalGrpcNode(name="demo-node-1"), pb.ExternalGrpcNode(name=name)]
            ),
        )
    assert env.ops.calls == []


def test_decrease_target_never_deletes_existing_nodes(env: Env) -> None:
    expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        env.stub.NodeGroupDecreaseTargetSize,
        pb.NodeGroupDecreaseTargetSizeRequest(id=CLUSTER, delta=-1),
    )
    expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        env.stub.NodeGroupDecreaseTargetSize,
        pb.NodeGroupDecreaseTargetSizeRequest(id=CLUSTER, delta=1),
    )
    assert env.ops.calls == [] and target(env) == 2


def test_failed_node_is_reported_as_failed_creation(env: Env) -> None:
    env.store.set_node_state(CLUSTER, "demo-node-2", "Error")
    nodes = env.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id=CLUSTER), timeout=TIMEOUT).instances
    failed = nodes[1].status
    assert failed.instanceState == pb.InstanceStatus.instanceCreating
    assert failed.errorInfo.errorCode and failed.errorInfo.instanceErrorClass == OTHER_ERROR_CLASS
    assert "Error" in failed.errorInfo.errorMessage


# ---- mTLS -------------------------------------------------------------------------------------------
def _call_with(env: Env, creds: grpc.ChannelCredentials) -> grpc.StatusCode | None:
    with grpc.secure_channel(f"127.0.0.1:{env.port}", creds) as channel:
        try:
            pb_grpc.CloudProviderStub(channel).NodeGroups(pb.NodeGroupsRequest(), timeout=3)
        except grpc.RpcError as exc:
            return code_of(exc)
    return None


def test_client_certificate_from_another_ca_is_rejected(env: Env) -> None:
    ca = env.certs.ca_cert.read_bytes()
    foreign_ca, foreign_key = new_ca("somebody else")
    cert, key = issue(foreign_ca, foreign_key, "cluster-autoscaler", server=False)
    assert _call_with(env, _credentials(ca, cert, key)) == grpc.StatusCode.UNAVAILABLE
    # the certificates of another koral cluster (its own CA) do not open this one either
    other = ensure_certs(env.paths, "other")
    assert _call_with(
        env, _credentials(ca, other.client_cert.read_bytes(), other.client_key.read_bytes())
    ) == (grpc.StatusCode.UNAVAILABLE)
    assert env.ops.calls == []


def test_absent_client_certificate_is_rejected(env: Env) -> None:
    assert _call_with(env, _credentials(env.certs.ca_cert.read_bytes())) == grpc.StatusCode.UNAVAILABLE


def test_client_that_does_not_trust_the_server_fails(env: Env) -> None:
    foreign_ca, _ = new_ca("not the cluster CA")
    creds = _credentials(foreign_ca, env.certs.client_cert.read_bytes(), env.certs.client_key.read_bytes())
    assert _call_with(env, creds) == grpc.StatusCode.UNAVAILABLE


def test_right_client_certificate_is_accepted(env: Env) -> None:
    assert _call_with(env, client_credentials(env.certs)) is None
