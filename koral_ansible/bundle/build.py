"""Build a Kubernetes binaries bundle (directory + ISO), the inputs of Koral's
``create-kubernetes-binaries-iso.sh`` plus a source directory so it works fully offline.

Everything is checked before anything is written: versions, architecture, every source file,
the YAML files, and that an archive exists for every image that kubeadm and the YAML files
need. A missing image is an :class:`InputError` listing all missing references. The bundle is
assembled in a hidden staging directory next to the output and renamed into place at the end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from koral_ansible.bundle import fetch, kubeadm_images, layout, runtime
from koral_ansible.bundle.images import ImageArchive, index_archives, lookup, normalize
from koral_ansible.bundle.iso import make_iso
from koral_ansible.bundle.manifest import FileEntry, Manifest, sha256_file
from koral_ansible.bundle.manifests import ManifestError, images_in, pin_pull_policy
from koral_ansible.bundle.systemd import DEFAULT_KUBELET_PATH, kubeadm_dropin, kubelet_service
from koral_ansible.errors import InputError
from koral_ansible.versions import check_supported

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    directory: Path
    iso: Path | None
    manifest: Manifest


@dataclass
class _Plan:
    """Everything resolved and checked before the first write."""

    name: str
    arch: str
    kubernetes_version: str
    cni_version: str
    crictl_version: str
    runtime_versions: dict[str, str] = field(default_factory=dict)
    copies: dict[str, tuple[Path, int]] = field(default_factory=dict)  # bundle path -> (source, mode)
    texts: dict[str, str] = field(default_factory=dict)  # bundle path -> content
    images: dict[str, ImageArchive] = field(default_factory=dict)  # ref -> archive
    image_sources: dict[str, list[str]] = field(default_factory=dict)


def _noop(_: str) -> None:
    return None


def _resolve_file(option: str, value: str | Path, from_dir: Path | None) -> Path:
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if from_dir is not None and not path.is_absolute() and (from_dir / path).is_file():
        return from_dir / path
    where = f" (looked at {path} and {from_dir / path})" if from_dir and not path.is_absolute() else ""
    raise InputError(option, f"must name an existing file{where}")


def _yaml(option: str, source: Path, plan: _Plan, target: str) -> None:
    try:
        text = source.read_text(encoding="utf-8")
        plan.image_sources[target] = [normalize(i) for i in images_in(text)]
        plan.texts[target] = pin_pull_policy(text)
    except (ManifestError, UnicodeDecodeError) as exc:
        raise InputError(option, f"must be a Kubernetes YAML file: {source}: {exc}") from exc


def _kubeadm_list(
    plan: _Plan, kubeadm: Path, override: Sequence[str] | None, use_kubeadm: bool, progress: Progress
) -> list[str]:
    if override is not None:
        return [normalize(i) for i in override]
    if use_kubeadm:
        reported = kubeadm_images.kubeadm_version(kubeadm)
        if reported is not None and reported != plan.kubernetes_version:
            raise InputError(
                "--kubernetes-version",
                f"must match the kubeadm binary {kubeadm} (it reports v{reported}, asked for "
                f"v{plan.kubernetes_version})",
            )
        listed = kubeadm_images.from_kubeadm(kubeadm, plan.kubernetes_version)
        if listed is not None:
            progress(f"kubeadm images: from {kubeadm} ({len(listed)} images)")
            return [normalize(i) for i in listed]
        progress(f"kubeadm images: {kubeadm} cannot run here; using the built-in table")
    return [normalize(i) for i in kubeadm_images.kubeadm_images(plan.kubernetes_version)]


def _plan(
    *,
    kubernetes_version: str,
    cni_version: str,
    crictl_version: str,
    network_yaml: str | Path,
    dashboard_yaml: str | Path,
    build_name: str | None,
    arch: str,
    from_dir: Path,
    autoscaler_yaml: str | Path | None,
    provider_yaml: str | Path | None,
    extra_images: Sequence[str],
    kubeadm_image_list: Sequence[str] | None,
    use_kubeadm: bool,
    kubelet_path: str,
    progress: Progress,
) -> _Plan:
    try:
        version = str(check_supported(kubernetes_version))
    except ValueError as exc:
        raise InputError("--kubernetes-version", str(exc)) from exc
    arch = layout.check_arch(arch)
    plan = _Plan(
        name=layout.check_build_name(build_name or layout.default_build_name(version, arch)),
        arch=arch,
        kubernetes_version=version,
        cni_version=layout.check_component_version("--cni-version", cni_version),
        crictl_version=layout.check_component_version("--crictl-version", crictl_version),
    )
    if not from_dir.is_dir():
        raise InputError("--from", f"must be an existing directory (got {str(from_dir)!r})")

    for binary in layout.K8S_BINARIES:
        src = layout.find_source(from_dir, binary, arch)
        if src is None:
            tried = ", ".join(layout.source_candidates(binary, arch, version))
            raise InputError("--from", f"must hold the {binary} binary (looked for {tried} in {from_dir})")
        plan.copies[layout.binary_path(binary)] = (src, 0o755)
    for kind, target, ver in (
        ("cni", layout.cni_path(arch), plan.cni_version),
        ("crictl", layout.crictl_path(arch), plan.crictl_version),
    ):
        src = layout.find_source(from_dir, kind, arch, ver)
        if src is None:
            tried = ", ".join(layout.source_candidates(kind, arch, ver))
            raise InputError("--from", f"must hold the {kind} archive (looked for {tried} in {from_dir})")
        plan.copies[target] = (src, 0o644)
    runtime_files, plan.runtime_versions = runtime.plan_runtime(from_dir)
    for rel, src in runtime_files.items():
        plan.copies[rel] = (src, 0o755)
    for unit, default in (
        (layout.KUBELET_SERVICE, kubelet_service(kubelet_path)),
        (layout.KUBEADM_DROPIN, kubeadm_dropin(kubelet_path)),
    ):
        src = layout.find_source(from_dir, unit, arch)
        if src is not None:
            plan.copies[unit] = (src, 0o644)
        else:
            plan.texts[unit] = default

    _yaml(
        "--network-yaml", _resolve_file("--network-yaml", network_yaml, from_dir), plan, layout.NETWORK_YAML
    )
    _yaml(
        "--dashboard-yaml",
        _resolve_file("--dashboard-yaml", dashboard_yaml, from_dir),
        plan,
        layout.DASHBOARD_YAML,
    )
    for option, value, target in (
        ("--autoscaler-yaml", autoscaler_yaml, layout.AUTOSCALER_YAML),
        ("--provider-yaml", provider_yaml, layout.PROVIDER_YAML),
    ):
        if value is not None:
            _yaml(option, _resolve_file(option, value, from_dir), plan, target)

    kubeadm = plan.copies[layout.binary_path("kubeadm")][0]
    plan.image_sources["kubeadm"] = _kubeadm_list(plan, kubeadm, kubeadm_image_list, use_kubeadm, progress)
    if extra_images:
        plan.image_sources["extra"] = [normalize(i) for i in extra_images]

    wanted = list(dict.fromkeys(normalize(i) for refs in plan.image_sources.values() for i in refs))
    images_dir = from_dir / layout.IMAGES_DIR
    found = index_archives(images_dir)
    progress(f"images: {len(wanted)} needed, {len(found)} found in {images_dir}")
    missing = []
    for ref in wanted:
        archive = lookup(ref, found)
        if archive is None:
            missing.append(ref)
        else:
            plan.images[ref] = archive
    if missing:
        raise InputError(
            "--from",
            f"{len(missing)} image(s) missing from {images_dir} (need an OCI or docker archive "
            f"for each): {', '.join(missing)}",
        )
    return plan


def _write(plan: _Plan, staging: Path, progress: Progress) -> Manifest:
    for rel, (src, mode) in sorted(plan.copies.items()):
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(mode)
        progress(f"copied {rel}")
    for rel, text in sorted(plan.texts.items()):
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        dest.chmod(0o644)
    archive_files: dict[Path, str] = {}
    images: dict[str, str] = {}
    for ref, archive in sorted(plan.images.items()):
        known = archive_files.get(archive.path)
        if known is not None:
            rel = known
        else:
            base = layout.image_file_name(archive.refs[0] if archive.refs else ref)
            rel = f"{layout.IMAGES_DIR}/{base}"
            n = 1
            while rel in archive_files.values():
                n += 1
                rel = f"{layout.IMAGES_DIR}/{base[:-4]}-{n}.tar"
            archive_files[archive.path] = rel
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(archive.path, dest)
            dest.chmod(0o644)
            progress(f"image {ref} -> {rel}")
        images[ref] = rel
    files = {}
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        rel = str(path.relative_to(staging))
        files[rel] = FileEntry(sha256=sha256_file(path), size=path.stat().st_size)
    manifest = Manifest(
        name=plan.name,
        arch=plan.arch,
        kubernetes_version=plan.kubernetes_version,
        cni_version=plan.cni_version,
        crictl_version=plan.crictl_version,
        runtime_versions=dict(plan.runtime_versions),
        files=files,
        images=images,
        image_sources={k: list(v) for k, v in plan.image_sources.items()},
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    ).seal()
    (staging / layout.MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def build_bundle(
    output: str | Path,
    kubernetes_version: str,
    cni_version: str,
    crictl_version: str,
    network_yaml: str | Path,
    dashboard_yaml: str | Path,
    build_name: str | None = None,
    *,
    arch: str = "amd64",
    from_dir: str | Path | None = None,
    autoscaler_yaml: str | Path | None = None,
    provider_yaml: str | Path | None = None,
    extra_images: Sequence[str] = (),
    kubeadm_image_list: Sequence[str] | None = None,
    use_kubeadm: bool = True,
    kubelet_path: str = DEFAULT_KUBELET_PATH,
    iso: bool = True,
    force: bool = False,
    online: bool = False,
    progress: Progress | None = None,
) -> BuildResult:
    """Build ``<output>/<build_name>/`` (and ``<output>/<build_name>.iso`` when ``iso``).

    ``from_dir`` holds every artifact (see :mod:`koral_ansible.bundle.layout` for the names
    tried and ``images/`` for the image archives). Without it, ``online=True`` downloads the
    artifacts first into ``<output>/.sources-<build_name>``; otherwise it is an InputError.
    Relative YAML paths are looked up in the working directory, then in ``from_dir``.
    Raises InputError (nothing written) for bad input or missing images, OperationError when
    writing fails.
    """
    say = progress or _noop
    out = Path(output).expanduser().resolve()
    name = build_name or layout.default_build_name(kubernetes_version, arch)
    if from_dir is None:
        if not online:
            raise InputError(
                "--from",
                "required without network access: a directory holding kubeadm, kubelet, kubectl, the "
                "CNI and crictl archives and images/ (or pass --online)",
            )
        layout.check_arch(arch)
        layout.check_build_name(name)
        from_dir = fetch.download_sources(
            out / f".sources-{name}",
            kubernetes_version=kubernetes_version,
            cni_version=cni_version,
            crictl_version=crictl_version,
            arch=arch,
            yamls=[p for p in (network_yaml, dashboard_yaml, autoscaler_yaml, provider_yaml) if p],
            extra_images=extra_images,
            progress=say,
        )
    source = Path(from_dir).expanduser().resolve()
    plan = _plan(
        kubernetes_version=kubernetes_version,
        cni_version=cni_version,
        crictl_version=crictl_version,
        network_yaml=network_yaml,
        dashboard_yaml=dashboard_yaml,
        build_name=build_name,
        arch=arch,
        from_dir=source,
        autoscaler_yaml=autoscaler_yaml,
        provider_yaml=provider_yaml,
        extra_images=extra_images,
        kubeadm_image_list=kubeadm_image_list,
        use_kubeadm=use_kubeadm,
        kubelet_path=kubelet_path,
        progress=say,
    )
    target = out / plan.name
    iso_path = out / f"{plan.name}.iso"
    if not force and (target.exists() or (iso and iso_path.exists())):
        raise InputError("--output", f"{target} or {iso_path} already exists (use --force to replace it)")
    if out == source or source in out.parents or target == source:
        raise InputError("--output", f"must not be inside the source directory {source}")

    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{plan.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        manifest = _write(plan, staging, say)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"bundle directory {target}")
    written_iso = None
    if iso:
        written_iso = make_iso(target, iso_path, layout.volume_id(plan.kubernetes_version))
        say(f"bundle ISO {written_iso}")
    return BuildResult(directory=target, iso=written_iso, manifest=manifest)
