"""Check a bundle (directory or ISO) against its manifest.

The first problem found raises :class:`BundleVerifyError` naming the file: the manifest
itself (missing, malformed, checksum mismatch), then each listed file in path order (missing,
size, sha256), then any file present but not listed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from koral_ansible.bundle.iso import IsoReader, is_iso
from koral_ansible.bundle.layout import MANIFEST
from koral_ansible.bundle.manifest import Manifest, sha256_file, sha256_stream
from koral_ansible.errors import InputError, OperationError


class BundleVerifyError(OperationError):
    """A bundle whose content does not match its manifest. ``file`` names the culprit."""

    def __init__(self, bundle: Path, file: str, problem: str) -> None:
        self.bundle = bundle
        self.file = file
        self.problem = problem
        super().__init__(f"bundle {bundle} failed verification: {file}: {problem}")


def _check(
    bundle: Path,
    manifest_text: str | None,
    present: list[str],
    size_of: Callable[[str], int],
    hash_of: Callable[[str], str],
    deep: bool,
) -> Manifest:
    if manifest_text is None:
        raise BundleVerifyError(bundle, MANIFEST, "missing (not a koral bundle, or built by another tool)")
    try:
        manifest = Manifest.from_json(manifest_text)
    except ValueError as exc:
        raise BundleVerifyError(bundle, MANIFEST, str(exc)) from exc
    expected = manifest.compute_checksum()
    if manifest.checksum != expected:
        raise BundleVerifyError(
            bundle,
            MANIFEST,
            f"checksum mismatch (recorded {manifest.checksum or 'none'}, computed {expected})",
        )
    for ref, rel in sorted(manifest.images.items()):
        if rel not in manifest.files:
            raise BundleVerifyError(
                bundle, rel, f"archive of image {ref} is not listed in the manifest files"
            )
    have = set(present)
    for rel, entry in sorted(manifest.files.items()):
        if rel not in have:
            raise BundleVerifyError(bundle, rel, "missing")
        size = size_of(rel)
        if size != entry.size:
            raise BundleVerifyError(bundle, rel, f"size mismatch (expected {entry.size} bytes, found {size})")
        if deep:
            digest = hash_of(rel)
            if digest != entry.sha256:
                raise BundleVerifyError(
                    bundle, rel, f"sha256 mismatch (expected {entry.sha256}, found {digest})"
                )
    extra = sorted(have - set(manifest.files) - {MANIFEST})
    if extra:
        raise BundleVerifyError(bundle, extra[0], "present but not listed in the manifest")
    return manifest


def _verify_dir(bundle: Path, deep: bool) -> Manifest:
    manifest_path = bundle / MANIFEST
    text = manifest_path.read_text(encoding="utf-8") if manifest_path.is_file() else None
    present = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file() or p.is_symlink())
    return _check(
        bundle,
        text,
        present,
        lambda rel: (bundle / rel).stat().st_size,
        lambda rel: sha256_file(bundle / rel),
        deep,
    )


def _verify_iso(bundle: Path, deep: bool) -> Manifest:
    with IsoReader(bundle) as reader:
        present = reader.files()
        text = reader.read_text(MANIFEST) if MANIFEST in present else None

        def hash_of(rel: str) -> str:
            with reader.open(rel) as fh:
                return sha256_stream(fh)

        return _check(bundle, text, present, reader.size, hash_of, deep)


def verify_bundle(path: str | Path, *, deep: bool = True) -> Manifest:
    """Verify a bundle directory or ISO; return its manifest, or raise BundleVerifyError.

    ``deep=False`` checks presence and sizes only (no hashing), for a quick look.
    Raises InputError when ``path`` is neither a directory nor an ISO file.
    """
    bundle = Path(path).expanduser()
    if bundle.is_dir():
        return _verify_dir(bundle.resolve(), deep)
    if is_iso(bundle):
        return _verify_iso(bundle.resolve(), deep)
    raise InputError("PATH", f"must be a bundle directory or an ISO 9660 file (got {str(path)!r})")
