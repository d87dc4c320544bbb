"""Locate the Ansible content (playbooks, roles, ansible.cfg) shipped with koral-ansible.

In a wheel the content is package data under ``koral_ansible/_ansible`` (found with
importlib.resources); in a source checkout / editable install it is the repository root.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from koral_ansible.errors import OperationError


@cache
def ansible_root() -> Path:
    """Directory holding ``playbooks/``, ``roles/`` and ``ansible.cfg``."""
    packaged = Path(str(resources.files("koral_ansible") / "_ansible"))
    if (packaged / "playbooks").is_dir():
        return packaged
    source = Path(__file__).resolve().parent.parent
    if (source / "playbooks").is_dir():
        return source
    raise OperationError("cannot find koral-ansible's playbooks (broken installation?)")


def playbook(name: str) -> Path:
    """``playbooks/<name>`` of the shipped content, or ``name`` itself when it is an absolute path."""
    path = Path(name) if Path(name).is_absolute() else ansible_root() / "playbooks" / name
    if not path.is_file():
        raise OperationError(f"playbook {name} is missing from {path.parent}")
    return path
