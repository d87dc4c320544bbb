"""Bundle build + verify, offline from fixtures: layout, manifest, ISO, tampering, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from koral_ansible.bundle import (
    BuildResult,
    BundleVerifyError,
    IsoReader,
    Manifest,
    build_bundle,
    kubeadm_images,
    list_iso,
    verify_bundle,
)
from koral_ansible.errors import InputError
from tests.bundle_fixtures import (
    DASHBOARD_IMAGES,
    NETWORK_IMAGES,
    FixtureSources,
    make_sources,
    make_test_bundle,
    placeholder_kubeadm,
    write_docker_archive,
)
from tests.versions import DEFAULT, ETCD, PAUSE

VERSION = DEFAULT
NEXT_PATCH_OF_DEFAULT = ".".join([*DEFAULT.split(".")[:2], str(int(DEFAULT.split(".")[2]) + 1)])
EXPECTED_TOP = {
    "manifest.json",
    "k8s/kubeadm",
    "k8s/kubelet",
    "k8s/kubectl",
    "kubelet.service",
    "10-kubeadm.conf",
    "cni/cni-plugins-amd64.tgz",
    "cri-tools/crictl-linux-amd64.tar.gz",
    "containerd/containerd",
    "containerd/containerd-shim-runc-v2",
    "containerd/ctr",
    "runc/runc",
    "etcd/etcdctl",
    "network.yaml",
    "dashboard.yaml",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """One bundle (directory + ISO) shared by the read-only tests of this module."""
    return make_test_bundle(tmp_path_factory.mktemp("bundle"), VERSION)


def _copy(result: BuildResult, tmp_path: Path) -> tuple[Path, Path]:
    assert result.iso is not None
    directory = tmp_path / "copy"
    shutil.copytree(result.directory, directory)
    iso = tmp_path / "copy.iso"
    shutil.copyfile(result.iso, iso)
    return directory, iso


def _build(src: FixtureSources, out: Path, **kwargs: object) -> BuildResult:
    return build_bundle(
        out,
        src.kubernetes_version,
        src.cni_version,
        src.crictl_version,
        src.network_yaml,
        src.dashboard_yaml,
        from_dir=src.from_dir,
        iso=bool(kwargs.pop("iso", False)),
        **kwargs,  # type: ignore[arg-type]
    )


def test_layout_matches_koral(built: BuildResult) -> None:
    files = {str(p.relative_to(built.directory)) for p in built.directory.rglob("*") if p.is_file()}
    assert files >= EXPECTED_TOP
    images = {f for f in files if f.startswith("images/")}
    wanted = set(kubeadm_images(VERSION)) | set(NETWORK_IMAGES) | set(DASHBOARD_IMAGES)
    assert len(images) == len(wanted) == 11
    assert files == EXPECTED_TOP | images
    for binary in ("kubeadm", "kubelet", "kubectl"):
        assert (built.directory / "k8s" / binary).stat().st_mode & stat.S_IXUSR
    assert "ExecStart=/usr/bin/kubelet" in (built.directory / "kubelet.service").read_text()
    assert "KUBELET_KUBEADM_ARGS" in (built.directory / "10-kubeadm.conf").read_text()


def test_manifest_records_versions_files_and_images(built: BuildResult) -> None:
    manifest = Manifest.load(built.directory / "manifest.json")
    assert manifest.versions == {
        "kubernetes": VERSION,
        "cni_plugins": "1.9.1",
        "crictl": "1.31.1",
        "containerd": "2.1.9",
        "runc": "1.1.5",
        "etcdctl": "3.5.30",
    }
    assert manifest.arch == "amd64" and manifest.name == f"kubernetes-{VERSION}-amd64"
    assert set(manifest.files) == {
        str(p.relative_to(built.directory)) for p in built.directory.rglob("*") if p.is_file()
    } - {"manifest.json"}
    assert set(manifest.images) == set(kubeadm_images(VERSION)) | set(NETWORK_IMAGES) | set(DASHBOARD_IMAGES)
    assert manifest.images[f"registry.k8s.io/pause:{PAUSE}"] == f"images/registry.k8s.io_pause_{PAUSE}.tar"
    assert manifest.image_sources["kubeadm"] == kubeadm_images(VERSION)
    assert manifest.image_sources["network.yaml"] == list(NETWORK_IMAGES)
    assert manifest.checksum == manifest.compute_checksum() and len(manifest.checksum) == 64
    assert manifest == built.manifest


def test_verify_passes_on_directory_and_iso(built: BuildResult) -> None:
    assert built.iso is not None
    assert verify_bundle(built.directory).checksum == built.manifest.checksum
    assert verify_bundle(built.iso).checksum == built.manifest.checksum
    assert verify_bundle(built.iso, deep=False).name == built.manifest.name


def test_iso_readable_by_xorriso_with_expected_tree(built: BuildResult) -> None:
    assert built.iso is not None
    proc = subprocess.run(
        ["xorriso", "-indev", str(built.iso), "-find", "/", "-type", "f"],
        capture_output=True,
        text=True,
        check=True,
    )
    listed = {line.strip().strip("'").lstrip("/") for line in proc.stdout.splitlines() if line.strip()}
    on_disk = {str(p.relative_to(built.directory)) for p in built.directory.rglob("*") if p.is_file()}
    assert listed == on_disk
    assert set(list_iso(built.iso)) == on_disk
    pycdlib = pytest.importorskip("pycdlib")
    iso = pycdlib.PyCdlib()
    iso.open(str(built.iso))
    try:
        assert iso.has_joliet() and iso.has_rock_ridge()
        record = iso.get_record(joliet_path="/cri-tools/crictl-linux-amd64.tar.gz")
        assert (
            record.get_data_length()
            == (built.directory / "cri-tools/crictl-linux-amd64.tar.gz").stat().st_size
        )
    finally:
        iso.close()
    pvd = subprocess.run(
        ["xorriso", "-indev", str(built.iso), "-pvd_info"], capture_output=True, text=True, check=True
    )
    assert "KORAL_K8S_" + VERSION.replace(".", "_") in pvd.stdout


def test_pull_policy_rewritten_and_comments_kept(built: BuildResult) -> None:
    network = (built.directory / "network.yaml").read_text()
    assert "Always" not in network and "Never" not in network
    assert network.count("imagePullPolicy: IfNotPresent") == 3
    assert "# pulled every start upstream" in network  # rewritten in place, layout kept
    dashboard = (built.directory / "dashboard.yaml").read_text()
    # the metrics scraper had no policy at all: added, so nodes never try to pull
    assert dashboard.count("imagePullPolicy: IfNotPresent") == 2


@pytest.mark.parametrize(
    "victim", [f"images/registry.k8s.io_pause_{PAUSE}.tar", "k8s/kubelet", "network.yaml"]
)
def test_tampered_byte_in_directory_names_the_file(built: BuildResult, tmp_path: Path, victim: str) -> None:
    directory, _ = _copy(built, tmp_path)
    data = bytearray((directory / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (directory / victim).write_bytes(bytes(data))
    with pytest.raises(BundleVerifyError) as info:
        verify_bundle(directory)
    assert info.value.file == victim
    assert f"{victim}: sha256 mismatch" in str(info.value)
    assert info.value.exit_code == 1


def test_tampered_byte_in_iso_names_the_file(built: BuildResult, tmp_path: Path) -> None:
    _, iso_path = _copy(built, tmp_path)
    with IsoReader(iso_path) as reader:
        assert reader._iso is not None
        record = reader._iso.get_record(rr_path="/k8s/kubeadm")
        offset = record.extent_location() * 2048 + 5
    with iso_path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x20]))
    with pytest.raises(BundleVerifyError, match=r"k8s/kubeadm: sha256 mismatch") as info:
        verify_bundle(iso_path)
    assert info.value.file == "k8s/kubeadm"
    verify_bundle(iso_path, deep=False)  # same size: only the deep check sees it


def test_edited_manifest_missing_and_extra_files(built: BuildResult, tmp_path: Path) -> None:
    directory, _ = _copy(built, tmp_path)
    manifest_path = directory / "manifest.json"
    original = manifest_path.read_text()
    data = json.loads(original)
    data["files"]["k8s/kubectl"]["size"] += 1
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(BundleVerifyError, match=r"manifest.json: checksum mismatch"):
        verify_bundle(directory)
    manifest_path.write_text(original)

    (directory / "dashboard.yaml").rename(tmp_path / "dashboard.yaml")
    with pytest.raises(BundleVerifyError, match=r"dashboard.yaml: missing"):
        verify_bundle(directory)
    (tmp_path / "dashboard.yaml").rename(directory / "dashboard.yaml")

    (directory / "k8s" / "extra").write_text("x")
    with pytest.raises(BundleVerifyError, match=r"k8s/extra: present but not listed"):
        verify_bundle(directory)
    (directory / "k8s" / "extra").unlink()

    manifest_path.unlink()
    with pytest.raises(BundleVerifyError, match=r"manifest.json: missing"):
        verify_bundle(directory)
    with pytest.raises(InputError, match=r"^PATH: must be a bundle directory or an ISO"):
        verify_bundle(directory / "network.yaml")


def test_missing_images_reported_at_build_time(tmp_path: Path) -> None:
    etcd = next(i for i in kubeadm_images(VERSION) if "/etcd:" in i)
    src = make_sources(tmp_path, VERSION, omit_images=[etcd, DASHBOARD_IMAGES[1]])
    with pytest.raises(InputError) as info:
        _build(src, tmp_path / "out", iso=True)
    message = str(info.value)
    assert message.startswith("--from: 2 image(s) missing from")
    assert etcd in message and DASHBOARD_IMAGES[1] in message
    assert info.value.exit_code == 2
    assert not (tmp_path / "out").exists(), "nothing is written when input is bad"


def test_kubeadm_binary_decides_the_image_list(tmp_path: Path) -> None:
    src = make_sources(tmp_path, VERSION)
    custom = [i if "/etcd:" not in i else "registry.k8s.io/etcd:3.5.99-0" for i in kubeadm_images(VERSION)]
    placeholder_kubeadm(src.from_dir / "k8s" / "kubeadm", VERSION, custom)
    with pytest.raises(InputError, match=r"registry.k8s.io/etcd:3.5.99-0"):
        _build(src, tmp_path / "out")
    # --no-run-kubeadm: the built-in table is used and every image is there
    result = _build(src, tmp_path / "out", use_kubeadm=False)
    assert f"registry.k8s.io/etcd:{ETCD}" in result.manifest.images
    # an explicit list wins over both
    explicit = kubeadm_images(VERSION)[:2]
    result = _build(src, tmp_path / "out2", kubeadm_image_list=explicit)
    assert result.manifest.image_sources["kubeadm"] == explicit


def test_kubeadm_version_must_match(tmp_path: Path) -> None:
    src = make_sources(tmp_path, VERSION)
    placeholder_kubeadm(src.from_dir / "k8s" / "kubeadm", NEXT_PATCH_OF_DEFAULT)
    with pytest.raises(InputError, match=r"^--kubernetes-version: must match the kubeadm binary"):
        _build(src, tmp_path / "out")


def test_unrunnable_kubeadm_falls_back_to_table(tmp_path: Path) -> None:
    src = make_sources(tmp_path, VERSION)
    (src.from_dir / "k8s" / "kubeadm").write_bytes(b"\x7fELF not really")
    messages: list[str] = []
    result = _build(src, tmp_path / "out", progress=messages.append)
    assert result.manifest.image_sources["kubeadm"] == kubeadm_images(VERSION)
    assert any("built-in table" in m for m in messages)


def test_docker_archive_and_extra_images(tmp_path: Path) -> None:
    src = make_sources(tmp_path, VERSION)
    write_docker_archive(src.from_dir / "images" / "extra" / "tools.tar", "quay.io/example/tools:1.0")
    result = _build(src, tmp_path / "out", extra_images=["quay.io/example/tools:1.0"])
    rel = result.manifest.images["quay.io/example/tools:1.0"]
    assert rel == "images/quay.io_example_tools_1.0.tar"
    assert result.manifest.image_sources["extra"] == ["quay.io/example/tools:1.0"]
    verify_bundle(result.directory)


def test_autoscaler_yaml_and_upstream_names_in_from_dir(tmp_path: Path) -> None:
    src = make_sources(
        tmp_path, VERSION, extra_images=["registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0"]
    )
    (src.from_dir / "autoscaler.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ca}\nspec:\n  template:\n    spec:\n"
        "      containers:\n      - name: ca\n"
        "        image: registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0\n"
        "        imagePullPolicy: Always\n"
    )
    result = build_bundle(
        tmp_path / "out",
        VERSION,
        "v1.5.1",
        "1.31.1",
        "network.yaml",  # relative: found in --from
        src.dashboard_yaml,
        "my-bundle",
        from_dir=src.from_dir,
        autoscaler_yaml="autoscaler.yaml",
        iso=False,
    )
    assert result.directory == (tmp_path / "out" / "my-bundle").resolve()
    assert result.iso is None
    assert "imagePullPolicy: IfNotPresent" in (result.directory / "autoscaler.yaml").read_text()
    assert "registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0" in result.manifest.images
    assert result.manifest.cni_version == "1.5.1"


def test_existing_output_needs_force(tmp_path: Path) -> None:
    src = make_sources(tmp_path, VERSION)
    first = _build(src, tmp_path / "out", iso=True)
    with pytest.raises(InputError, match=r"^--output: .* already exists"):
        _build(src, tmp_path / "out", iso=True)
    again = _build(src, tmp_path / "out", iso=True, force=True)
    assert again.directory == first.directory
    verify_bundle(again.directory)
    assert again.iso is not None
    verify_bundle(again.iso)
    assert not list((tmp_path / "out").glob(".*")), "no staging leftovers"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"arch": "sparc"}, "--arch"),
        ({"kubernetes_version": "1.31"}, "--kubernetes-version"),
        ({"kubernetes_version": "1.20.0"}, "--kubernetes-version"),
        ({"cni_version": "latest"}, "--cni-version"),
        ({"crictl_version": "1.x"}, "--crictl-version"),
        ({"build_name": "bad name/with slash"}, "--name"),
        ({"network_yaml": "nope.yaml"}, "--network-yaml"),
        ({"from_dir": "/nonexistent-koral-dir"}, "--from"),
        ({"from_dir": None}, "--from"),
    ],
)
def test_bad_input_is_input_error(tmp_path: Path, overrides: dict[str, object], field: str) -> None:
    src = make_sources(tmp_path, VERSION)
    args: dict[str, object] = {
        "output": tmp_path / "out",
        "kubernetes_version": VERSION,
        "cni_version": src.cni_version,
        "crictl_version": src.crictl_version,
        "network_yaml": src.network_yaml,
        "dashboard_yaml": src.dashboard_yaml,
        "from_dir": src.from_dir,
        "iso": False,
    }
    args.update(overrides)
    with pytest.raises(InputError) as info:
        build_bundle(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_yaml_and_missing_binary(tmp_path: Path) -> None:
    src = make_sources(tmp_path, VERSION)
    (src.from_dir / "bad.yaml").write_text("a: [unclosed\n")
    with pytest.raises(InputError, match=r"^--dashboard-yaml: must be a Kubernetes YAML file: .*line"):
        build_bundle(
            tmp_path / "out", VERSION, "1.5.1", "1.31.1", src.network_yaml, "bad.yaml", from_dir=src.from_dir
        )
    (src.from_dir / "k8s" / "kubelet").unlink()
    with pytest.raises(InputError, match=r"^--from: must hold the kubelet binary"):
        _build(src, tmp_path / "out")


def test_iso_verify_without_pycdlib_uses_xorriso(
    built: BuildResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pycdlib", None)  # import pycdlib -> ImportError
    assert built.iso is not None
    assert verify_bundle(built.iso).checksum == built.manifest.checksum
    _, iso_path = _copy(built, tmp_path)
    blob = bytearray(iso_path.read_bytes())
    needle = (built.directory / "k8s" / "kubectl").read_bytes()
    at = blob.find(needle)
    assert at > 0
    blob[at + 3] ^= 0x01
    iso_path.write_bytes(bytes(blob))
    with pytest.raises(BundleVerifyError, match=r"k8s/kubectl: sha256 mismatch"):
        verify_bundle(iso_path)


def test_iso_extracted_like_the_role_does_is_a_valid_bundle(built: BuildResult, tmp_path: Path) -> None:
    """Nodes without loop devices (containers) extract the ISO with xorriso: same tree, modes kept."""
    assert built.iso is not None
    target = tmp_path / "extracted"
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(built.iso), "-extract", "/", str(target)],
        capture_output=True,
        check=True,
    )
    assert verify_bundle(target).checksum == built.manifest.checksum
    assert (target / "k8s" / "kubeadm").stat().st_mode & stat.S_IXUSR
    assert not (target / "network.yaml").stat().st_mode & stat.S_IXUSR
    # one file to stdout through a pipe (as Ansible's command module reads it): -concat, not
    # "-extract FILE /dev/stdout", which writes nothing into a pipe
    manifest = subprocess.run(
        [
            "xorriso",
            "-osirrox",
            "on",
            "-indev",
            str(built.iso),
            "-concat",
            "append",
            "-",
            "/manifest.json",
            "--",
        ],
        capture_output=True,
        check=True,
    )
    assert json.loads(manifest.stdout)["checksum"] == built.manifest.checksum


def test_same_inputs_same_checksum(tmp_path: Path) -> None:
    """The checksum covers content, not build time: rebuilding the same inputs gives the same one."""
    src = make_sources(tmp_path, VERSION)
    first = _build(src, tmp_path / "a")
    second = _build(src, tmp_path / "b")
    assert first.manifest.checksum == second.manifest.checksum
    assert (first.directory / "manifest.json").read_text() != "" and first.manifest.created


def test_bundle_carries_the_real_node_runtime(built: BuildResult) -> None:
    """containerd + shim + ctr, runc, etcdctl (0755) and the CNI plugins archive, each with its
    sha256 in the manifest; the binaries are Debian's and answer like themselves."""
    manifest = built.manifest
    for rel in (
        "containerd/containerd",
        "containerd/containerd-shim-runc-v2",
        "containerd/ctr",
        "etcd/etcdctl",
    ):
        path = built.directory / rel
        assert path.stat().st_mode & 0o777 == 0o755
        assert manifest.files[rel].size == path.stat().st_size
        assert manifest.files[rel].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    out = subprocess.run(
        [built.directory / "containerd/containerd", "--version"], capture_output=True, text=True
    )
    assert " 2.1.9" in out.stdout
    out = subprocess.run([built.directory / "etcd/etcdctl", "version"], capture_output=True, text=True)
    assert "etcdctl version: 3.5.30" in out.stdout
    with tarfile.open(built.directory / "cni/cni-plugins-amd64.tgz") as tgz:
        names = {Path(n).name for n in tgz.getnames()}
    assert {"loopback", "portmap", "bridge", "host-local"} <= names
    assert "runc/runc" in manifest.files and manifest.files["runc/runc"].size > 1_000_000


