"""Pure parts of the local provider: nft and haproxy rendering, subnet allocation, node arguments."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koral_ansible.errors import InputError, OperationError
from koral_ansible.paths import Paths
from koral_ansible.providers.base import ProviderContext
from koral_ansible.providers.local import image, lb, network, nft, nodes
from koral_ansible.providers.local.provider import LocalProvider
from koral_ansible.spec import validate_spec

PUB = IPv4Address("10.213.7.1")
SUBNET = IPv4Network("10.213.7.0/24")
FWD = [nft.Forward(2223, IPv4Address("10.213.7.12")), nft.Forward(2222, IPv4Address("10.213.7.11"))]


def test_table_name_is_nft_safe() -> None:
    assert nft.table_name("my-prod-1") == "koral_my_prod_1"


def test_nft_render_forwards_filter_and_hairpin() -> None:
    text = nft.render("demo-a", PUB, SUBNET, FWD, ["203.0.113.0/24"])
    lines = [ln.strip() for ln in text.splitlines()]
    # atomic replace: create-if-missing, delete, recreate in one script
    assert lines[1:4] == [
        "table ip koral_demo_a {}",
        "delete table ip koral_demo_a",
        "table ip koral_demo_a {",
    ]
    dnat = [ln for ln in lines if "dnat to" in ln]
    assert (
        dnat
        == [
            "ip daddr 10.213.7.1 tcp dport 2222 dnat to 10.213.7.11:22",
            "ip daddr 10.213.7.1 tcp dport 2223 dnat to 10.213.7.12:22",
        ]
        * 2
    )  # prerouting and output
    assert "elements = { 10.213.7.0/24, 203.0.113.0/24 }" in lines
    assert "ip daddr 10.213.7.1 tcp dport { 2222, 2223, 6443 } ip saddr != @allowed_sources drop" in lines
    assert "ip saddr 10.213.7.0/24 ip daddr 10.213.7.0/24 ct status dnat masquerade" in lines
    assert "type filter hook prerouting priority -150; policy accept;" in lines


def test_nft_render_is_deterministic() -> None:
    a = nft.render("c", PUB, SUBNET, FWD, ["0.0.0.0/0"])
    b = nft.render("c", PUB, SUBNET, list(reversed(FWD)), ["0.0.0.0/0"])
    assert a == b


def test_allowed_networks_merge_overlaps() -> None:
    # nft interval sets refuse overlapping elements: everything is collapsed first
    assert nft.allowed_networks(["0.0.0.0/0"], SUBNET) == [IPv4Network("0.0.0.0/0")]
    assert nft.allowed_networks(["10.213.7.5/32", "10.0.0.0/8"], SUBNET) == [IPv4Network("10.0.0.0/8")]


def test_nft_render_without_nodes_still_guards_api() -> None:
    text = nft.render("c", PUB, SUBNET, [], ["192.0.2.0/24"])
    assert "tcp dport { 6443 }" in text
    assert "dnat to" not in text


def test_nft_delete_is_idempotent_script() -> None:
    assert nft.render_delete("a-b") == "table ip koral_a_b {}\ndelete table ip koral_a_b\n"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nft")
def test_nft_render_is_accepted_by_nft() -> None:
    text = nft.render("unit-check", PUB, SUBNET, FWD, ["203.0.113.0/24", "198.51.100.7"])
    proc = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_haproxy_render() -> None:
    backends = [lb.Backend("c-control-2", IPv4Address("10.213.7.12")), lb.Backend("c-control-1", PUB + 10)]
    text = lb.render("my-c", PUB, backends)
    lines = [ln.strip() for ln in text.splitlines()]
    assert "mode tcp" in lines
    assert "bind 10.213.7.1:6443 transparent" in lines
    assert "balance roundrobin" in lines
    assert "option tcp-check" in lines
    servers = [ln for ln in lines if ln.startswith("server ")]
    assert servers == [
        "server c-control-1 10.213.7.11:6443 check inter 1s",
        "server c-control-2 10.213.7.12:6443 check inter 1s",
    ]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")
def test_haproxy_render_is_valid(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(lb.render("c", IPv4Address("127.0.0.1"), [lb.Backend("c-control-1", PUB + 10)]))
    proc = subprocess.run(
        ["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_allocate_first_free_subnet() -> None:
    used = [IPv4Network("10.213.0.0/24"), IPv4Network("10.213.1.128/25"), IPv4Network("192.168.0.0/16")]
    assert network.allocate_subnet(used) == IPv4Network("10.213.2.0/24")
    assert network.allocate_subnet([]) == IPv4Network("10.213.0.0/24")


def test_allocate_skips_a_route_covering_the_pool_start() -> None:
    assert network.allocate_subnet([IPv4Network("10.213.0.0/20")]) == IPv4Network("10.213.16.0/24")


def test_allocate_fails_when_pool_is_full() -> None:
    with pytest.raises(OperationError, match="no free"):
        network.allocate_subnet([IPv4Network("10.0.0.0/8")])


@given(st.sets(st.integers(min_value=0, max_value=255), max_size=60))
def test_allocation_never_overlaps(taken: set[int]) -> None:
    used = [IPv4Network(f"10.213.{i}.0/24") for i in taken]
    got = network.allocate_subnet(used)
    assert got.subnet_of(network.NODE_POOL)
    assert not any(got.overlaps(u) for u in used)


def test_node_addresses() -> None:
    net = network.NodeNet("koral-x", SUBNET)
    assert net.gateway == PUB
    assert net.node_ip(0) == IPv4Address("10.213.7.11")
    assert net.node_ip(2) == IPv4Address("10.213.7.13")
    with pytest.raises(OperationError):
        net.node_ip(300)


def test_node_run_args(tmp_path: Path) -> None:
    spec = nodes.NodeSpec("c", "c-control-1", IPv4Address("10.213.7.11"), "koral-c", "img:1", 2, 2048)
    dirs = {"containerd": tmp_path / "cd", "kubelet": tmp_path / "kl"}
    args = nodes.run_args(spec, "home1", dirs, tmp_path / "ak", limits=True)
    joined = " ".join(args)
    assert "--name koral-c-control-1 --hostname c-control-1" in joined
    assert "--label koral.cluster=c --label koral.home=home1 --label koral.node=c-control-1" in joined
    assert "--network koral-c --ip 10.213.7.11 --privileged --systemd=always" in joined
    assert f"{tmp_path / 'cd'}:/var/lib/containerd" in args
    assert f"{tmp_path / 'ak'}:/root/.ssh/authorized_keys:ro" in args
    assert args[-2:] == ["img:1", "/sbin/init"]
    assert "--cpus" in args and "2048m" in args
    assert "--cpus" not in nodes.run_args(spec, "home1", dirs, tmp_path / "ak", limits=False)


def test_image_ref_is_stable_and_covers_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    ref = image.image_ref()
    assert ref.startswith("localhost/koral-node:") and ref == image.image_ref()
    monkeypatch.setattr(image, "PACKAGES", (*image.PACKAGES, "vim"))
    assert image.image_ref() != ref


def _provider(tmp_path: Path) -> LocalProvider:
    from koral_ansible.state import StateStore

    paths = Paths.resolve(home=tmp_path / "home", cache=tmp_path / "cache")
    ctx = ProviderContext(
        store=StateStore(paths), paths=paths, cluster="c", ssh_public_key="ssh-ed25519 AAAA x"
    )
    return LocalProvider(ctx)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"pod_cidr": "10.213.0.0/16"}, "pod_cidr"),
        ({"service_cidr": "10.208.0.0/12"}, "service_cidr"),
        ({"external_lb_ip": "192.0.2.9"}, "external_lb_ip"),
    ],
)
def test_validate_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, str], field: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)  # no podman look-ups in a unit test
    spec = validate_spec({"name": "c", **changes})
    with pytest.raises(InputError) as exc:
        _provider(tmp_path).validate(spec)
    assert exc.value.field == field


def test_validate_accepts_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    _provider(tmp_path).validate(validate_spec({"name": "c", "size": 3}))


def _loopback_server(payload: bytes) -> tuple[int, threading.Thread, socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                conn.sendall(payload)
                time.sleep(0.05)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv.getsockname()[1], thread, srv


def test_ssh_banner_wait() -> None:
    port, _, srv = _loopback_server(b"SSH-2.0-OpenSSH_test\r\n")
    try:
        assert nodes.ssh_banner("127.0.0.1", port)
        nodes.wait_ssh([("n1", "127.0.0.1", port)], timeout=5)
    finally:
        srv.close()


def test_ssh_wait_names_the_silent_node() -> None:
    port, _, srv = _loopback_server(b"HTTP/1.0 400 nope\r\n")
    try:
        assert not nodes.ssh_banner("127.0.0.1", port)
        with pytest.raises(OperationError, match=r"c-node-7 \(127\.0\.0\.1:"):
            nodes.wait_ssh([("c-node-7", "127.0.0.1", port)], timeout=0.5)
    finally:
        srv.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("haproxy") is None, reason="needs root and haproxy")
def test_haproxy_start_reload_stop(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    directory = tmp_path / "lb"
    backend = [lb.Backend("c-control-1", IPv4Address("127.0.0.1"), 9)]
    try:
        assert lb.ensure(directory, lb.render("c", IPv4Address("127.0.0.1"), backend, api_port=port))
        assert lb.running(directory)
        first = lb.find_processes(directory / lb.CONFIG_NAME)
        assert len(first) == 1
        assert not lb.ensure(directory, lb.render("c", IPv4Address("127.0.0.1"), backend, api_port=port))
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the frontend listens
        assert lb.ensure(directory, lb.render("c", IPv4Address("127.0.0.1"), [], api_port=port))  # reload
        deadline = time.monotonic() + 5
        while first[0] in lb.find_processes(directory / lb.CONFIG_NAME) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lb.running(directory)
        assert first[0] not in lb.find_processes(directory / lb.CONFIG_NAME)
    finally:
        lb.stop(directory)
    assert lb.find_processes(directory / lb.CONFIG_NAME) == []
    assert not lb.running(directory)
