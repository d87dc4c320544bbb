"""``koral-play bundle``: build, verify, register and list Kubernetes binaries bundles (Koral's ISO).

Wire with ``root.add_command(bundle)``. Progress goes to stderr, result paths to stdout,
errors are KoralErrors (exit 2 for bad input, 1 for a failed build or verification).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from koral_ansible.bundle import build_bundle, list_bundles, record_bundle, verify_bundle
from koral_ansible.bundle.iso import is_iso
from koral_ansible.bundle.layout import ARCHES
from koral_ansible.bundle.register import Client, register_bundle, registered_versions
from koral_ansible.cli.common import emit, output_option
from koral_ansible.cli.table import Column
from koral_ansible.errors import InputError
from koral_ansible.paths import Paths


def _root_obj(ctx: click.Context) -> dict[str, object]:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, dict) else {}


def _home(ctx: click.Context) -> Path:
    home = _root_obj(ctx).get("home")
    return Paths.resolve(str(home) if home else None).home


def _progress(ctx: click.Context) -> Callable[[str], None] | None:
    if _root_obj(ctx).get("quiet"):
        return None
    return lambda message: click.echo(f"bundle: {message}", err=True)


@click.group()
def bundle() -> None:
    """Kubernetes binaries bundles: kubeadm/kubelet/kubectl, CNI, crictl, manifests and every image,
    as a directory and an ISO 9660 image, with a verified manifest (works fully offline)."""


@bundle.command()
@click.option(
    "--kubernetes-version", required=True, help="Kubernetes version X.Y.Z (kubeadm, kubelet, kubectl)."
)
@click.option("--cni-version", required=True, help="CNI plugins version X.Y.Z.")
@click.option("--crictl-version", required=True, help="crictl (cri-tools) version X.Y.Z.")
@click.option(
    "--network-yaml", required=True, help="Pod network (CNI) manifest; relative paths may be in --from."
)
@click.option("--dashboard-yaml", required=True, help="Dashboard manifest; relative paths may be in --from.")
@click.option("--autoscaler-yaml", help="Optional cluster-autoscaler manifest (autoscaler.yaml).")
@click.option("--provider-yaml", help="Optional cloud controller manager manifest (provider.yaml).")
@click.option("--name", "build_name", help="Bundle name [default kubernetes-<version>-<arch>].")
@click.option("--arch", default="amd64", show_default=True, help=f"Node architecture: {', '.join(ARCHES)}.")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False),
    help="Directory holding every artifact: k8s/{kubeadm,kubelet,kubectl} (or bare names), the CNI "
    "and crictl release archives, images/*.tar (OCI or docker archives) and optionally kubelet.service "
    "and 10-kubeadm.conf.",
)
@click.option("--image", "extra_images", multiple=True, help="Extra image to include (repeatable).")
@click.option(
    "--kubeadm-image",
    "kubeadm_image_list",
    multiple=True,
    help="Replace kubeadm's image list (repeatable); default: ask kubeadm, else a built-in table.",
)
@click.option(
    "--run-kubeadm/--no-run-kubeadm",
    default=True,
    show_default=True,
    help="Ask the kubeadm binary for its version and image list.",
)
@click.option("--iso/--no-iso", default=True, show_default=True, help="Also write <output>/<name>.iso.")
@click.option(
    "--output",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory receiving <name>/ and <name>.iso.",
)
@click.option("--force", is_flag=True, help="Replace an existing bundle of the same name.")
@click.option("--online", is_flag=True, help="Download missing artifacts and images (needs network).")
@click.pass_context
def build(
    ctx: click.Context,
    kubernetes_version: str,
    cni_version: str,
    crictl_version: str,
    network_yaml: str,
    dashboard_yaml: str,
    autoscaler_yaml: str | None,
    provider_yaml: str | None,
    build_name: str | None,
    arch: str,
    from_dir: str | None,
    extra_images: tuple[str, ...],
    kubeadm_image_list: tuple[str, ...],
    run_kubeadm: bool,
    iso: bool,
    output: str,
    force: bool,
    online: bool,
) -> None:
    """Build a bundle (the inputs of Koral's create-kubernetes-binaries-iso.sh, as flags).

    Example (offline):

        koral-play bundle build --kubernetes-version 1.31.4 --cni-version 1.5.1 \\
          --crictl-version 1.31.1 --network-yaml weave.yaml --dashboard-yaml dashboard.yaml \\
          --from ./sources --output ./bundles
    """
    result = build_bundle(
        output,
        kubernetes_version,
        cni_version,
        crictl_version,
        network_yaml,
        dashboard_yaml,
        build_name,
        arch=arch,
        from_dir=from_dir,
        autoscaler_yaml=autoscaler_yaml,
        provider_yaml=provider_yaml,
        extra_images=extra_images,
        kubeadm_image_list=list(kubeadm_image_list) or None,
        use_kubeadm=run_kubeadm,
        iso=iso,
        force=force,
        online=online,
        progress=_progress(ctx),
    )
    record_bundle(_home(ctx), result.manifest, result.directory, result.iso)
    click.echo(str(result.directory))
    if result.iso is not None:
        click.echo(str(result.iso))


@bundle.command()
@click.argument("path", type=click.Path())
@click.option("--quick", is_flag=True, help="Check presence and sizes only, no sha256.")
@click.option("--record", is_flag=True, help="Add the verified bundle to the local bundle list.")
@click.pass_context
def verify(ctx: click.Context, path: str, quick: bool, record: bool) -> None:
    """Verify a bundle directory or ISO against its manifest (exit 1 naming the first bad file)."""
    manifest = verify_bundle(path, deep=not quick)
    if record:
        target = Path(path).resolve()
        iso = target if is_iso(target) else None
        record_bundle(_home(ctx), manifest, None if iso else target, iso)
    click.echo(
        f"{path}: ok ({manifest.name}, kubernetes {manifest.kubernetes_version}, {manifest.arch}, "
        f"{len(manifest.files)} files, {len(manifest.images)} images, checksum {manifest.checksum})"
    )


PROVIDERS = ("local", "cloudstack", "mold")


def _check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise InputError("--provider", f"must be one of {', '.join(PROVIDERS)} (got {provider!r})")
    return "cloudstack" if provider == "mold" else provider


def _cloud_client() -> Client:
    """A CloudStack client from CLOUDSTACK_* / cloudstack.ini (replaced in tests)."""
    from koral_ansible.providers.cloudstack.client import CloudClient
    from koral_ansible.providers.cloudstack.config import load_config

    return CloudClient(load_config())


@bundle.command()
@click.argument("path", type=click.Path())
@click.option("--provider", default="local", show_default=True, help=f"Where: {', '.join(PROVIDERS)}.")
@click.option("--url", help="cloudstack: http(s) URL the cloud downloads the ISO from.")
@click.option("--zone", help="cloudstack: zone name or id [default: all zones].")
@click.option("--name", "display_name", help="cloudstack: version name [default: the bundle's name].")
@click.option("--min-cpu", type=int, default=2, show_default=True, help="cloudstack: minimum vCPUs of nodes.")
@click.option(
    "--min-memory",
    type=int,
    default=2048,
    show_default=True,
    help="cloudstack: minimum MiB of memory of nodes.",
)
@click.pass_context
def register(
    ctx: click.Context,
    path: str,
    provider: str,
    url: str | None,
    zone: str | None,
    display_name: str | None,
    min_cpu: int,
    min_memory: int,
) -> None:
    """Make a bundle selectable by version: verify and record it locally (--provider local), or
    register its ISO in Mold / CloudStack (addKubernetesSupportedVersion; exit 2 when the cloud's
    Kubernetes service is off)."""
    where = _check_provider(provider)
    target = Path(path).expanduser().resolve()
    if where == "local":
        manifest = verify_bundle(target)
        iso = target if is_iso(target) else None
        record_bundle(_home(ctx), manifest, None if iso else target, iso)
        click.echo(f"{manifest.name}\t{manifest.kubernetes_version}\tlocal\t{target}")
        return
    if not url:
        raise InputError(
            "--url", "required with --provider cloudstack: where the cloud downloads the ISO from"
        )
    result = register_bundle(
        _cloud_client(), target, url, zone=zone, name=display_name, min_cpu=min_cpu, min_memory_mb=min_memory
    )
    click.echo(f"{result.name}\t{result.kubernetes_version}\t{result.kind}\t{result.id}\t{result.state}")


@bundle.command(name="list")
@click.option(
    "--provider",
    default="local",
    show_default=True,
    help="local: bundles on this machine; cloudstack: in the cloud.",
)
@output_option
@click.pass_context
def list_(ctx: click.Context, provider: str, output: str) -> None:
    """List bundles, newest Kubernetes version first: built or recorded on this machine, or the
    Kubernetes versions registered in Mold / CloudStack (--provider cloudstack).
    -o wide adds the full sha256 checksum and when the bundle was recorded."""
    if _check_provider(provider) == "cloudstack":
        versions = [
            {
                "name": v.name,
                "version": v.kubernetes_version,
                "id": v.id,
                "state": v.state,
                "zone": v.zone,
            }
            for v in registered_versions(_cloud_client())
        ]
        emit(versions, output, CLOUD_COLUMNS, empty="No Kubernetes versions registered.")
        return
    rows = [
        {
            "name": r.name,
            "version": r.kubernetes_version,
            "arch": r.arch,
            "iso": r.iso,
            "directory": r.directory,
            "checksum": r.checksum,
            "recorded": r.recorded,
        }
        for r in list_bundles(_home(ctx))
    ]
    emit(rows, output, LOCAL_COLUMNS, empty="No bundles recorded.")


LOCAL_COLUMNS = (
    Column("name"),
    Column("version"),
    Column("arch"),
    Column("iso"),
    Column("directory"),
    Column("checksum", wide=True),
    Column("recorded", wide=True),
)
CLOUD_COLUMNS = (Column("name"), Column("version"), Column("state"), Column("zone"), Column("id"))
