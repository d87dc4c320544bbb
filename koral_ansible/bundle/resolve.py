"""Pick and check the bundle a cluster operation installs from (create, scale, upgrade).

``resolve_bundle`` turns what the user gave (a directory, an ISO, a name from
``koral-play bundle list``, or nothing: the recorded bundle for the version) into a verified
:class:`ResolvedBundle` *before* anything is created, so a tampered bundle, a bundle of the
wrong Kubernetes version or architecture is bad input (exit 2, nothing changed), not a failure
half-way through an install. ``ResolvedBundle.ansible_vars()`` is what the ``bundle`` role
and the node roles read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koral_ansible.bundle.iso import is_iso
from koral_ansible.bundle.manifest import Manifest
from koral_ansible.bundle.registry import BundleRecord, find_bundle, list_bundles
from koral_ansible.bundle.verify import BundleVerifyError, verify_bundle
from koral_ansible.errors import InputError


@dataclass(frozen=True)
class ResolvedBundle:
    """A verified bundle on the controller."""

    path: Path  # bundle directory or ISO file
    manifest: Manifest

    @property
    def is_iso(self) -> bool:
        return not self.path.is_dir()

    def ansible_vars(self) -> dict[str, Any]:
        """Extra variables for the playbooks (``koral_bundle`` feeds the bundle role)."""
        m = self.manifest
        return {
            "koral_bundle": str(self.path),
            "koral_bundle_name": m.name,
            "koral_bundle_checksum": m.checksum,
            "koral_bundle_arch": m.arch,
            "koral_bundle_versions": m.versions,
            # image reference -> archive path relative to the bundle root, in a stable order
            "koral_bundle_images": [{"ref": ref, "file": rel} for ref, rel in sorted(m.images.items())],
        }


def _from_record(record: BundleRecord) -> Path | None:
    for candidate in (record.directory, record.iso):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def _locate(home: Path, bundle: str | Path | None, kubernetes_version: str, arch: str) -> Path | None:
    if bundle is None or str(bundle) == "":
        record = find_bundle(home, kubernetes_version, arch)
        return _from_record(record) if record else None
    path = Path(bundle).expanduser()
    if path.exists():
        return path.resolve()
    for record in list_bundles(home):
        if record.name == str(bundle):
            found = _from_record(record)
            if found is None:
                raise InputError(
                    "--bundle", f"bundle {bundle!r} is recorded but its directory and ISO are gone"
                )
            return found
    raise InputError(
        "--bundle",
        f"must be a bundle directory, an ISO or a name from 'koral-play bundle list' (got {bundle!r})",
    )


def resolve_bundle(
    home: Path,
    bundle: str | Path | None,
    kubernetes_version: str,
    arch: str = "amd64",
    *,
    deep: bool = True,
) -> ResolvedBundle | None:
    """The verified bundle to install ``kubernetes_version`` from, or ``None`` when the user gave
    none and none is recorded for that version (the roles then install online).

    Raises InputError (field ``--bundle``) for an unknown name or path, a bundle that fails
    verification (the message names the first bad file), or one holding another Kubernetes
    version or architecture.
    """
    path = _locate(home, bundle, kubernetes_version, arch)
    if path is None:
        return None
    if not path.is_dir() and not is_iso(path):
        raise InputError("--bundle", f"must be a bundle directory or an ISO 9660 file (got {str(path)!r})")
    try:
        manifest = verify_bundle(path, deep=deep)
    except BundleVerifyError as exc:
        raise InputError(
            "--bundle", f"{exc.file}: {exc.problem} in {path}; rebuild or re-copy the bundle"
        ) from exc
    wanted = kubernetes_version.lstrip("v")
    if manifest.kubernetes_version != wanted:
        raise InputError(
            "--bundle",
            f"{path} holds Kubernetes {manifest.kubernetes_version}, the cluster asks for {wanted} "
            f"(build one with koral-play bundle build --kubernetes-version {wanted})",
        )
    if manifest.arch != arch:
        raise InputError("--bundle", f"{path} is for {manifest.arch} nodes, the nodes are {arch}")
    return ResolvedBundle(path=path, manifest=manifest)
