"""The preflight role's cgroup check, run for real on this machine (a cgroup v1 host here): a
cgroup v1 node fails naming itself unless the cluster opted in or the release's kubelet still runs
on cgroup v1; the fact it records is the node's cgroup version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from koral_ansible import cgroup

REPO = Path(__file__).resolve().parents[2]
PLAY = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_tasks: {tasks}
    - ansible.builtin.copy:
        content: "{{{{ preflight_node_cgroup_version }}}}"
        dest: {out}
        mode: "0600"
"""


def _play(tmp_path: Path, allow: bool, fails: bool) -> tuple[int, str, str]:
    out = tmp_path / "version"
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(tasks=REPO / "roles/preflight/tasks/cgroup.yml", out=out))
    extra = {
        "preflight_allow_cgroup_v1": allow,
        "preflight_kubelet_fails_cgroup_v1": fails,
        "koral_kubernetes_version": "1.37.1",
        "ansible_python_interpreter": sys.executable,
    }
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            str(play),
            "-e",
            json.dumps(extra),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr, out.read_text() if out.exists() else ""


@pytest.mark.skipif(cgroup.cgroup_version() != 1, reason="needs a cgroup v1 host")
def test_cgroup_v1_host_needs_the_opt_in(tmp_path: Path) -> None:
    code, text, _ = _play(tmp_path, allow=False, fails=True)
    assert code != 0
    assert "preflight: localhost is a cgroup v1 host (tmpfs on /sys/fs/cgroup)" in text
    assert "set allow_cgroup_v1: true (--allow-cgroup-v1)" in text
    code, text, version = _play(tmp_path, allow=True, fails=True)
    assert code == 0, text
    assert version == "1"
    code, text, version = _play(tmp_path, allow=False, fails=False)  # a 1.34 kubelet runs on v1
    assert code == 0, text
