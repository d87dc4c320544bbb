"""cluster-autoscaler's ``externalgrpc`` CloudProvider service, over a :class:`Scaler`, with mTLS.

One node group per cluster (its workers), group id = cluster name. Behaviour the autoscaler
relies on:

- ``NodeGroupForNode`` answers a NodeGroup with an empty id for nodes it does not manage
  (control-plane nodes, other clusters), never an error.
- Pricing, ``NodeGroupTemplateNodeInfo`` and ``NodeGroupGetOptions`` answer UNIMPLEMENTED, the
  protocol's "optional, not provided" (the autoscaler then uses its defaults and builds node
  templates from the group's existing nodes; koral's min size is >= 1 so one always exists).
- Unknown group: NOT_FOUND. Bad request regardless of state (delta <= 0, node not in the
  group): INVALID_ARGUMENT. Past max / below min / would delete existing nodes:
  FAILED_PRECONDITION. The cluster is busy with another koral operation (LockedError):
  ABORTED, so the autoscaler re-reads the size and decides again on its next loop instead of
  replaying a stale delta. cluster-autoscaler itself only distinguishes UNIMPLEMENTED; any
  other error fails the call (and backs the node group off after a failed scale-up).
- IncreaseSize / DeleteNodes / DecreaseTargetSize of one cluster run one at a time (a lock per
  cluster): a second request waits for the first (within its deadline), then sees the new
  size, so no update is lost. A request whose client gave up while waiting is dropped.
  Scale operations take minutes: configure the autoscaler's ``grpc_timeout`` accordingly
  (:func:`cloud_config`).

The handlers are registered from the service descriptor, so the server does not need the
generated ``_pb2_grpc`` module (the tests use it as the client stub).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, NoReturn

import grpc

from koral_ansible.autoscaler.certs import CertFiles
from koral_ansible.autoscaler.mainthread import MainThreadRunner
from koral_ansible.autoscaler.protos import externalgrpc_pb2 as pb
from koral_ansible.autoscaler.scaler import (
    BadRequest,
    GroupNotFound,
    Scaler,
    SizeLimitError,
)
from koral_ansible.errors import InputError, LockedError, OperationError
from koral_ansible.locks import BusyLock, held_lock

LOG = logging.getLogger("koral.autoscaler")
SERVICE_NAME = "CloudProvider"
#: Label cluster-autoscaler looks for on GPU nodes; koral nodes have no GPUs.
GPU_LABEL = "koral.io/accelerator"
DEFAULT_PORT = 8086
#: cluster-autoscaler's InstanceErrorClass "other" (1 would be "out of resources").
OTHER_ERROR_CLASS = 99

Handler = Callable[[Any, grpc.ServicerContext], Any]


class RpcStatus(Exception):
    """Raised by a handler to answer with this status (turned into ``context.abort``)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _abort(code: grpc.StatusCode, message: str) -> NoReturn:
    raise RpcStatus(code, message)


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status a Scaler error maps to (see the table in :mod:`.scaler`)."""
    if isinstance(exc, GroupNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, BadRequest | InputError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, SizeLimitError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, LockedError):
        return grpc.StatusCode.ABORTED
    if isinstance(exc, OperationError):
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.UNKNOWN


class CloudProviderService:
    """The CloudProvider methods; each takes (request, context) and returns the response."""

    def __init__(self, scaler: Scaler, gpu_label: str = GPU_LABEL) -> None:
        self.scaler = scaler
        self.gpu_label = gpu_label
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # ---- helpers -------------------------------------------------------------------------------
    def _lock(self, cluster: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(cluster, threading.Lock())

    @contextlib.contextmanager
    def _serialized(self, cluster: str, context: grpc.ServicerContext) -> Iterator[None]:
        lock = self._lock(cluster)
        remaining = context.time_remaining()
        if not lock.acquire(timeout=-1 if remaining is None else max(remaining, 0.0)):
            _abort(grpc.StatusCode.ABORTED, f"node group {cluster} is busy with another change")
        try:
            if not context.is_active():
                _abort(grpc.StatusCode.ABORTED, "the client gave up while the request waited")
            yield
        finally:
            lock.release()

    def _group(self, cluster: str) -> pb.NodeGroup:
        size = self.scaler.node_group(cluster)
        return pb.NodeGroup(
            id=cluster,
            minSize=size.min_size,
            maxSize=size.max_size,
            debug=f"koral cluster {cluster}: workers min={size.min_size} max={size.max_size} "
            f"target={size.target}",
        )

    # ---- cloud provider ------------------------------------------------------------------------
    def NodeGroups(
        self, request: pb.NodeGroupsRequest, context: grpc.ServicerContext
    ) -> pb.NodeGroupsResponse:
        groups = []
        for cluster in self.scaler.groups():
            with contextlib.suppress(GroupNotFound):
                groups.append(self._group(cluster))
        return pb.NodeGroupsResponse(nodeGroups=groups)

    def NodeGroupForNode(
        self, request: pb.NodeGroupForNodeRequest, context: grpc.ServicerContext
    ) -> pb.NodeGroupForNodeResponse:
        node = request.node
        cluster = self.scaler.node_for(node.providerID) if node.providerID else None
        if cluster is None and node.name:
            cluster = self.scaler.node_for(node.name)
        if cluster is not None:
            with contextlib.suppress(GroupNotFound):
                return pb.NodeGroupForNodeResponse(nodeGroup=self._group(cluster))
        return pb.NodeGroupForNodeResponse(nodeGroup=pb.NodeGroup())  # id "" = not autoscaled

    def PricingNodePrice(self, request: pb.PricingNodePriceRequest, context: grpc.ServicerContext) -> Any:
        _abort(grpc.StatusCode.UNIMPLEMENTED, "koral has no pricing model")

    def PricingPodPrice(self, request: pb.PricingPodPriceRequest, context: grpc.ServicerContext) -> Any:
        _abort(grpc.StatusCode.UNIMPLEMENTED, "koral has no pricing model")

    def GPULabel(self, request: pb.GPULabelRequest, context: grpc.ServicerContext) -> pb.GPULabelResponse:
        return pb.GPULabelResponse(label=self.gpu_label)

    def GetAvailableGPUTypes(
        self, request: pb.GetAvailableGPUTypesRequest, context: grpc.ServicerContext
    ) -> pb.GetAvailableGPUTypesResponse:
        return pb.GetAvailableGPUTypesResponse()

    def Cleanup(self, request: pb.CleanupRequest, context: grpc.ServicerContext) -> pb.CleanupResponse:
        return pb.CleanupResponse()

    def Refresh(self, request: pb.RefreshRequest, context: grpc.ServicerContext) -> pb.RefreshResponse:
        self.scaler.refresh()
        return pb.RefreshResponse()

    # ---- node group ----------------------------------------------------------------------------
    def NodeGroupTargetSize(
        self, request: pb.NodeGroupTargetSizeRequest, context: grpc.ServicerContext
    ) -> pb.NodeGroupTargetSizeResponse:
        return pb.NodeGroupTargetSizeResponse(targetSize=self.scaler.node_group(request.id).target)

    def NodeGroupIncreaseSize(
        self, request: pb.NodeGroupIncreaseSizeRequest, context: grpc.ServicerContext
    ) -> pb.NodeGroupIncreaseSizeResponse:
        self.scaler.node_group(request.id)  # NOT_FOUND before waiting for the lock
        with self._serialized(request.id, context):
            LOG.info("increase %s by %d", request.id, request.delta)
            self.scaler.increase(request.id, request.delta)
        return pb.NodeGroupIncreaseSizeResponse()

    def NodeGroupDeleteNodes(
        self, request: pb.NodeGroupDeleteNodesRequest, context: grpc.ServicerContext
    ) -> pb.NodeGroupDeleteNodesResponse:
        self.scaler.node_group(request.id)
        with self._serialized(request.id, context):
            by_id = {n.provider_id: n.name for n in self.scaler.nodes(request.id)}
            names = []
            for node in request.nodes:
                name = node.name or by_id.get(node.providerID, "")
                if not name:
                    raise BadRequest(f"node {node.providerID!r} is not in node group {request.id}")
                names.append(name)
            LOG.info("delete from %s: %s", request.id, ", ".join(names))
            self.scaler.delete_nodes(request.id, names)
        return pb.NodeGroupDeleteNodesResponse()

    def NodeGroupDecreaseTargetSize(
        self, request: pb.NodeGroupDecreaseTargetSizeRequest, context: grpc.ServicerContext
    ) -> pb.NodeGroupDecreaseTargetSizeResponse:
        self.scaler.node_group(request.id)
        with self._serialized(request.id, context):
            self.scaler.decrease_target(request.id, request.delta)
        return pb.NodeGroupDecreaseTargetSizeResponse()

    def NodeGroupNodes(
        self, request: pb.NodeGroupNodesRequest, context: grpc.ServicerContext
    ) -> pb.NodeGroupNodesResponse:
        instances = []
        for node in self.scaler.nodes(request.id):
            error = (
                pb.InstanceErrorInfo(
                    errorCode="koral-node-failed",
                    errorMessage=node.error,
                    instanceErrorClass=OTHER_ERROR_CLASS,
                )
                if node.error
                else pb.InstanceErrorInfo()
            )
            status = pb.InstanceStatus(instanceState=int(node.state), errorInfo=error)  # type: ignore[arg-type]
            instances.append(pb.Instance(id=node.provider_id, status=status))
        return pb.NodeGroupNodesResponse(instances=instances)

    def NodeGroupTemplateNodeInfo(
        self, request: pb.NodeGroupTemplateNodeInfoRequest, context: grpc.ServicerContext
    ) -> Any:
        self.scaler.node_group(request.id)
        _abort(grpc.StatusCode.UNIMPLEMENTED, "templates come from the group's existing nodes")

    def NodeGroupGetOptions(
        self, request: pb.NodeGroupAutoscalingOptionsRequest, context: grpc.ServicerContext
    ) -> Any:
        self.scaler.node_group(request.id)
        _abort(grpc.StatusCode.UNIMPLEMENTED, "the autoscaler's defaults apply")


def _guarded(name: str, fn: Handler) -> Handler:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(request, context)
        except RpcStatus as status:
            context.abort(status.code, status.message)
        except (GroupNotFound, BadRequest, SizeLimitError, InputError, LockedError, OperationError) as exc:
            code = status_for(exc)
            LOG.info("%s: %s: %s", name, code.name, exc)
            context.abort(code, str(exc))
        except Exception as exc:
            LOG.exception("%s failed", name)
            context.abort(grpc.StatusCode.UNKNOWN, f"{name} failed: {type(exc).__name__}")

    return handle


def generic_handler(service: CloudProviderService) -> grpc.GenericRpcHandler:
    """Every method of the CloudProvider service, bound to ``service``."""
    desc = pb.DESCRIPTOR.services_by_name[SERVICE_NAME]
    handlers = {}
    for method in desc.methods:
        request_type = getattr(pb, method.input_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _guarded(method.name, getattr(service, method.name)),
            request_deserializer=request_type.FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )
    return grpc.method_handlers_generic_handler(desc.full_name, handlers)


def server_credentials(certs: CertFiles) -> grpc.ServerCredentials:
    """TLS with the cluster's server certificate; client certificates required and verified."""
    return grpc.ssl_server_credentials(
        [(certs.server_key.read_bytes(), certs.server_cert.read_bytes())],
        root_certificates=certs.ca_cert.read_bytes(),
        require_client_auth=True,
    )


