"""Default kubelet systemd units shipped in a bundle when the source directory has none.

They follow the unit and drop-in documented for kubeadm installs: the drop-in passes the
bootstrap kubeconfig, the kubelet config file and the flags kubeadm writes to
``/var/lib/kubelet/kubeadm-flags.env``.
"""

from __future__ import annotations

DEFAULT_KUBELET_PATH = "/usr/bin/kubelet"


def kubelet_service(kubelet_path: str = DEFAULT_KUBELET_PATH) -> str:
    return f"""\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={kubelet_path}
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""


def kubeadm_dropin(kubelet_path: str = DEFAULT_KUBELET_PATH) -> str:
    return f"""\
# Installed from a koral-ansible bundle: kubelet flags for clusters made by kubeadm.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart={kubelet_path} $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS \
$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""
