"""Container image references and image archives (OCI archive or docker-archive tar files).

A reference is normalised the way containerd names images (``busybox`` ->
``docker.io/library/busybox:latest``) so references from YAML files, kubeadm and archive
annotations compare equal. An archive's image names come from the OCI index annotations
``io.containerd.image.name`` (full name) or ``org.opencontainers.image.ref.name`` (when it is
a full name), or from the ``RepoTags`` of a docker-archive ``manifest.json``.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_REGISTRY = "docker.io"
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"


def normalize(ref: str) -> str:
    """Fully qualified reference: registry host, ``library/`` for Docker Hub, ``:latest``."""
    ref = ref.strip()
    name, _, digest = ref.partition("@")
    slash = name.find("/")
    first = name[:slash] if slash >= 0 else ""
    if slash < 0 or ("." not in first and ":" not in first and first != "localhost"):
        name = f"{DEFAULT_REGISTRY}/{name}"
    host, _, path = name.partition("/")
    if host == DEFAULT_REGISTRY and "/" not in path.split(":", 1)[0]:
        name = f"{host}/library/{path}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name = f"{name}:latest"
    return f"{name}@{digest}" if digest else name


@dataclass(frozen=True)
class ImageArchive:
    path: Path
    format: str  # "oci-archive" or "docker-archive"
    refs: tuple[str, ...]


def _member_json(tar: tarfile.TarFile, name: str) -> Any:
    for candidate in (name, f"./{name}"):
        try:
            member = tar.getmember(candidate)
        except KeyError:
            continue
        fh = tar.extractfile(member)
        if fh is None:
            return None
        with fh:
            return json.loads(fh.read().decode("utf-8"))
    return None


def _looks_full(name: str) -> bool:
    return "/" in name or ":" in name


def read_archive(path: Path) -> ImageArchive | None:
    """Image names in an archive; ``None`` when ``path`` is not an image archive."""
    try:
        with tarfile.open(path) as tar:
            index = _member_json(tar, "index.json")
            if isinstance(index, dict) and _member_json(tar, "oci-layout") is not None:
                refs: list[str] = []
                for desc in index.get("manifests", []):
                    notes = desc.get("annotations", {}) or {}
                    name = notes.get(CONTAINERD_NAME) or notes.get(OCI_REF_NAME, "")
                    if name and _looks_full(name):
                        refs.append(normalize(name))
                return ImageArchive(path, "oci-archive", tuple(dict.fromkeys(refs)))
            manifest = _member_json(tar, "manifest.json")
            if isinstance(manifest, list):
                tags = [normalize(t) for entry in manifest for t in (entry.get("RepoTags") or [])]
                return ImageArchive(path, "docker-archive", tuple(dict.fromkeys(tags)))
    except (tarfile.TarError, OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    return None


def index_archives(directory: Path) -> dict[str, ImageArchive]:
    """Normalised reference -> archive, for every ``*.tar`` below ``directory`` (sorted walk)."""
    found: dict[str, ImageArchive] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.rglob("*.tar")):
        archive = read_archive(path) if path.is_file() else None
        if archive is None:
            continue
        for ref in archive.refs:
            found.setdefault(ref, archive)
    return found


def lookup(ref: str, found: dict[str, ImageArchive]) -> ImageArchive | None:
    """The archive holding ``ref``; a ``name:tag@digest`` reference also matches ``name:tag``."""
    ref = normalize(ref)
    if ref in found:
        return found[ref]
    name = ref.split("@", 1)[0]
    if "@" in ref and ":" in name.rsplit("/", 1)[-1]:
        return found.get(name)
    return None