def build_server(
    scaler: Scaler, certs: CertFiles, listen: str, max_workers: int = 8
) -> tuple[grpc.Server, int]:
    """A started-not-yet gRPC server on ``listen`` (HOST:PORT; port 0 picks one) and its port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="koral-autoscaler"),
        handlers=[generic_handler(CloudProviderService(scaler))],
        options=[("grpc.so_reuseport", 0)],  # a second server on the same port must fail
    )
    try:
        port = server.add_secure_port(listen, server_credentials(certs))
    except RuntimeError as exc:
        raise OperationError(f"cannot listen on {listen}: {exc}") from None
    if port == 0:
        raise OperationError(f"cannot listen on {listen}")
    return server, port


def serve(
    scaler: Scaler,
    certs: CertFiles,
    listen: str,
    stop: threading.Event | None = None,
    runner: MainThreadRunner | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when called on the main thread).

    With a ``runner``, this thread executes the jobs the runner's wrapped callables queue (the
    scale operations), so call it from the main thread.
    """
    stop = stop or threading.Event()
    server, port = build_server(scaler, certs, listen)
    server.start()
    restore: list[tuple[signal.Signals, Any]] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            restore.append((sig, signal.signal(sig, lambda *_: stop.set())))
    try:
        if on_ready is not None:
            on_ready(port)
        if runner is not None:
            runner.run(stop)
        else:
            stop.wait()
    finally:
        server.stop(grace=5).wait()
        for sig, old in restore:
            signal.signal(sig, old)


