"""Kubernetes binaries bundles (Koral's binaries ISO, with a verified manifest).

Public API::

    build_bundle(output, kubernetes_version, cni_version, crictl_version, network_yaml,
                 dashboard_yaml, build_name=None, *, arch="amd64", from_dir=None, ...) -> BuildResult
    verify_bundle(path, *, deep=True) -> Manifest          # directory or ISO
    kubeadm_images(kubernetes_version) -> list[str]
    list_iso(path) -> list[str]
    record_bundle(home, manifest, directory, iso) / list_bundles(home) / find_bundle(home, version)
    resolve_bundle(home, bundle, kubernetes_version, arch="amd64", *, deep=True) -> ResolvedBundle | None
    push_bundle(bundle, registry_url, *, username=None, password=None, insecure=None) -> list[Pushed]
    register_bundle(client, iso, url, *, zone=None, name=None, ...) -> RegisteredVersion
"""

from __future__ import annotations

from koral_ansible.bundle.build import BuildResult, build_bundle
from koral_ansible.bundle.images import normalize as normalize_image
from koral_ansible.bundle.iso import IsoReader, list_iso, make_iso
from koral_ansible.bundle.kubeadm_images import kubeadm_images
from koral_ansible.bundle.manifest import FileEntry, Manifest
from koral_ansible.bundle.manifests import images_in, pin_pull_policy
from koral_ansible.bundle.push import Pushed, push_bundle
from koral_ansible.bundle.register import RegisteredVersion, register_bundle, registered_versions
from koral_ansible.bundle.registry import BundleRecord, find_bundle, list_bundles, record_bundle
from koral_ansible.bundle.resolve import ResolvedBundle, resolve_bundle
from koral_ansible.bundle.verify import BundleVerifyError, verify_bundle

__all__ = [
    "BuildResult",
    "BundleRecord",
    "BundleVerifyError",
    "FileEntry",
    "IsoReader",
    "Manifest",
    "Pushed",
    "RegisteredVersion",
    "ResolvedBundle",
    "build_bundle",
    "find_bundle",
    "images_in",
    "kubeadm_images",
    "list_bundles",
    "list_iso",
    "make_iso",
    "normalize_image",
    "pin_pull_policy",
    "push_bundle",
    "record_bundle",
    "register_bundle",
    "registered_versions",
    "resolve_bundle",
    "verify_bundle",
]