def test_runtime_binaries_come_together(tmp_path: Path) -> None:
    src = make_sources(tmp_path, VERSION)
    (src.from_dir / "runc" / "runc").unlink()
    with pytest.raises(
        InputError, match=r"^--from: must hold all of containerd/containerd.*missing runc/runc"
    ):
        _build(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bundle_without_runtime_keeps_the_old_manifest(tmp_path: Path) -> None:
    """A --from directory without containerd/runc/etcdctl builds as before: three versions."""
    src = make_sources(tmp_path, VERSION, runtime=False)
    manifest = _build(src, tmp_path / "out").manifest
    assert manifest.versions == {"kubernetes": VERSION, "cni_plugins": "1.5.1", "crictl": "1.31.1"}
    assert not any(f.startswith(("containerd/", "runc/", "etcd/")) for f in manifest.files)
    assert Manifest.from_json(manifest.to_json()).compute_checksum() == manifest.checksum


def test_manifest_names_the_pause_image_kubeadm_lists(built: BuildResult) -> None:
    assert built.manifest.pause_image == f"registry.k8s.io/pause:{PAUSE}"
    m = Manifest(name="n", arch="amd64", kubernetes_version="1.34.1", cni_version="1", crictl_version="1")
    m.image_sources["kubeadm"] = kubeadm_images("1.34.1")
    assert m.pause_image == "registry.k8s.io/pause:3.10.1"
