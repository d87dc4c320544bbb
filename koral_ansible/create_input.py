"""The create request as the user gives it (CLI flags or the console's form) -> a validated ClusterSpec.

One builder for both front ends: ``koral-play create`` passes its flags, the console's jobs pass
the form's fields; the same names, the same checks, the same InputError fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from koral_ansible.errors import InputError
from koral_ansible.spec import ClusterSpec, load_spec

#: Every create input besides the name, the spec file and the registry password (a secret,
#: given separately). Names are the CLI's flags with dashes as underscores.
CREATE_FIELDS = (
    "description",
    "provider",
    "zone",
    "kubernetes_version",
    "compute_offering",
    "cpu",
    "memory",
    "root_disk_size",
    "network",
    "control_nodes",
    "ha",
    "external_lb_ip",
    "size",
    "ssh_keypair",
    "registry_url",
    "registry_username",
    "cni",
    "pod_cidr",
    "service_cidr",
    "allowed_cidrs",
    "bundle",
    "node_os",
    "allow_cgroup_v1",
)


def build_create_spec(
    name: str | None,
    fields: dict[str, Any],
    registry_password: str | None = None,
    spec_file: str | Path | None = None,
    max_size: int | None = None,
) -> ClusterSpec:
    """The ClusterSpec ``create`` builds: spec file values, then ``fields`` (None = not given)."""
    unknown = sorted(set(fields) - set(CREATE_FIELDS))
    if unknown:
        raise InputError(unknown[0], f"is not a create field; allowed: {', '.join(CREATE_FIELDS)}")
    flags = dict(fields)
    ha = flags.pop("ha", None)
    overrides: dict[str, Any] = {"name": name}
    for key in ("registry_url", "registry_username"):
        value = flags.pop(key, None)
        if value is not None:
            overrides[f"registry.{key.split('_', 1)[1]}"] = value
    if registry_password is not None:
        overrides["registry.password"] = registry_password
    if ha and flags.get("control_nodes") is None:
        flags["control_nodes"] = 3  # in flags: overrides.update(flags) would put None back
    overrides.update(flags)
    return load_spec(spec_file, overrides, max_size=max_size)
