"""The ngine_io.cloudstack collection, unchanged, against the test cloud (loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cloudsim import CloudSim

PLAY = Path(__file__).with_name("ngine_io_play.yml")


def test_ngine_io_modules_work_unchanged(cloudsim: CloudSim, tmp_path: Path) -> None:
    cloudsim.set_latency(0)  # jobs finish at once: cs polls every 2 s otherwise
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    # The test cloud enforces POST for state-changing commands (enforce.post.requests.and.timestamps):
    # ngine_io's api_http_method (env CLOUDSTACK_METHOD) must be post, as on such a real cloud.
    env.update(
        cloudsim.client_env(), CLOUDSTACK_METHOD="post", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"
    )
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(PLAY),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "failed=0" in out.stdout
    assert not [c for c in cloudsim.calls if c.startswith("?")], "commands the simulator lacks"
    for cmd in (
        "deployVirtualMachine",
        "getVirtualMachineUserData",
        "createPortForwardingRule",
        "createFirewallRule",
        "createLoadBalancerRule",
        "assignToLoadBalancerRule",
        "destroyVirtualMachine",
        "deleteNetwork",
    ):
        assert cmd in cloudsim.calls
    cloudsim.wait_idle()
    assert cloudsim.counts() == dict.fromkeys(cloudsim.counts(), 0)
