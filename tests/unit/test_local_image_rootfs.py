"""The node image recipe: binaries only the test doubles use are out of PATH (real kubeadm nodes
have no etcd or etcdctl), in the etcd image's filesystem the doubles look in."""

from __future__ import annotations

import os
from pathlib import Path

from koral_ansible.providers.local import image
from tests.doubles import k8s_double


def test_etcd_binaries_leave_path_for_the_double_images_tree(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "root").mkdir(parents=True)
    for rel in ("usr/bin/etcd", "usr/bin/etcdctl", "etc/ssh/ssh_host_rsa_key", "var/lib/dbus/machine-id"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    image.customize_rootfs(root)
    assert not (root / "usr/bin/etcd").exists() and not (root / "usr/bin/etcdctl").exists()
    for installed, moved in image.DOUBLE_ONLY_BINARIES.items():
        assert (root / moved.lstrip("/")).read_text() == installed.lstrip("/")
    dropin = root / "etc/systemd/system/etcd.service.d/10-koral-double-images.conf"
    assert f"ExecStart={image.DOUBLE_IMAGES_DIR}/etcd/usr/bin/etcd $DAEMON_ARGS" in dropin.read_text()
    # The doubles look exactly there first (the etcd static pod, kubeadm's etcd member add/remove).
    bin_dir = os.path.dirname(image.DOUBLE_ONLY_BINARIES["/usr/bin/etcdctl"])
    assert os.environ.get("KORAL_DOUBLE_ETCD_IMAGE_BIN") or bin_dir == k8s_double.ETCD_IMAGE_BIN
    assert k8s_double.IMAGE_PATH.split(os.pathsep)[0] == k8s_double.ETCD_IMAGE_BIN
