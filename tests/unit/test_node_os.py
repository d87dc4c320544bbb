"""The node OS: the spec field, the per-suite image recipe (packages, cache key, cache cleanup)
and the local provider building every node of a cluster from its spec's suite."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from koral_ansible import node_os
from koral_ansible.errors import InputError, OperationError
from koral_ansible.paths import Paths
from koral_ansible.providers.base import ProviderContext
from koral_ansible.providers.local import image, provider
from koral_ansible.spec import restore_spec, validate_spec
from koral_ansible.state import StateStore


def test_default_is_debian_12_and_old_specs_restore_to_it() -> None:
    assert validate_spec({"name": "c"}).node_os == "debian-12"
    assert validate_spec({"name": "c"}).node_suite == "bookworm"
    # a spec stored before the field existed has no node_os: its nodes were built on bookworm
    old = validate_spec({"name": "c"}).public_dict()
    del old["node_os"]
    assert restore_spec(old, {}).node_os == "debian-12"


def test_debian_13_is_kept_through_store_and_scale() -> None:
    spec = validate_spec({"name": "c", "node_os": "Debian-13"})
    assert (spec.node_os, spec.node_suite) == ("debian-13", "trixie")
    assert spec.public_dict()["node_os"] == "debian-13"
    assert restore_spec(spec.public_dict(), {}).node_os == "debian-13"
    assert spec.replace(size=3).node_os == "debian-13"


@pytest.mark.parametrize("value", ["debian-11", "trixie", "", "ubuntu-24.04", 13])
def test_bad_node_os_names_field_and_allowed_values(value: object) -> None:
    with pytest.raises(InputError) as err:
        validate_spec({"name": "c", "node_os": value})
    assert err.value.field == "node_os"
    assert "debian-12, debian-13" in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_node_os_is_local_only() -> None:
    base = {"name": "c", "provider": "cloudstack", "compute_offering": "o"}
    assert validate_spec(base).node_os == "debian-12"  # the default is harmless (stored specs have it)
    with pytest.raises(InputError) as err:
        validate_spec({**base, "node_os": "debian-13"})
    assert err.value.field == "node_os" and "only used by provider local" in str(err.value)


def test_every_node_os_has_an_image_recipe() -> None:
    assert set(image.SUITE_RENAMES) == set(node_os.NODE_OS_SUITES.values()) == set(image.SUITE_EXTRA_PACKAGES)
    assert node_os.DEFAULT_NODE_OS in node_os.NODE_OS_SUITES
    assert node_os.suite(node_os.DEFAULT_NODE_OS) == image.SUITE


def test_package_lists_per_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    assert image.packages() == image.packages("bookworm") == image.PACKAGES
    trixie = image.packages("trixie")
    for name in ("containerd", "etcd-server", "etcd-client", "iproute2", "conntrack", "systemd-sysv"):
        assert name in trixie
    monkeypatch.setitem(image.SUITE_RENAMES, "trixie", {"etcd-client": "etcd-cli", "xorriso": None})
    monkeypatch.setitem(image.SUITE_EXTRA_PACKAGES, "trixie", ("e2fsprogs",))
    trixie = image.packages("trixie")
    assert "etcd-cli" in trixie and "etcd-client" not in trixie and "xorriso" not in trixie
    assert trixie[-1] == "e2fsprogs" and len(trixie) == len(image.PACKAGES)
    assert image.packages("bookworm") == image.PACKAGES  # one suite's table leaves the other alone
    with pytest.raises(OperationError, match="sid"):
        image.packages("sid")


def test_cache_key_per_suite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = Paths.resolve(home=tmp_path / "home", cache=tmp_path / "cache")
    bookworm, trixie = image.recipe_hash("bookworm"), image.recipe_hash("trixie")
    assert bookworm == image.recipe_hash() and bookworm != trixie
    assert image.image_ref("trixie") == f"{image.IMAGE_NAME}:{trixie}" != image.image_ref()
    assert image.tarball_path(paths, "trixie").name == f"koral-node-{trixie}.tar"
    assert image.tarball_path(paths, "trixie") != image.tarball_path(paths)
    # a trixie-only package change moves trixie's key, not bookworm's
    monkeypatch.setitem(image.SUITE_EXTRA_PACKAGES, "trixie", ("e2fsprogs",))
    assert image.recipe_hash("trixie") != trixie and image.recipe_hash("bookworm") == bookworm


def test_stale_cleanup_keeps_every_suites_tarball(tmp_path: Path) -> None:
    paths = Paths.resolve(home=tmp_path / "home", cache=tmp_path / "cache")
    images = image.images_dir(paths)
    images.mkdir(parents=True)
    keep = [image.tarball_path(paths, s) for s in ("bookworm", "trixie")]
    stale = [images / "koral-node-000000000000.tar", images / f".{keep[1].name}.tmp123"]
    for p in (*keep, *stale):
        p.write_text("x")
    image._clean_stale(paths, images / f"build-{image.recipe_hash('trixie')}")
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


def test_prune_keeps_every_suites_image() -> None:
    current = [image.image_ref(s) for s in ("bookworm", "trixie")]
    removed: list[str] = []

    class FakePodman:
        def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            if args[0] == "rmi":
                removed.append(args[1])
            out = "\n".join([*current, f"{image.IMAGE_NAME}:000000000000"]) if args[0] == "images" else ""
            return subprocess.CompletedProcess(list(args), 0, out, "")

    image._prune_images(FakePodman())  # type: ignore[arg-type]
    assert removed == [f"{image.IMAGE_NAME}:000000000000"]


def test_customized_rootfs_names_its_suite(tmp_path: Path) -> None:
    for d in ("etc/ssh", "root"):
        (tmp_path / d).mkdir(parents=True)
    image.customize_rootfs(tmp_path, "trixie")
    release = (tmp_path / "etc/koral-node-release").read_text()
    assert f"KORAL_NODE_RECIPE={image.recipe_hash('trixie')}\n" in release and "SUITE=trixie\n" in release


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("value", "suite"), [("debian-12", "bookworm"), ("debian-13", "trixie")])
def test_local_nodes_use_the_specs_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, suite: str
) -> None:
    """Create, scale and node replacement all go through _ensure_nodes with the stored spec."""
    asked: list[Any] = []

    def fake_ensure_image(_paths: Paths, _report: Any, wanted: str) -> str:
        asked.append(wanted)
        raise _Stop

    monkeypatch.setattr(provider, "ensure_image", fake_ensure_image)
    paths = Paths.resolve(home=tmp_path / "home", cache=tmp_path / "cache")
    ctx = ProviderContext(store=StateStore(paths), paths=paths, cluster="c", ssh_public_key="ssh-ed25519 A x")
    spec = validate_spec({"name": "c", "node_os": value})
    with pytest.raises(_Stop):
        provider.LocalProvider(ctx)._ensure_nodes(spec, [], None)  # type: ignore[arg-type]
    assert asked == [suite]
