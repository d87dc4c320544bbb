"""Autoscaler pieces: settings and the CLI, certificates, the protocol's wire facts, stubs drift,
the main-thread runner and ``serve`` (loopback only)."""

from __future__ import annotations

import json
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from koral_ansible import operations
from koral_ansible.autoscaler import _gen, settings
from koral_ansible.autoscaler.certs import ensure_certs
from koral_ansible.autoscaler.mainthread import MainThreadRunner
from koral_ansible.autoscaler.protos import externalgrpc_pb2 as pb
from koral_ansible.autoscaler.protos import externalgrpc_pb2_grpc as pb_grpc
from koral_ansible.autoscaler.server import cloud_config, serve
from koral_ansible.autoscaler.state_scaler import StateScaler
from koral_ansible.cli import autoscale as cli_autoscale
from koral_ansible.cli.common import run_cli
from koral_ansible.errors import InputError, OperationError
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec
from koral_ansible.state import NodeRecord, StateStore


# ---- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    h = tmp_path / "home"
    monkeypatch.setenv("KORAL_HOME", str(h))
    monkeypatch.delenv("KORAL_CLUSTER_MAX_SIZE", raising=False)
    monkeypatch.setattr(cli_autoscale, "ON_CHANGE", [])  # no Ansible run against the fake cluster
    paths = Paths.resolve(h, tmp_path / "cache")
    store = StateStore(paths)
    store.add_cluster(validate_spec({"name": "demo", "size": 2}))
    store.set_endpoint("demo", {"public_ip": "10.1.0.1"})
    store.upsert_node("demo", NodeRecord("demo-control-1", "control", 0, state="Running"))
    for i in (1, 2):
        store.upsert_node("demo", NodeRecord(f"demo-node-{i}", "worker", i, state="Running"))
    store.close()
    yield paths


@click.group()
@click.pass_context
def group(ctx: click.Context) -> None:
    ctx.ensure_object(dict)
    ctx.obj.update(home=None, verbose=False, quiet=True)


group.add_command(cli_autoscale.autoscale)
group.add_command(cli_autoscale.autoscaler)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(group, args)
    out, err = capsys.readouterr()
    return code, out, err


# ---- settings and `autoscale` -----------------------------------------------------------------------
def test_validate_bounds() -> None:
    assert settings.validate_bounds("1", "5", limit=10) == (1, 5)
    assert settings.validate_bounds(3, 3, limit=3) == (3, 3)
    for low, high, field in [
        ("0", "5", "--min"),
        ("x", "5", "--min"),
        (None, "5", "--min"),
        ("1", "11", "--max"),
        ("1", None, "--max"),
        ("5", "4", "--max"),
        ("-1", "4", "--min"),
    ]:
        with pytest.raises(InputError) as err:
            settings.validate_bounds(low, high, limit=10)
        assert err.value.field == field and err.value.exit_code == 2


def test_enable_disable_roundtrip_and_refusal(home: Paths) -> None:
    assert settings.load_settings(home, "demo").enabled is False
    assert settings.manual_scale_refusal(home, "demo") is None
    s = settings.enable(home, "demo", 1, 4)
    assert (s.enabled, s.min_size, s.max_size) == (True, 1, 4)
    path = settings.settings_path(home, "demo")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.load_settings(home, "demo") == s
    refusal = settings.manual_scale_refusal(home, "demo")
    assert refusal is not None and "autoscale demo --disable" in refusal.message and refusal.exit_code == 2
    off = settings.disable(home, "demo")
    assert (off.enabled, off.min_size, off.max_size) == (False, 1, 4)
    assert settings.manual_scale_refusal(home, "demo") is None


