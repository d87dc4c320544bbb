"""The bundle manifest (``manifest.json`` at the bundle root).

It records the versions, the sha256 and size of every other file in the bundle, which image
reference lives in which archive, and ``checksum``: the sha256 of the canonical JSON of all
of that, so an edited manifest is detected as well as an edited file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from koral_ansible.bundle.layout import FORMAT

CHUNK = 1 << 20
RUNTIME_KEYS: tuple[str, ...] = ("containerd", "runc", "etcdctl")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_stream(fh: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def pause_image(refs: list[str]) -> str:
    """The ``.../pause:TAG`` reference among ``refs`` (kubeadm's image list), or ''."""
    for ref in refs:
        if ref.split("@", 1)[0].rsplit(":", 1)[0].endswith("/pause"):
            return ref
    return ""


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass
class Manifest:
    """What a bundle holds. ``files`` maps a relative path to its sha256 and size."""

    name: str
    arch: str
    kubernetes_version: str
    cni_version: str
    crictl_version: str
    # containerd / runc / etcdctl versions when the bundle carries them (absent keys: not carried)
    runtime_versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    image_sources: dict[str, list[str]] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT
    checksum: str = ""

    @property
    def versions(self) -> dict[str, str]:
        return {
            "kubernetes": self.kubernetes_version,
            "cni_plugins": self.cni_version,
            "crictl": self.crictl_version,
            **{k: v for k, v in sorted(self.runtime_versions.items()) if k in RUNTIME_KEYS and v},
        }

    @property
    def pause_image(self) -> str:
        """The sandbox (pause) image of kubeadm's list (``kubeadm config images list``), or ''."""
        return pause_image(self.image_sources.get("kubeadm", []))

    def _covered(self) -> dict[str, Any]:
        """The part of the manifest the checksum covers (everything but ``created``)."""
        return {
            "format": self.format,
            "name": self.name,
            "arch": self.arch,
            "versions": self.versions,
            "files": {k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(self.files.items())},
            "images": dict(sorted(self.images.items())),
            "image_sources": {k: list(v) for k, v in sorted(self.image_sources.items())},
        }

    def compute_checksum(self) -> str:
        canonical = json.dumps(self._covered(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def seal(self) -> Manifest:
        self.checksum = self.compute_checksum()
        return self

    def to_json(self) -> str:
        data = self._covered()
        data["created"] = self.created
        data["checksum"] = self.checksum
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse; raises ValueError with a reason when the document is not a bundle manifest."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a koral bundle manifest (format must be {FORMAT!r})")
        try:
            versions = data["versions"]
            files = {
                str(k): FileEntry(sha256=str(v["sha256"]), size=int(v["size"]))
                for k, v in data["files"].items()
            }
            return cls(
                name=str(data["name"]),
                arch=str(data["arch"]),
                kubernetes_version=str(versions["kubernetes"]),
                cni_version=str(versions["cni_plugins"]),
                crictl_version=str(versions["crictl"]),
                runtime_versions={k: str(versions[k]) for k in RUNTIME_KEYS if versions.get(k)},
                files=files,
                images={str(k): str(v) for k, v in data.get("images", {}).items()},
                image_sources={str(k): [str(i) for i in v] for k, v in data.get("image_sources", {}).items()},
                created=str(data.get("created", "")),
                checksum=str(data.get("checksum", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed manifest ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_json(path.read_text(encoding="utf-8"))
