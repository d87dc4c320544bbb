"""What real kubeadm, kubelet and containerd need on a node, and the doubles refuse without it.

Executables on PATH (kubeadm InPathCheck), images in containerd's k8s.io namespace (kubeadm
ImagePull preflight, the kubelet's sandbox image), flags kubeadm refuses to mix with --config,
upgrade version policies, and the kubelet's network readiness from the CNI config that the network
DaemonSet pod writes. containerd is played by a fake `ctr` on PATH (tests/unit/test_doubles.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.doubles import write_doubles
from tests.unit.test_doubles import _ctr_db, _env, _run, fake_ctr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import k8s_double as kd

V2_CONFIG = """version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.local:5000/pause:3.10"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
"""
V3_CONFIG = """version = 3
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "registry.k8s.io/pause:3.10.1"
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
  conf_dir = "/etc/cni/net.d"
"""


@pytest.fixture()
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node root for the double's functions: fake ctr on PATH, no other tool."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc" / "containerd").mkdir(parents=True)
    bindir = fake_ctr(tmp_path, [])
    monkeypatch.setenv("PATH", f"{bindir}:{Path(sys.executable).parent}")
    monkeypatch.setenv("FAKE_CTR_DB", str(tmp_path / "ctr.json"))
    monkeypatch.setattr(kd, "ROOTFS", str(rootfs))
    return tmp_path


def _set_images(root: Path, images: list[str], pullable: list[str] | None = None) -> None:
    db = _ctr_db(root)
    db.update(images=images, pullable=pullable or [])
    (root / "ctr.json").write_text(json.dumps(db))


# --- kubeadm exec preflight (checks_linux.go addExecChecks) -------------------------------------


@pytest.mark.parametrize(
    ("kubeadm", "k8s", "errors", "warnings"),
    [
        ("1.30.2", "1.30.2", ["crictl", "conntrack", "ip", "iptables", "mount", "nsenter"], 5),
        ("1.31.4", "1.31.4", ["conntrack", "ip", "iptables", "mount", "nsenter"], 6),
        ("1.32.0", "1.31.4", ["conntrack", "ip", "iptables", "mount", "nsenter"], 5),
        ("1.32.0", "1.32.0", ["ip", "iptables", "mount", "nsenter"], 5),
        ("1.32.0", "", ["ip", "iptables", "mount", "nsenter"], 5),
    ],
)
def test_exec_checks_follow_the_kubeadm_version(
    node: Path, kubeadm: str, k8s: str, errors: list[str], warnings: int
) -> None:
    checks = kd.exec_checks(kubeadm, k8s)
    assert [c[0].removeprefix("FileExisting-") for c in checks if not c[3]] == errors
    assert len([c for c in checks if c[3]]) == warnings
    with pytest.raises(kd.DoubleError) as exc:
        kd._preflight([], checks)
    for exe in errors:
        assert f"\t[ERROR FileExisting-{exe}]: {exe} not found in system path" in str(exc.value)
    assert "[ERROR FileExisting-socat]" not in str(exc.value)
    kd._preflight(["all"], checks)  # ignorePreflightErrors downgrades them to warnings


def test_exec_checks_pass_when_the_tools_are_there(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = node / "tools"
    tools.mkdir()
    for exe in ("conntrack", "ip", "iptables", "mount", "nsenter"):
        (tools / exe).write_text("#!/bin/sh\n")
        (tools / exe).chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    kd._preflight([], kd.exec_checks("1.31.4", "1.31.4"))  # only warnings: crictl, ebtables, ...


# --- containerd's CRI config and images ---------------------------------------------------------


def test_cri_config_v2_and_v3() -> None:
    import tomllib

    v2 = kd.CriConfig(tomllib.loads(V2_CONFIG))
    assert (v2.sandbox_image, v2.cni_bin_dirs, v2.config_path) == (
        "registry.local:5000/pause:3.10",
        ["/opt/cni/bin"],
        "/etc/containerd/certs.d",
    )
    v3 = kd.CriConfig(tomllib.loads(V3_CONFIG))
    assert (v3.sandbox_image, v3.cni_bin_dirs) == (
        "registry.k8s.io/pause:3.10.1",
        ["/usr/lib/cni", "/opt/cni/bin"],
    )
    assert kd.CriConfig({}).cni_bin_dirs == ["/opt/cni/bin"]
    assert kd.normalize_image("weaveworks/weave-kube:2.8.1") == "docker.io/weaveworks/weave-kube:2.8.1"
    assert kd.normalize_image("busybox") == "docker.io/library/busybox:latest"
    assert kd.normalize_image("registry.local:5000/pause:3.10") == "registry.local:5000/pause:3.10"


def test_image_preflight_refuses_missing_images_offline(node: Path) -> None:
    (node / "rootfs" / "etc" / "containerd" / "config.toml").write_text(V2_CONFIG)
    images = kd.image_list("1.31.4", "registry.local:5000")
    _set_images(node, images[1:], pullable=[])
    errs = kd.image_pull_check(images, "unix:///run/containerd/containerd.sock", "1.31.4")
    (err,) = errs
    assert err[0] == "ImagePull"
    img = images[0]
    assert err[2].startswith(
        f"failed to pull image {img}: failed to pull image {img}: rpc error: code = Unknown desc = "
        f'failed to pull and unpack image "{img}": failed to resolve reference "{img}"'
    )
    with pytest.raises(
        kd.DoubleError, match=r"\[ERROR ImagePull\]: failed to pull image registry.local:5000/"
    ):
        kd._preflight([], errs)
    old = kd.image_pull_check(images, "unix:///run/containerd/containerd.sock", "1.30.2")
    assert old[0][2].startswith(f"failed to pull image {img}: output: ") and old[0][2].endswith(
        ", error: exit status 1"
    )


def test_image_preflight_pulls_through_the_registry_hosts_config(node: Path) -> None:
    (node / "rootfs" / "etc" / "containerd" / "config.toml").write_text(V2_CONFIG)
    images = kd.image_list("1.31.4", "registry.local:5000")
    _set_images(node, images[1:], pullable=[images[0]])
    assert kd.image_pull_check(images, "unix:///run/containerd/containerd.sock", "1.31.4") == []
    pulls = [c for c in _ctr_db(node)["calls"] if "pull" in c]
    assert pulls == [
        [
            "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", "images", "pull",
            "--hosts-dir", "/etc/containerd/certs.d", images[0],
        ]
    ]  # fmt: skip


# --- flags kubeadm refuses to mix with --config (validation.go isAllowedFlag) -------------------


def test_config_cannot_be_mixed_with_certificate_key_or_patches(tmp_path: Path) -> None:
    bins = write_doubles(tmp_path / "bin", "1.31.4")
    env = _env(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n")
    init = _run(
        bins["kubeadm"], "init", "--config", str(cfg), "--upload-certs", "--certificate-key", "a" * 64,
        "--patches", "/tmp/p", "--skip-token-print", env=env,
    )  # fmt: skip
    assert init.returncode == 1
    assert "can not mix '--config' with arguments [certificate-key patches]" in init.stderr
    jcfg = tmp_path / "j.yaml"
    jcfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n")
    join = _run(bins["kubeadm"], "join", "--config", str(jcfg), "--patches", "/tmp/p", env=env)
    assert "can not mix '--config' with arguments [patches]" in join.stderr
    kd._no_mix({"config": "x", "node-name": "n", "skip-phases": ["addon"], "upload-certs": True, "v": "5"})


# --- upgrade apply version policies (phases/upgrade/policy.go) ----------------------------------


@pytest.mark.parametrize(
    ("target", "cluster", "kubeadm", "force", "message"),
    [
        ("1.32.0", "1.31.4", "1.31.4", False, 'is at least one minor release higher than the kubeadm minor release (32 > 31)'),  # noqa: E501
        ("1.31.5", "1.31.4", "1.31.4", False, 'Specified version to upgrade to "v1.31.5" is higher than the kubeadm version "v1.31.4". Upgrade kubeadm first using the tool you used to install kubeadm'),  # noqa: E501
        ("1.33.0", "1.31.4", "1.33.0", True, '"v1.33.0" is too high; kubeadm can upgrade only 1 minor version at a time'),  # noqa: E501
        ("1.31.4", "1.32.0", "1.32.0", False, "Kubeadm version v1.32.0 can only be used to upgrade to Kubernetes version 1.32"),  # noqa: E501
        ("1.30.0", "1.32.0", "1.32.0", True, 'Specified version to upgrade to "v1.30.0" is equal to or lower than the minimum supported version'),  # noqa: E501
    ],
)  # fmt: skip
def test_upgrade_version_policies(target: str, cluster: str, kubeadm: str, force: bool, message: str) -> None:
    with pytest.raises(kd.DoubleError) as exc:
        kd.enforce_version_policies(target, cluster, kubeadm, force)
    assert message in str(exc.value)
    assert str(exc.value).startswith("the version argument is invalid due to these")


def test_upgrade_version_policies_allow_patch_and_rerun() -> None:
    kd.enforce_version_policies("1.31.4", "1.31.4", "1.31.4", False)  # re-run after a failure
    kd.enforce_version_policies("1.31.2", "1.31.4", "1.31.4", False)  # patch downgrade: allowed
    kd.enforce_version_policies("1.31.5", "1.31.4", "1.31.4", True)  # newer patch: only with --force
    with pytest.raises(kd.DoubleError, match=r"^\[upgrade/version\] FATAL: the --version argument"):
        kd.enforce_version_policies("1.30.5", "1.30.2", "1.30.2", False)


# --- kubelet: sandbox image, network DaemonSet pod, Ready from the CNI config --------------------

WEAVE = {
    "kind": "DaemonSet",
    "metadata": {"name": "weave-net", "namespace": "kube-system"},
    "spec": {
        "template": {
            "spec": {
                "initContainers": [{"name": "weave-init", "image": "weaveworks/weave-kube:2.8.1"}],
                "containers": [{"name": "weave", "image": "weaveworks/weave-kube:2.8.1"}],
                "volumes": [
                    {"name": "cni-bin", "hostPath": {"path": "/opt/cni/bin"}},
                    {"name": "cni-conf", "hostPath": {"path": "/etc"}},
                ],
            }
        }
    },
}


def _plugins(root: Path, *names: str) -> None:
    d = root / "rootfs" / "opt" / "cni" / "bin"
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_text("#!/bin/sh\n")
        (d / n).chmod(0o755)


def test_kubelet_runs_no_pod_without_the_sandbox_image(node: Path) -> None:
    (node / "rootfs" / "etc" / "containerd" / "config.toml").write_text(V2_CONFIG)
    _set_images(node, ["docker.io/weaveworks/weave-kube:2.8.1"])
    rt = kd.KubeletRuntime("unix:///run/containerd/containerd.sock", node / "pods")
    assert not rt.sandbox_gate("kube-apiserver-cp1")
    status = json.loads((node / "pods" / "kube-apiserver-cp1.status.json").read_text())
    assert status["reason"] == "FailedCreatePodSandBox"
    assert status["message"].startswith(
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox image "
        '"registry.local:5000/pause:3.10": failed to pull image "registry.local:5000/pause:3.10": '
        'failed to pull and unpack image "registry.local:5000/pause:3.10"'
    )
    assert "Failed to create sandbox for pod" in (node / "pods" / "kube-apiserver-cp1.log").read_text()
    rt.run_network_pod(WEAVE, "cp1")
    assert not (node / "rootfs" / "etc" / "cni" / "net.d").exists()
    assert rt.ready_condition()["message"] == kd.NETWORK_NOT_READY


def test_kubelet_network_pod_needs_its_images(node: Path) -> None:
    _set_images(node, ["registry.k8s.io/pause:3.8"])
    rt = kd.KubeletRuntime("unix:///run/containerd/containerd.sock", node / "pods")
    rt.run_network_pod(WEAVE, "cp1")
    status = json.loads((node / "pods" / "weave-net-cp1.status.json").read_text())
    assert status["reason"] == "ErrImagePull" and status["image"] == "weaveworks/weave-kube:2.8.1"
    assert not (node / "rootfs" / "etc" / "cni" / "net.d").exists()


def test_kubelet_ready_only_with_every_cni_plugin(node: Path) -> None:
    _set_images(node, ["registry.k8s.io/pause:3.8", "docker.io/weaveworks/weave-kube:2.8.1"])
    rt = kd.KubeletRuntime("unix:///run/containerd/containerd.sock", node / "pods")
    assert rt.ready_condition() == {
        "type": "Ready",
        "status": "False",
        "reason": "KubeletNotReady",
        "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
        "message:Network plugin returns error: cni plugin not initialized",
    }
    rt.run_network_pod(WEAVE, "cp1")
    conf = json.loads((node / "rootfs" / "etc" / "cni" / "net.d" / "10-weave.conflist").read_text())
    assert [p["type"] for p in conf["plugins"]] == ["weave-net", "portmap"]
    assert os.access(node / "rootfs" / "opt" / "cni" / "bin" / "weave-net", os.X_OK)
    assert rt.ready_condition()["status"] == "False"  # portmap and loopback missing
    assert kd.cni_network_status(rt.cri) == (False, 'failed to find plugin "portmap" in path [/opt/cni/bin]')
    _plugins(node, "portmap")
    assert kd.cni_network_status(rt.cri)[1] == 'failed to find plugin "loopback" in path [/opt/cni/bin]'
    _plugins(node, "loopback")
    assert rt.ready_condition()["status"] == "True"


def test_kubelet_cni_bin_dir_is_containerds(node: Path) -> None:
    """Plugins written where containerd does not look leave the node NotReady (Debian's
    containerd with bin_dir /usr/lib/cni and a CNI installing into /opt/cni/bin)."""
    (node / "rootfs" / "etc" / "containerd" / "config.toml").write_text(
        V2_CONFIG.replace('bin_dir = "/opt/cni/bin"', 'bin_dir = "/usr/lib/cni"')
    )
    _set_images(
        node,
        ["registry.local:5000/pause:3.10", "docker.io/calico/node:v3.28.0", "docker.io/calico/cni:v3.28.0"],
    )
    calico = {
        "kind": "DaemonSet",
        "metadata": {"name": "calico-node"},
        "spec": {"template": {"spec": {
            "initContainers": [{"name": "install-cni", "image": "docker.io/calico/cni:v3.28.0"}],
            "containers": [{"name": "calico-node", "image": "docker.io/calico/node:v3.28.0"}],
            "volumes": [{"name": "cni-bin-dir", "hostPath": {"path": "/opt/cni/bin"}},
                        {"name": "cni-net-dir", "hostPath": {"path": "/etc/cni/net.d"}}],
        }}},
    }  # fmt: skip
    rt = kd.KubeletRuntime("unix:///run/containerd/containerd.sock", node / "pods")
    rt.run_network_pod(calico, "w1")
    _plugins(node, "portmap", "bandwidth", "loopback")
    conf = json.loads((node / "rootfs" / "etc" / "cni" / "net.d" / "10-calico.conflist").read_text())
    assert [p["type"] for p in conf["plugins"]] == ["calico", "portmap", "bandwidth"]
    assert kd.cni_network_status(rt.cri) == (False, 'failed to find plugin "calico" in path [/usr/lib/cni]')


def test_static_pods_wait_for_the_sandbox_and_their_image(node: Path) -> None:
    manifests = node / "manifests"
    manifests.mkdir()
    (manifests / "kube-scheduler.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-scheduler\n  namespace: kube-system\n"
        "spec:\n  containers:\n  - name: kube-scheduler\n    image: registry.k8s.io/kube-scheduler:v1.31.4\n"
        "    command: [kube-scheduler]\n"
    )
    _set_images(node, [])
    rt = kd.KubeletRuntime("unix:///run/containerd/containerd.sock", node / "pods")
    pods = kd.StaticPods(manifests, node / "pods", rt)
    pods.sync()
    assert "kube-scheduler" not in pods.pods
    status = json.loads((node / "pods" / "kube-scheduler.status.json").read_text())
    assert status["reason"] == "FailedCreatePodSandBox"
    _set_images(node, ["registry.k8s.io/pause:3.8"])
    rt.refresh(force=True)
    pods.sync()
    status = json.loads((node / "pods" / "kube-scheduler.status.json").read_text())
    assert (status["reason"], status["image"]) == ("ErrImagePull", "registry.k8s.io/kube-scheduler:v1.31.4")
    assert "kube-scheduler" not in pods.pods
    _set_images(node, ["registry.k8s.io/pause:3.8", "registry.k8s.io/kube-scheduler:v1.31.4"])
    pods.sync()
    assert "kube-scheduler" in pods.pods
    assert json.loads((node / "pods" / "kube-scheduler.status.json").read_text())["phase"] == "Running"


CRICTL_REAL = """#!/bin/sh
# answers like cri-tools' crictl: JSON for a known image, FATA no such image otherwise
for a in "$@"; do last="$a"; done
case "$*" in
  *inspecti*) if [ "$last" = "registry.k8s.io/pause:3.10" ]; then
                echo '{"status": {"id": "sha256:1"}}'; exit 0
              fi
              echo "FATA[0000] no such image \\"$last\\" present" >&2; exit 1;;
