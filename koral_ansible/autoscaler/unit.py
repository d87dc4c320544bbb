"""A systemd unit running ``koral-play autoscaler serve`` for one cluster next to koral's state.

Install as ``/etc/systemd/system/koral-autoscaler-<cluster>.service``. SIGTERM stops the
service; a scale operation running at that moment is recorded as interrupted and can be re-run.
"""

from __future__ import annotations

from collections.abc import Sequence


def unit_name(cluster: str) -> str:
    return f"koral-autoscaler-{cluster}.service"


def systemd_unit(
    cluster: str,
    listen: str,
    sans: Sequence[str] = (),
    koral_play: str = "/usr/local/bin/koral-play",
    home: str | None = None,
) -> str:
    args = [koral_play, "autoscaler", "serve", "--cluster", cluster, "--listen", listen]
    for san in sans:
        args += ["--san", san]
    env = f'Environment="KORAL_HOME={home}"\n' if home else ""
    return f"""\
[Unit]
Description=koral-play autoscaler service (cluster-autoscaler externalgrpc) for cluster {cluster}
Wants=network-online.target
After=network-online.target

[Service]
{env}ExecStart={" ".join(args)}
Restart=on-failure
RestartSec=5
UMask=0077

[Install]
WantedBy=multi-user.target
"""
