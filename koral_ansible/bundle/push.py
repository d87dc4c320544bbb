"""Push a bundle's images into a private registry with skopeo (``koral-play registry push``).

Images keep their repository path and tag, without the upstream host, which is the layout a
containerd mirror (``/etc/containerd/certs.d/<upstream>/hosts.toml`` with ``server =`` the
private registry) asks for: ``registry.k8s.io/pause:3.10`` -> ``HOST:PORT/pause:3.10``,
``docker.io/weaveworks/weave-kube:2.8.1`` -> ``HOST:PORT/weaveworks/weave-kube:2.8.1``.

Credentials go to skopeo in a 0600 auth file in a private temporary directory, never on a
command line or in a message. The bundle is verified first; an ISO is read in place.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from koral_ansible.bundle.images import CONTAINERD_NAME, OCI_REF_NAME, normalize, read_archive
from koral_ansible.bundle.iso import IsoReader
from koral_ansible.bundle.verify import verify_bundle
from koral_ansible.errors import InputError, OperationError


@dataclass(frozen=True)
class Registry:
    """A private registry: ``host`` is ``HOST[:PORT]``, ``insecure`` for plain HTTP or no TLS check."""

    host: str
    insecure: bool
    prefix: str = ""

    @classmethod
    def parse(cls, url: str, insecure: bool | None = None) -> Registry:
        text = url.strip()
        parts = urlsplit(text if "://" in text else f"https://{text}")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise InputError("--registry", f"must be http(s)://HOST[:PORT][/PREFIX] (got {url!r})")
        try:
            port = parts.port
        except ValueError as exc:
            raise InputError("--registry", f"must have a numeric port (got {url!r})") from exc
        host = parts.hostname + (f":{port}" if port else "")
        plain = parts.scheme == "http"
        return cls(host=host, insecure=plain if insecure is None else insecure, prefix=parts.path.strip("/"))

    def target(self, ref: str) -> str:
        """Where ``ref`` goes in this registry (mirror layout: upstream host dropped)."""
        name = normalize(ref)
        _host, _, path = name.partition("/")
        if "@" in path:  # a pinned digest: push under the tag when there is one, else by digest
            repo_tag, _, digest = path.partition("@")
            path = repo_tag if ":" in repo_tag.rsplit("/", 1)[-1] else f"{repo_tag}@{digest}"
        return f"{self.host}/{self.prefix + '/' if self.prefix else ''}{path}"


@dataclass(frozen=True)
class Pushed:
    ref: str
    target: str
    digest: str


def _source(archive_path: Path, ref: str) -> str:
    """skopeo source for ``ref`` in an archive (selects the image when the archive holds several)."""
    archive = read_archive(archive_path)
    if archive is None:
        raise OperationError(f"{archive_path} is not an image archive")
    if len(archive.refs) <= 1:
        return f"{archive.format}:{archive_path}"
    if archive.format == "docker-archive":
        return f"docker-archive:{archive_path}:{ref}"
    with tarfile.open(archive_path) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.load(member)
    for desc in index.get("manifests", []):
        notes = desc.get("annotations", {}) or {}
        if normalize(notes.get(CONTAINERD_NAME) or notes.get(OCI_REF_NAME, "x")) == normalize(ref):
            return f"oci-archive:{archive_path}:{notes.get(OCI_REF_NAME, '')}"
    raise OperationError(f"{archive_path} does not hold {ref}")


@contextmanager
def _archives(bundle: Path) -> Iterator[Callable[[str], Path]]:
    """Give a local path for each archive of a bundle directory or ISO (ISO files copied out)."""
    if bundle.is_dir():
        yield lambda rel: bundle / rel
        return
    with IsoReader(bundle) as reader, tempfile.TemporaryDirectory(prefix="koral-push-") as tmp:

        def local(rel: str) -> Path:
            dest = Path(tmp) / rel.replace("/", "_")
            if not dest.exists():
                with reader.open(rel) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
            return dest

        yield local


@contextmanager
def _auth_file(registry: Registry, username: str | None, password: str | None) -> Iterator[Path | None]:
    if not username:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="koral-auth-") as tmp:
        os.chmod(tmp, 0o700)
        path = Path(tmp) / "auth.json"
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"auths": {registry.host: {"auth": token}}}, fh)
        yield path


def skopeo_copy_argv(source: str, target: str, registry: Registry, auth_file: Path | None) -> list[str]:
    skopeo = shutil.which("skopeo")
    if not skopeo:
        raise OperationError("skopeo is not installed (Debian package 'skopeo'); it pushes the images")
    argv = [
        skopeo,
        "copy",
        "--retry-times",
        "2",
        f"--dest-tls-verify={'false' if registry.insecure else 'true'}",
    ]
    if auth_file is not None:
        argv += ["--dest-authfile", str(auth_file)]
    return [*argv, source, f"docker://{target}"]


def push_bundle(
    bundle: str | Path,
    registry_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    insecure: bool | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Pushed]:
    """Verify ``bundle`` (directory or ISO) and push every image it holds to ``registry_url``.

    ``insecure`` defaults to True for ``http://`` URLs (plain HTTP) and False for ``https://``.
    Raises InputError for a bad URL, OperationError (registry message, no secrets) when a push fails.
    """
    registry = Registry.parse(registry_url, insecure)
    path = Path(bundle).expanduser().resolve()
    manifest = verify_bundle(path)
    say = progress or (lambda _m: None)
    pushed: list[Pushed] = []
    with _archives(path) as local, _auth_file(registry, username, password) as auth:
        for ref, rel in sorted(manifest.images.items()):
            target = registry.target(ref)
            say(f"push {ref} -> {target}")
            with tempfile.TemporaryDirectory(prefix="koral-digest-") as tmp:
                digest_file = Path(tmp) / "digest"
                argv = skopeo_copy_argv(_source(local(rel), ref), target, registry, auth)
                argv[2:2] = ["--digestfile", str(digest_file)]
                proc = subprocess.run(
                    argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
                )
                if proc.returncode != 0:
                    detail = " ".join(proc.stderr.strip().splitlines()[-1:])
                    if password:
                        detail = detail.replace(password, "***")
                    raise OperationError(f"push of {ref} to {target} failed: {detail[-400:]}")
                digest = digest_file.read_text().strip() if digest_file.exists() else ""
            pushed.append(Pushed(ref=ref, target=target, digest=digest))
    return pushed