esac
exit 1
"""


@pytest.mark.parametrize("real", [True, False])
def test_crictl_is_used_only_when_it_answers_like_the_real_one(node: Path, real: bool) -> None:
    bindir = node / "fakebin"
    crictl = bindir / "crictl"
    crictl.write_text(CRICTL_REAL if real else "#!/bin/sh\necho crictl v1.31.1\n")  # bundle stand-in
    crictl.chmod(0o755)
    _set_images(node, ["registry.k8s.io/kube-proxy:v1.31.4"])
    store = kd.ImageStore("unix:///run/containerd/containerd.sock", kd.CriConfig({}))
    assert store.exists("registry.k8s.io/pause:3.10") is real
    assert store.exists("registry.k8s.io/kube-proxy:v1.31.4") is not real  # only ctr knows it
    assert bool(_ctr_db(node).get("calls")) is not real  # ctr asked only without a real crictl


def test_control_plane_preflight_files_and_ports(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k8s = node / "etc"
    (k8s / "manifests").mkdir(parents=True)
    (k8s / "manifests" / "etcd.yaml").write_text("x")
    monkeypatch.setattr(kd, "K8S_DIR", k8s)
    etcd = node / "etcd"
    etcd.mkdir()
    (etcd / "member").mkdir()
    failed = {c[0]: c[2] for c in kd._control_plane_checks(6443, str(etcd)) if not c[1]}
    assert (
        failed["FileAvailable--etc-kubernetes-manifests-etcd.yaml"]
        == f"{k8s}/manifests/etcd.yaml already exists"
    )
    assert failed["DirAvailable-" + str(etcd).replace("/", "-")] == f"{etcd} is not empty"
    names = [c[0] for c in kd._control_plane_checks(6443, None)]
    assert names[:3] == ["Port-6443", "Port-10259", "Port-10257"] and "Port-2379" not in names
    swap = next(c for c in kd._common_checks("unix:///nonexistent.sock", "1.31.4") if c[0] == "Swap")
    assert swap[3] is True  # a warning: kubeadm leaves refusing swap to the kubelet


SYSTEMD_RUNC_V3 = """[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
    SystemdCgroup = true
"""
SYSTEMD_RUNC_V2 = """[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
"""
FAKE_CTR_VERSION = """#!/bin/sh
if [ "$1" = "--address" ]; then shift 2; fi
[ "$1" = "version" ] || exit 1
printf 'Client:\\n  Version:  v{v}\\n  Revision: x\\n\\nServer:\\n  Version:  v{v}\\n  Revision: x\\n'
"""


def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """A node whose containerd (seen through `ctr version`) is ``version``."""
    bindir = tmp_path / "rtbin"
    bindir.mkdir()
    (bindir / "ctr").write_text(FAKE_CTR_VERSION.replace("{v}", version))
    (bindir / "ctr").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setattr(kd, "KUBELET_METRICS", {})


@pytest.mark.parametrize(
    ("kubelet", "label"),
    [("1.34.12", "1.36.0"), ("1.35.9", "1.36.0"), ("1.36.5", "1.37.0"), ("1.37.1", "1.38.0")],
)
def test_kubelet_falls_back_on_containerd_1_and_sets_the_losing_support_metric(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kubelet: str,
    label: str,
) -> None:
    # containerd 1.6 has CRI v1 but no RuntimeConfig: 1.34-1.37 kubelets start anyway (KEP-4033).
    _runtime(tmp_path, monkeypatch, "1.6.20")
    monkeypatch.setattr(kd, "DOUBLE_VERSION", kubelet)
    assert kd._check_runtime(kd.DEFAULT_CRI, "systemd") == ("systemd", "v1.6.20")
    assert {"kubelet_cri_losing_support": {"version": label}} == kd.KUBELET_METRICS
    assert "Falling back to using cgroupDriver from kubelet config." in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "configured", "used"),
    [
        (V3_CONFIG + SYSTEMD_RUNC_V3, "cgroupfs", "systemd"),
        (V3_CONFIG + SYSTEMD_RUNC_V3.replace("true", "false"), "systemd", "cgroupfs"),
        (V2_CONFIG + SYSTEMD_RUNC_V2, "cgroupfs", "systemd"),
    ],
)
def test_kubelet_takes_the_cgroup_driver_containerd_2_reports(
    node: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config: str,
    configured: str,
    used: str,
) -> None:
    # containerd 2.x answers RuntimeConfig; its driver replaces the kubelet's (KEP-4033), no fallback.
    (Path(kd.ROOTFS) / "etc" / "containerd" / "config.toml").write_text(config)
    _runtime(node, monkeypatch, "2.1.9")
    monkeypatch.setattr(kd, "DOUBLE_VERSION", "1.36.5")
    assert kd._check_runtime(kd.DEFAULT_CRI, configured) == (used, "v2.1.9")
    assert kd.KUBELET_METRICS == {}
    err = capsys.readouterr().err
    assert f'"Using cgroup driver setting received from the CRI runtime" cgroupDriver="{used}"' in err
    assert "Falling back" not in err


def test_runtime_version_is_the_server_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _runtime(tmp_path, monkeypatch, "1.6.20~ds1")
    assert kd._runtime_version(kd.DEFAULT_CRI) == "v1.6.20~ds1"
    # no ctr: containerd --version's third field (Debian's 2.1.9 package prints it without "v")
    (tmp_path / "rtbin" / "ctr").unlink()
    (tmp_path / "rtbin" / "containerd").write_text(
        "#!/bin/sh\necho 'containerd github.com/containerd/containerd/v2 2.1.9~ds1 2.1.9~ds1-1'\n"
    )
    (tmp_path / "rtbin" / "containerd").chmod(0o755)
    assert kd._runtime_version(kd.DEFAULT_CRI) == "2.1.9~ds1"


def test_kubelet_refuses_a_runtime_without_cri_v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _runtime(tmp_path, monkeypatch, "1.5.18")
    monkeypatch.setattr(kd, "DOUBLE_VERSION", "1.35.9")
    with pytest.raises(kd.DoubleError, match=r"unknown service runtime\.v1\.RuntimeService"):
        kd._check_runtime(kd.DEFAULT_CRI, "systemd")


def test_kubelet_checks_nothing_when_the_runtime_version_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert kd._check_runtime(kd.DEFAULT_CRI, "cgroupfs") == ("cgroupfs", None)
