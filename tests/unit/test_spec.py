"""Every spec rule, with good and bad input; errors are one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koral_ansible import versions
from koral_ansible.errors import InputError
from koral_ansible.spec import load_spec, max_cluster_size, validate_spec
from tests.versions import NEXT_PATCH, OLDER, TOO_FAR, UPGRADE_FROM, UPGRADE_TO


def spec(**kw: object) -> dict[str, object]:
    return {"name": "demo", **kw}


def test_defaults() -> None:
    s = validate_spec(spec())
    assert (s.provider, s.cni, s.control_nodes, s.size) == ("local", "weave", 1, 1)
    assert s.kubernetes_version == versions.DEFAULT_VERSION
    assert not s.ha and s.node_count == 2


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (spec(name="Demo"), "name", "a-z"),
        (spec(name="my cluster"), "name", "a-z"),
        (spec(name="a" * 33), "name", "1-32"),
        (spec(name="-x"), "name", "starting with a letter"),
        (spec(name="x-"), "name", "not ending"),
        (spec(size=0), "size", "from 1 to 10"),
        (spec(size=-1), "size", "from 1 to 10"),
        (spec(size=11), "size", "from 1 to 10"),
        (spec(size="many"), "size", "integer"),
        (spec(control_nodes=2), "control_nodes", "odd"),
        (spec(control_nodes=0), "control_nodes", "odd"),
        (spec(control_nodes=9), "control_nodes", "1 to 7"),
        (spec(cpu=1), "cpu", "2 to 64"),
        (spec(memory=1024), "memory", "2048"),
        (spec(root_disk_size=7), "root_disk_size", "from 8"),
        (spec(cni="flannel"), "cni", "weave, calico"),
        (spec(provider="aws"), "provider", "local, cloudstack"),
        (spec(provider="cloudstack"), "compute_offering", "required"),
        (spec(kubernetes_version="1.31"), "kubernetes_version", "X.Y.Z"),
        (spec(kubernetes_version="1.12.0"), "kubernetes_version", "supported"),
        (spec(pod_cidr="10.244.0.0/33"), "pod_cidr", "CIDR"),
        (spec(pod_cidr="10.244.0.1/16"), "pod_cidr", "host bits"),
        (spec(service_cidr="banana"), "service_cidr", "CIDR"),
        (spec(pod_cidr="10.96.0.0/16"), "pod_cidr", "overlaps service_cidr"),
        (spec(external_lb_ip="300.1.1.1"), "external_lb_ip", "IPv4"),
        (spec(allowed_cidrs=[]), "allowed_cidrs", "at least one"),
        (spec(allowed_cidrs=["nope"]), "allowed_cidrs", "IPv4 CIDRs"),
        (spec(registry={"url": "ftp://x"}), "registry.url", "http"),
        (spec(registry={"url": "http://r:5000", "username": "u"}), "registry", "together"),
        (spec(registry={"url": "http://r:5000", "colour": "red"}), "registry.colour", "allowed fields"),
        (spec(colour="red"), "colour", "allowed fields"),
        (spec(description="x" * 256), "description", "255"),
        (spec(network=""), "network", "empty"),
        ({"size": 1}, "name", "required"),
    ],
)
def test_bad_input(data: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        load_spec(None, data)
    assert err.value.field == field, str(err.value)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_secret_never_in_error() -> None:
    with pytest.raises(InputError) as err:
        validate_spec(spec(registry={"url": "http://r:5000", "password": "s3cr3t-pass"}))
    assert "s3cr3t-pass" not in str(err.value)


def test_max_size_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KORAL_CLUSTER_MAX_SIZE", "20")
    assert max_cluster_size() == 20
    assert validate_spec(spec(size=15)).size == 15
    monkeypatch.setenv("KORAL_CLUSTER_MAX_SIZE", "zero")
    with pytest.raises(InputError, match="KORAL_CLUSTER_MAX_SIZE"):
        validate_spec(spec())


def test_provider_alias_and_flags_override_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("name: demo\nsize: 2\nprovider: mold\ncompute_offering: medium\nzone: z1\n")
    s = load_spec(f, {"size": "3"})
    assert (s.provider, s.size, s.zone) == ("cloudstack", 3, "z1")


def test_kubernetes_style_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("kind: Cluster\nmetadata: {name: kdemo}\nspec: {size: 2, cni: calico}\n")
    s = load_spec(f)
    assert (s.name, s.cni) == ("kdemo", "calico")


def test_malformed_yaml(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("name: [demo\n")
    with pytest.raises(InputError, match=r"not valid YAML at line"):
        load_spec(f)
    f.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="mapping"):
        load_spec(f)
    with pytest.raises(InputError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_public_dict_masks_secrets() -> None:
    s = validate_spec(
        spec(
            registry={"url": "http://r:5000", "username": "u", "password": "pw-123456"},
            weave_password="wv-123456",
        )
    )
    text = str(s.public_dict())
    assert "pw-123456" not in text and "wv-123456" not in text
    assert s.secrets() == {"registry.password": "pw-123456", "weave_password": "wv-123456"}
    assert s.registry is not None and s.registry.host == "r:5000"


def test_versions() -> None:
    assert versions.kubeadm_api_version("1.30.2") == "kubeadm.k8s.io/v1beta3"
    assert versions.kubeadm_api_version("1.31.0") == "kubeadm.k8s.io/v1beta4"
    assert str(versions.check_upgrade(UPGRADE_FROM, UPGRADE_TO)) == UPGRADE_TO
    assert str(versions.check_upgrade(UPGRADE_FROM, NEXT_PATCH)) == NEXT_PATCH
    for bad in (TOO_FAR, OLDER, UPGRADE_FROM):
        with pytest.raises(ValueError):
            versions.check_upgrade(UPGRADE_FROM, bad)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["name", "size", "cpu", "cni", "pod_cidr", "control_nodes", "zone"]),
        st.one_of(st.text(max_size=20), st.integers(-5, 50), st.none()),
    )
)
def test_parser_never_crashes(data: dict[str, object]) -> None:
    """Any input either validates or raises one InputError line; never another exception."""
    try:
        load_spec(None, data)
    except InputError as exc:
        assert "\n" not in str(exc) and exc.field
