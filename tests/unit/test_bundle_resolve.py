"""Choosing and checking the bundle a cluster installs from, before anything is created."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from koral_ansible.bundle import BuildResult, record_bundle, resolve_bundle
from koral_ansible.errors import InputError
from tests.bundle_fixtures import make_test_bundle
from tests.versions import DEFAULT, PAUSE, UPGRADE_FROM, UPGRADE_TO

VERSION = DEFAULT
OTHER = UPGRADE_TO if DEFAULT == UPGRADE_FROM else UPGRADE_FROM  # a supported version that is not VERSION


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return make_test_bundle(tmp_path_factory.mktemp("resolve"), VERSION)


def test_resolve_by_path_name_and_version(built: BuildResult, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert built.iso is not None
    by_dir = resolve_bundle(home, str(built.directory), VERSION)
    assert by_dir is not None and not by_dir.is_iso and by_dir.manifest.checksum == built.manifest.checksum
    by_iso = resolve_bundle(home, built.iso, f"v{VERSION}")
    assert by_iso is not None and by_iso.is_iso
    assert resolve_bundle(home, None, VERSION) is None  # nothing recorded: online install
    record_bundle(home, built.manifest, None, built.iso)
    by_version = resolve_bundle(home, None, VERSION)
    assert by_version is not None and by_version.path == built.iso
    by_name = resolve_bundle(home, built.manifest.name, VERSION)
    assert by_name is not None and by_name.path == built.iso
    extra = by_name.ansible_vars()
    assert extra["koral_bundle"] == str(built.iso)
    assert extra["koral_bundle_checksum"] == built.manifest.checksum
    assert {
        "ref": f"registry.k8s.io/pause:{PAUSE}",
        "file": f"images/registry.k8s.io_pause_{PAUSE}.tar",
    } in extra["koral_bundle_images"]


def test_resolve_refuses_bad_bundles(built: BuildResult, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with pytest.raises(
        InputError, match=rf"^--bundle: .* holds Kubernetes {VERSION}, the cluster asks for {OTHER}"
    ):
        resolve_bundle(home, built.directory, OTHER)
    with pytest.raises(InputError, match=r"^--bundle: .* is for amd64 nodes, the nodes are arm64"):
        resolve_bundle(home, built.directory, VERSION, "arm64")
    with pytest.raises(InputError, match=r"^--bundle: must be a bundle directory, an ISO or a name"):
        resolve_bundle(home, "no-such-bundle", VERSION)
    copy = tmp_path / "copy"
    shutil.copytree(built.directory, copy)
    (copy / "kubelet.service").write_text("[Service]\nExecStart=/bin/evil\n")
    with pytest.raises(InputError, match=r"^--bundle: kubelet.service: (size|sha256) mismatch"):
        resolve_bundle(home, copy, VERSION)
    (copy / "kubelet.service").unlink()
    record_bundle(home, built.manifest, None, None)
    with pytest.raises(InputError, match="recorded but its directory and ISO are gone"):
        resolve_bundle(home, built.manifest.name, VERSION)
