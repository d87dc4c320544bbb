"""build_create_spec: the one builder of create's ClusterSpec, for the CLI's flags and the console."""

from __future__ import annotations

import pytest

from koral_ansible.create_input import CREATE_FIELDS, build_create_spec
from koral_ansible.errors import InputError


def test_fields_are_the_cli_create_flags() -> None:
    from koral_ansible.cli.root import create

    flags = {p.name for p in create.params} - {
        "name",
        "spec_file",
        "registry_password",
        "registry_password_file",
        "merge_kubeconfig",
        "set_current",
        "dashboard",
    }
    assert flags == set(CREATE_FIELDS)


def test_ha_registry_and_password() -> None:
    spec = build_create_spec(
        "demo",
        {"ha": True, "size": "2", "registry_url": "http://10.0.0.1:5000", "registry_username": "u"},
        registry_password="pw-123456",
    )
    assert (spec.control_nodes, spec.size) == (3, 2)
    assert spec.registry is not None and spec.registry.username == "u"
    assert spec.registry.password is not None and spec.registry.password.get_secret_value() == "pw-123456"
    assert build_create_spec("demo", {"ha": True, "control_nodes": 5}).control_nodes == 5
    assert build_create_spec("demo", {"ha": None, "size": None}).control_nodes == 1


def test_unknown_field_and_bad_value_name_the_field() -> None:
    with pytest.raises(InputError) as exc:
        build_create_spec("demo", {"registry_password": "x"})
    assert exc.value.field == "registry_password" and "allowed: description" in exc.value.problem
    with pytest.raises(InputError) as exc:
        build_create_spec("demo", {"service_cidr": "nope"})
    assert exc.value.field == "service_cidr"
    with pytest.raises(InputError) as exc:
        build_create_spec(None, {})
    assert exc.value.field == "name"
