"""The runner wrapper against a real ansible-runner run on localhost: events, failures, secrets."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from koral_ansible.paths import Paths
from koral_ansible.progress import LineProgress
from koral_ansible.redact import Redactor
from koral_ansible.runner import PlaybookRunner

SECRET = "runner-secret-4711"

PLAYBOOK = """
- name: Exercise the runner
  hosts: all
  gather_facts: false
  tasks:
    - name: Use the secret without logging it
      ansible.builtin.command: "echo {{ registry_password }}"
      changed_when: true
      no_log: true
    - name: Say hello
      ansible.builtin.debug:
        msg: "hello {{ greeting }}"
    - name: Fail when asked, leaking the secret into the message on purpose
      ansible.builtin.fail:
        msg: "boom {{ registry_password }}"
      when: fail_now | bool
"""


def inventory() -> dict[str, object]:
    return {
        "all": {
            "hosts": {"node-a": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
        }
    }


@pytest.fixture()
def playbook(tmp_path: Path) -> Path:
    p = tmp_path / "play.yml"
    p.write_text(PLAYBOOK)
    return p


def run(tmp_path: Path, playbook: Path, fail: bool) -> tuple[object, str]:
    stream = io.StringIO()
    red = Redactor()
    progress = LineProgress("test", red, stream=stream)
    runner = PlaybookRunner(
        Paths.resolve(tmp_path / "home"), "demo", "create", progress=progress, redactor=red
    )
    result = runner.run(
        str(playbook),
        inventory(),
        extravars={"greeting": "world", "fail_now": fail},
        secrets={"registry_password": SECRET},
    )
    return result, stream.getvalue()


def grep_secret(root: Path) -> list[str]:
    proc = subprocess.run(["grep", "-rl", SECRET, str(root)], capture_output=True, text=True, check=False)
    return proc.stdout.split()


def test_success_counts_changes_and_keeps_secret_out(
    tmp_path: Path, playbook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDSTACK_SECRET", "cloud-api-secret-0815")
    result, out = run(tmp_path, playbook, fail=False)
    proc = subprocess.run(
        ["grep", "-rl", "cloud-api-secret-0815", str(tmp_path)], capture_output=True, check=False
    )
    assert proc.stdout == b"", "the environment's cloud secret must not land in runner artifacts"
    assert os.environ["CLOUDSTACK_SECRET"] == "cloud-api-secret-0815", "restored after the run"
    assert result.ok, result.summary()  # type: ignore[attr-defined]
    env = (result.data_dir / "artifacts" / "run" / "command").read_text()  # type: ignore[attr-defined]
    assert '"ANSIBLE_HOST_KEY_CHECKING": "True"' in env
    assert result.changed == 1  # type: ignore[attr-defined]
    assert "play: Exercise the runner" in out
    assert (result.data_dir / "artifacts" / "run" / "job_events").is_dir()  # type: ignore[attr-defined]
    assert grep_secret(tmp_path) == []
    assert not list(Path("/tmp").glob("koral-secrets-*/secrets.json"))


def test_failure_names_host_task_and_redacts(tmp_path: Path, playbook: Path) -> None:
    result, out = run(tmp_path, playbook, fail=True)
    assert not result.ok  # type: ignore[attr-defined]
    summary = result.summary()  # type: ignore[attr-defined]
    assert "node-a" in summary and "Fail when asked" in summary and "boom ********" in summary
    assert SECRET not in summary and SECRET not in out
    assert "FAILED node-a" in out
    assert grep_secret(tmp_path) == [], "a secret printed by a task is scrubbed from the artifacts"


def test_untuned_run_uses_ansible_defaults(tmp_path: Path, playbook: Path) -> None:
    """The benchmark's baseline: same playbook, Ansible's own defaults instead of ansible.cfg."""
    runner = PlaybookRunner(Paths.resolve(tmp_path / "home"), "demo", "create", tuned=False)
    result = runner.run(
        str(playbook),
        inventory(),
        extravars={"greeting": "x", "fail_now": False},
        secrets={"registry_password": SECRET},
    )
    assert result.ok, result.summary()
    command = (result.data_dir / "artifacts" / "run" / "command").read_text()
    assert '"ANSIBLE_PIPELINING": "False"' in command and "ansible-defaults.cfg" in command


def test_failure_message_keeps_command_stderr() -> None:
    from koral_ansible.progress import failure_message

    ev = {"event_data": {"res": {"msg": "non-zero return code", "stderr": "line1\nkubeadm: bad flag --x"}}}
    assert failure_message(ev) == "non-zero return code: line1 kubeadm: bad flag --x"
    assert failure_message({"event_data": {"res": {"msg": "boom", "stderr": "ignored"}}}) == "boom"
    assert failure_message({"event_data": {"res": {"censored": "hidden"}}}) == "hidden"
