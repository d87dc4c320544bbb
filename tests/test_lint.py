"""Lint gates for the Ansible content: ansible-lint (production profile) and yamllint.

Both read their settings from the repository root (.ansible-lint, .yamllint), exactly as CI and a
developer running them by hand do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "NO_COLOR": "1", "PY_COLORS": "0"}
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=900)


def test_ansible_lint_production_profile() -> None:
    proc = _run([_tool("ansible-lint"), "--profile", "production", "--nocolor", "-q"])
    assert proc.returncode == 0, f"ansible-lint found problems:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"


def test_yamllint() -> None:
    proc = _run([_tool("yamllint"), "--format", "parsable", "."])
    assert proc.returncode == 0, f"yamllint found errors:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
