"""A systemd unit running ``koral-play loadbalancer serve`` for every local cluster of one koral home.

Install as ``/etc/systemd/system/koral-loadbalancer.service`` on the host of the local nodes.
"""

from __future__ import annotations

UNIT_NAME = "koral-loadbalancer.service"
RESYNC = 60.0  # seconds between full passes of ``serve`` (changes are watched; this is the safety net)


def systemd_unit(koral_play: str, home: str, interval: float = RESYNC) -> str:
    return f"""\
[Unit]
Description=koral-play LoadBalancer Services of local clusters (host nftables)
Wants=network-online.target
After=network-online.target

[Service]
Environment="KORAL_HOME={home}"
ExecStart={koral_play} loadbalancer serve --interval {interval:g}
Restart=on-failure
RestartSec=5
UMask=0077

[Install]
WantedBy=multi-user.target
"""