def test_cli_enable_show_disable(home: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["autoscale", "demo", "--enable", "--min", "1", "--max", "5", "-o", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert (data["enabled"], data["min_size"], data["max_size"], data["workers"]) == (True, 1, 5, 2)
    assert "workers 1..5" in err
    code, out, _ = cli(["autoscale", "demo", "-o", "json"], capsys)
    assert code == 0 and json.loads(out)["enabled"] is True
    code, out, err = cli(["autoscale", "demo", "--disable", "-o", "json"], capsys)
    assert code == 0 and json.loads(out)["enabled"] is False and "scale' works again" in err
    store = StateStore(home)
    assert [e.message for e in store.events("demo") if e.operation == "autoscale"] == [
        "workers 1..5",
        "disabled",
    ]
    store.close()


def test_cli_notes_size_outside_bounds(home: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["autoscale", "demo", "--enable", "--min", "3", "--max", "5"], capsys)
    assert code == 0 and "has 2 workers, outside 3..5" in err


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["autoscale", "demo", "--enable", "--min", "0", "--max", "3"], "--min"),
        (["autoscale", "demo", "--enable", "--min", "1", "--max", "11"], "--max"),
        (["autoscale", "demo", "--enable", "--min", "4", "--max", "3"], "--max"),
        (["autoscale", "demo", "--enable", "--max", "3"], "--min"),
        (["autoscale", "demo", "--enable", "--min", "two", "--max", "3"], "--min"),
        (["autoscale", "demo", "--disable", "--min", "1"], "--min"),
        (["autoscale", "demo", "--min", "1", "--max", "3"], "--min"),
        (["autoscale", "demo", "--enable", "--disable"], "--enable/--disable"),
        (["autoscale", "ghost", "--enable", "--min", "1", "--max", "3"], "NAME"),
        (["autoscaler", "serve", "--cluster", "demo", "--listen", "127.0.0.1"], "--listen"),
        (["autoscaler", "serve", "--cluster", "demo", "--listen", "127.0.0.1:70000"], "--listen"),
        (["autoscaler", "serve", "--cluster", "ghost", "--listen", "127.0.0.1:1"], "NAME"),
    ],
)
def test_cli_bad_input_exit_2_nothing_changed(
    home: Paths, capsys: pytest.CaptureFixture[str], args: list[str], field: str
) -> None:
    code, out, err = cli(args, capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {field}:") and err.count("\n") == 1, err
    assert not settings.settings_path(home, "demo").exists()
    assert not (home.cluster_dir("demo") / "autoscaler").exists()


def test_cli_max_follows_max_cluster_size(
    home: Paths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KORAL_CLUSTER_MAX_SIZE", "20")
    code, _, err = cli(["autoscale", "demo", "--enable", "--min", "2", "--max", "15"], capsys)
    assert code == 0, err
    monkeypatch.setenv("KORAL_CLUSTER_MAX_SIZE", "3")
    code, _, err = cli(["autoscale", "demo", "--enable", "--min", "1", "--max", "4"], capsys)
    assert code == 2 and "--max" in err and "1 to 3" in err
    assert settings.load_settings(home, "demo").max_size == 15


def test_cli_max_follows_the_root_max_size_option(home: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    @click.group()
    @click.option("--max-size")
    @click.pass_context
    def with_max(ctx: click.Context, max_size: str | None) -> None:
        ctx.ensure_object(dict)
        ctx.obj.update(home=None, verbose=False, quiet=True, max_size=max_size)

    with_max.add_command(cli_autoscale.autoscale)
    assert (
        run_cli(with_max, ["--max-size", "12", "autoscale", "demo", "--enable", "--min", "1", "--max", "12"])
        == 0
    )
    code = run_cli(with_max, ["--max-size", "2", "autoscale", "demo", "--enable", "--min", "1", "--max", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "error: --max: must be an integer from 1 to 2" in err
    assert settings.load_settings(home, "demo").max_size == 12


def test_cli_failed_hook_restores_the_record(
    home: Paths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, bool]] = []

    def deploy(_env: object, name: str, s: settings.AutoscaleSettings) -> None:
        seen.append((name, s.enabled))
        if s.max_size == 9:
            raise OperationError("deploying cluster-autoscaler failed")

    monkeypatch.setattr(cli_autoscale, "ON_CHANGE", [deploy])
    assert cli(["autoscale", "demo", "--enable", "--min", "1", "--max", "4"], capsys)[0] == 0
    code, _, err = cli(["autoscale", "demo", "--enable", "--min", "1", "--max", "9"], capsys)
    assert code == 1 and "deploying cluster-autoscaler failed" in err
    s = settings.load_settings(home, "demo")
    assert (s.enabled, s.max_size) == (True, 4)
    assert seen == [("demo", True), ("demo", True)]


def test_cli_help(home: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["autoscale", "--help"], ["autoscaler", "--help"], ["autoscaler", "serve", "--help"]):
        code, out, _ = cli(args, capsys)
        assert code == 0 and "Usage:" in out


def test_cli_serve_without_scale_operations_fails_cleanly(
    home: Paths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(operations, "scale", raising=False)
    code, _, err = cli(["autoscaler", "serve", "--cluster", "demo", "--listen", "127.0.0.1:18086"], capsys)
    assert code == 1 and "scale/remove-node operations" in err
    assert not (home.cluster_dir("demo") / "autoscaler").exists()


# ---- certificates -----------------------------------------------------------------------------------
def _sans(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def test_certs_are_private_idempotent_and_follow_hosts(home: Paths) -> None:
    files = ensure_certs(home, "demo")
    assert stat.S_IMODE(files.dir.stat().st_mode) == 0o700
    every = [
        files.ca_cert,
        files.ca_key,
        files.server_cert,
        files.server_key,
        files.client_cert,
        files.client_key,
    ]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in every)
    before = {p: p.read_bytes() for p in every}
    ensure_certs(home, "demo")
    assert {p: p.read_bytes() for p in every} == before
    assert sorted(_sans(files.server_cert)) == ["127.0.0.1", "localhost"]
    ensure_certs(home, "demo", ["10.1.0.11", "autoscaler.demo"])
    assert sorted(_sans(files.server_cert)) == ["10.1.0.11", "127.0.0.1", "autoscaler.demo", "localhost"]
    assert files.ca_cert.read_bytes() == before[files.ca_cert]
    assert files.client_cert.read_bytes() == before[files.client_cert]
    client = x509.load_pem_x509_certificate(files.client_cert.read_bytes())
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_cloud_config_points_at_client_material() -> None:
    text = cloud_config("10.1.0.11:8086")
    assert "address: '10.1.0.11:8086'" in text and "cacert: /etc/koral-autoscaler/ca.crt" in text
    assert "cert: /etc/koral-autoscaler/client.crt" in text and "grpc_timeout: 30m" in text


# ---- protocol facts ---------------------------------------------------------------------------------
def test_wire_names_and_field_numbers() -> None:
    service = pb.DESCRIPTOR.services_by_name["CloudProvider"]
    assert service.full_name == "clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider"
    assert {m.name for m in service.methods} == {
        "NodeGroups", "NodeGroupForNode", "PricingNodePrice", "PricingPodPrice", "GPULabel",
        "GetAvailableGPUTypes", "Cleanup", "Refresh", "NodeGroupTargetSize", "NodeGroupIncreaseSize",
        "NodeGroupDeleteNodes", "NodeGroupDecreaseTargetSize", "NodeGroupNodes",
        "NodeGroupTemplateNodeInfo", "NodeGroupGetOptions",
    }  # fmt: skip

    def fields(message: str) -> dict[str, int]:
        return {f.name: f.number for f in pb.DESCRIPTOR.message_types_by_name[message].fields}

    assert fields("NodeGroup") == {"id": 1, "minSize": 2, "maxSize": 3, "debug": 4}
    assert fields("ExternalGrpcNode") == {"providerID": 1, "name": 2, "labels": 3, "annotations": 4}
    assert fields("NodeGroupIncreaseSizeRequest") == {"delta": 1, "id": 2}
    assert fields("NodeGroupDeleteNodesRequest") == {"nodes": 1, "id": 2}
    assert fields("NodeGroupDecreaseTargetSizeRequest") == {"delta": 1, "id": 2}
    assert fields("Instance") == {"id": 1, "status": 2}
    assert fields("InstanceStatus") == {"instanceState": 1, "errorInfo": 2}
    assert fields("InstanceErrorInfo") == {"errorCode": 1, "errorMessage": 2, "instanceErrorClass": 3}
    assert fields("NodeGroupTemplateNodeInfoResponse") == {
        "nodeInfo": 1,
        "nodeBytes": 2,
        "resourceSliceBytes": 3,
    }
    states = pb.InstanceStatus.InstanceState
    names = ("unspecified", "instanceRunning", "instanceCreating", "instanceDeleting")
    assert [states.Value(n) for n in names] == [0, 1, 2, 3]


def test_kubernetes_types_decode_as_the_autoscaler_encodes_them() -> None:
    # NodeGroupAutoscalingOptions.scaleDownUnneededTime (3) = meta.v1.Duration{duration (1) = 600s in ns}
    ns = 600_000_000_000
    varint = bytearray()
    value = ns
    while True:
        byte, value = value & 0x7F, value >> 7
        varint.append(byte | (0x80 if value else 0))
        if not value:
            break
    inner = b"\x08" + bytes(varint)
    wire = b"\x1a" + bytes([len(inner)]) + inner
    opts = pb.NodeGroupAutoscalingOptions.FromString(wire)
    assert opts.scaleDownUnneededTime.duration == ns
    # PricingPodPriceRequest.pod (1): an embedded v1.Pod message arrives as its bytes
    pod = b"\n\x05\n\x03web"  # ObjectMeta{name: "web"} inside a Pod
    req = pb.PricingPodPriceRequest.FromString(b"\x0a" + bytes([len(pod)]) + pod)
    assert req.pod == pod


def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    for path in _gen.generate(tmp_path):
        committed = _gen.PROTO.parent / path.name
        assert path.read_bytes() == committed.read_bytes(), (
            f"{committed.name} is stale: run python -m koral_ansible.autoscaler._gen"
        )


# ---- main-thread runner and serve() -----------------------------------------------------------------
def test_runner_runs_jobs_on_its_thread_and_propagates_errors() -> None:
    runner = MainThreadRunner()
    stop = threading.Event()
    seen: list[str] = []

    def job(x: int) -> int:
        seen.append(threading.current_thread().name)
        if x < 0:
            raise OperationError("negative")
        return x * 2

    wrapped = runner.wrap(job)
    loop = threading.Thread(target=runner.run, args=(stop,), name="runner")
    loop.start()
    try:
        results: list[int] = []
        workers = [threading.Thread(target=lambda: results.append(wrapped(21))) for _ in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert results == [42, 42, 42] and seen == ["runner"] * 3
        with pytest.raises(OperationError, match="negative"):
            wrapped(-1)
    finally:
        stop.set()
        loop.join()
    with pytest.raises(OperationError, match="stopping"):
        wrapped(1)


def test_serve_runs_scale_operations_on_the_serving_thread(home: Paths) -> None:
    settings.enable(home, "demo", 1, 4)
    certs = ensure_certs(home, "demo")
    threads: list[str] = []

    def scale_to(cluster: str, size: int) -> None:
        threads.append(threading.current_thread().name)
        store = StateStore(home)
        store.upsert_node(cluster, NodeRecord(f"{cluster}-node-{size}", "worker", size, state="Running"))
        store.close()

    runner = MainThreadRunner()
    scaler = StateScaler(home, runner.wrap(scale_to), runner.wrap(lambda c, n: None), clusters=["demo"])
    stop = threading.Event()
    ports: list[int] = []
    ready = threading.Event()

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    server = threading.Thread(
        target=serve,
        args=(scaler, certs, "127.0.0.1:0"),
        kwargs={"stop": stop, "runner": runner, "on_ready": on_ready},
        name="serving",
    )
    server.start()
    try:
        assert ready.wait(10)
        creds = grpc.ssl_channel_credentials(
            certs.ca_cert.read_bytes(), certs.client_key.read_bytes(), certs.client_cert.read_bytes()
        )
        with grpc.secure_channel(f"localhost:{ports[0]}", creds) as channel:
            stub = pb_grpc.CloudProviderStub(channel)
            stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="demo", delta=1), timeout=10)
            size = stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="demo"), timeout=10).targetSize
        assert threads == ["serving"] and size == 3
    finally:
        stop.set()
        server.join(10)
    assert not server.is_alive()


def test_cli_serve_wires_certificates_scaler_and_operations(
    home: Paths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from koral_ansible.autoscaler import server as server_module

    settings.enable(home, "demo", 1, 4)
    calls: list[tuple[str, str, int | str, str]] = []

    def scale_to(cluster: str, size: int) -> None:
        calls.append(("scale_to", cluster, size, threading.current_thread().name))

    def remove_node(cluster: str, node: str) -> None:
        calls.append(("remove_node", cluster, node, threading.current_thread().name))
        store = StateStore(home)
        store.remove_node(cluster, node)
        store.close()

    monkeypatch.setattr(cli_autoscale, "scale_operations", lambda _home: (scale_to, remove_node))
    stop = threading.Event()
    ports: list[int] = []
    real_serve = server_module.serve

    def serve_until_stopped(*args: object, **kwargs: object) -> None:
        kwargs["stop"] = stop
        ready = kwargs["on_ready"]
        assert callable(ready)

        def on_ready(port: int) -> None:
            ready(port)
            ports.append(port)

        kwargs["on_ready"] = on_ready
        real_serve(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(server_module, "serve", serve_until_stopped)
    codes: list[int] = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    thread = threading.Thread(
        target=lambda: codes.append(
            run_cli(
                group,
                [
                    "autoscaler",
                    "serve",
                    "--cluster",
                    "demo",
                    "--listen",
                    f"127.0.0.1:{free}",
                    "--san",
                    "ca.demo",
                ],
            )
        ),
        name="cli-serve",
    )
    thread.start()
    try:
        for _ in range(100):
            if ports:
                break
            threading.Event().wait(0.1)
        assert ports == [free]
        assert "serving cluster-autoscaler's externalgrpc provider for demo" in capsys.readouterr().err
        files = ensure_certs(home, "demo")
        assert "ca.demo" in _sans(files.server_cert) and "127.0.0.1" in _sans(files.server_cert)
        creds = grpc.ssl_channel_credentials(
            files.ca_cert.read_bytes(), files.client_key.read_bytes(), files.client_cert.read_bytes()
        )
        with grpc.secure_channel(f"127.0.0.1:{free}", creds) as channel:
            stub = pb_grpc.CloudProviderStub(channel)
            groups = stub.NodeGroups(pb.NodeGroupsRequest(), timeout=10).nodeGroups
            stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="demo", delta=2), timeout=10)
            stub.NodeGroupDeleteNodes(
                pb.NodeGroupDeleteNodesRequest(id="demo", nodes=[pb.ExternalGrpcNode(name="demo-node-2")]),
                timeout=10,
            )
        assert [(g.id, g.minSize, g.maxSize) for g in groups] == [("demo", 1, 4)]
        capsys.readouterr()
        second = run_cli(group, ["autoscaler", "serve", "--cluster", "demo", "--listen", "127.0.0.1:1"])
        assert second == 1 and "already serves this cluster (pid" in capsys.readouterr().err
        assert calls == [
            ("scale_to", "demo", 4, "cli-serve"),
            ("remove_node", "demo", "demo-node-2", "cli-serve"),
        ]
    finally:
        stop.set()
        thread.join(10)
    assert codes == [0]


def test_runner_stops_when_a_job_is_interrupted() -> None:
    from koral_ansible.operations.context import Interrupted

    runner = MainThreadRunner()
    stop = threading.Event()

    def interrupted() -> None:
        raise Interrupted("interrupted by signal SIGTERM")

    loop = threading.Thread(target=runner.run, args=(stop,))
    loop.start()
    with pytest.raises(Interrupted):
        runner.wrap(interrupted)()
    loop.join(5)
    assert stop.is_set() and not loop.is_alive()


def test_systemd_unit() -> None:
    from koral_ansible.autoscaler.unit import systemd_unit, unit_name

    text = systemd_unit("demo", "10.1.0.1:8086", sans=["10.1.0.1"], home="/var/lib/koral")
    assert unit_name("demo") == "koral-autoscaler-demo.service"
    serve = "autoscaler serve --cluster demo --listen 10.1.0.1:8086 --san 10.1.0.1"
    assert f"ExecStart=/usr/local/bin/koral-play {serve}\n" in text
    assert 'Environment="KORAL_HOME=/var/lib/koral"' in text and "UMask=0077" in text
