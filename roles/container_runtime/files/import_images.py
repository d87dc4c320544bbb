#!/usr/bin/env python3
"""Import image archives (OCI or docker-archive tar) into containerd, skipping present images.

Run on the node by the container_runtime role. Prints one line per archive:
``imported ARCHIVE: NAMES`` or ``present ARCHIVE: NAMES``. Exit 1 with a message on failure.

With ``--alias-to HOST`` (the cluster's private registry, when its images come from the bundle
because the registry does not answer), every ``registry.k8s.io/X`` image also gets the name
``HOST/X`` (``tagged NAME`` lines): kubeadm's ``imageRepository`` and containerd's sandbox image
then name images that are present, as real kubeadm and kubelet need offline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

SUFFIXES = (".tar", ".oci", ".oci.tar", ".docker.tar")


def normalize(ref: str) -> str:
    """Docker-style short name to the full name containerd lists.

    busybox -> docker.io/library/busybox:latest
    """
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    return f"{name}@{digest}" if digest else name


def archive_names(path: Path) -> tuple[list[str], str]:
    """Image names stored in an archive, and the --base-name ctr needs for OCI tag-only names."""
    with tarfile.open(path) as tar:
        members = set(tar.getnames())
        if "index.json" in members or "./index.json" in members:
            member = tar.extractfile("index.json" if "index.json" in members else "./index.json")
            index = json.load(member) if member else {}
            names: list[str] = []
            base = ""
            for m in index.get("manifests", []):
                ann = m.get("annotations") or {}
                full = ann.get("io.containerd.image.name")
                ref = ann.get("org.opencontainers.image.ref.name", "")
                if full:
                    names.append(normalize(full))
                elif "/" in ref or ":" in ref:  # a full reference, not just a tag
                    names.append(normalize(ref))
                    base = normalize(ref).rsplit(":", 1)[0]
            return names, base
        if "manifest.json" in members:
            member = tar.extractfile("manifest.json")
            manifest = json.load(member) if member else []
            return [normalize(t) for entry in manifest for t in entry.get("RepoTags") or []], ""
    return [], ""


def ctr(address: str, namespace: str, *args: str) -> str:
    res = subprocess.run(
        ["ctr", "--address", address, "-n", namespace, *args], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        sys.exit(f"ctr {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


UPSTREAM = "registry.k8s.io/"


def aliases(present: set[str], host: str) -> list[tuple[str, str]]:
    """(source, alias) pairs for every registry.k8s.io image that lacks its HOST/ name."""
    pairs = []
    for name in sorted(present):
        if name.startswith(UPSTREAM):
            alias = f"{host.rstrip('/')}/{name[len(UPSTREAM):]}"
            if alias not in present:
                pairs.append((name, alias))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--namespace", default="k8s.io")
    parser.add_argument("--address", default="/run/containerd/containerd.sock")
    parser.add_argument("--alias-to", default="", help="also name registry.k8s.io/X images HOST/X")
    args = parser.parse_args()
    if not args.dir.is_dir():
        sys.exit(f"image directory {args.dir} does not exist")
    present = set(ctr(args.address, args.namespace, "images", "ls", "-q").split())
    for path in sorted(p for p in args.dir.iterdir() if p.is_file() and p.name.endswith(SUFFIXES)):
        try:
            names, base = archive_names(path)
        except (tarfile.TarError, json.JSONDecodeError, OSError) as exc:
            sys.exit(f"cannot read image archive {path}: {exc}")
        if names and all(n in present for n in names):
            print(f"present {path.name}: {' '.join(names)}")
            continue
        extra = ["--base-name", base] if base else []
        ctr(args.address, args.namespace, "images", "import", *extra, str(path))
        print(f"imported {path.name}: {' '.join(names) or '(unnamed)'}")
    if args.alias_to:
        present = set(ctr(args.address, args.namespace, "images", "ls", "-q").split())
        for source, alias in aliases(present, args.alias_to):
            ctr(args.address, args.namespace, "images", "tag", source, alias)
            print(f"tagged {alias}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