@contextlib.contextmanager
def single_instance(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock while serving: one service per cluster, so the per-cluster request
    lock of :class:`CloudProviderService` really serializes every change the autoscaler asks for."""
    try:
        with held_lock(path, f"pid {os.getpid()}"):
            yield
    except BusyLock as busy:
        raise OperationError(
            f"an autoscaler service already serves this cluster ({busy.holder or 'another process'}); "
            "stop it first"
        ) from None


def cloud_config(
    address: str,
    cert_dir: str = "/etc/koral-autoscaler",
    grpc_timeout: str = "30m",
) -> str:
    """cluster-autoscaler's ``--cloud-config`` for the externalgrpc provider (YAML).

    ``cert_dir`` is where the autoscaler's pod mounts ``ca.crt``, ``client.crt`` and
    ``client.key`` (a Secret). ``address`` must be HOST:PORT with HOST in the server
    certificate (see :func:`koral_ansible.autoscaler.certs.ensure_certs`). ``grpc_timeout``
    covers a whole scale operation (IncreaseSize returns when the nodes are recorded).
    """
    return (
        f"address: {address!r}\n"
        f"cacert: {cert_dir}/ca.crt\n"
        f"cert: {cert_dir}/client.crt\n"
        f"key: {cert_dir}/client.key\n"
        f"grpc_timeout: {grpc_timeout}\n"
    )
