"""Deploying cluster-autoscaler on ``autoscale --enable`` and removing it on ``--disable``.

The ON_CHANGE hook's service address and playbook variables, the cluster_autoscaler role's
manifests (rendered, then read by the doubles' strict YAML reader) and image filter, the
systemd unit command, and ``delete`` forgetting the autoscaling record and certificates.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jinja2
import pytest
import yaml

from koral_ansible.autoscaler import deploy, settings
from koral_ansible.autoscaler.certs import ensure_certs
from koral_ansible.cli import autoscale as cli_autoscale
from koral_ansible.cli.common import run_cli
from koral_ansible.errors import InputError
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec
from koral_ansible.state import NodeRecord, StateStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
import k8s_double as kd

delete_op = importlib.import_module("koral_ansible.operations.delete")
REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "cluster_autoscaler"


def _filter_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "ca_filter", ROLE / "filter_plugins" / "cluster_autoscaler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    h = tmp_path / "home"
    monkeypatch.setenv("KORAL_HOME", str(h))
    monkeypatch.delenv("KORAL_CLUSTER_MAX_SIZE", raising=False)
    paths = Paths.resolve(h, tmp_path / "cache")
    store = StateStore(paths)
    store.add_cluster(validate_spec({"name": "demo", "size": 1}))
    store.set_endpoint("demo", {"public_ip": "10.1.0.1"})
    store.upsert_node("demo", NodeRecord("demo-control-1", "control", 0, state="Running"))
    store.upsert_node("demo", NodeRecord("demo-node-1", "worker", 1, state="Running"))
    store.close()
    yield paths


@click.group()
@click.pass_context
def group(ctx: click.Context) -> None:
    ctx.ensure_object(dict)
    ctx.obj.update(home=None, verbose=False, quiet=True)


group.add_command(cli_autoscale.autoscale)
group.add_command(cli_autoscale.autoscaler)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(group, args)
    out, err = capsys.readouterr()
    return code, out, err


# ---- service address and playbook variables -----------------------------------------------------


def test_service_address_defaults_to_the_local_gateway_and_is_required_on_clouds(home: Paths) -> None:
    store = StateStore(home)
    record = store.get_cluster("demo")
    store.close()
    assert deploy.service_address(record, None) == "10.1.0.1:8086"
    assert deploy.service_address(record, "192.0.2.5:9000") == "192.0.2.5:9000"
    with pytest.raises(InputError) as bad:
        deploy.service_address(record, "192.0.2.5")
    assert bad.value.field == "--service-address"
    record.provider = "cloudstack"
    with pytest.raises(InputError, match="required for cloudstack"):
        deploy.service_address(record, None)


def test_enable_records_the_address_and_runs_the_hook(
    home: Paths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[settings.AutoscaleSettings] = []
    monkeypatch.setattr(cli_autoscale, "ON_CHANGE", [lambda _e, _n, s: seen.append(s)])
    code, out, err = cli(["autoscale", "demo", "--enable", "--min", "1", "--max", "3", "-o", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["service_address"] == "10.1.0.1:8086"
    code, _, err = cli(
        ["autoscale", "demo", "--enable", "--min", "1", "--max", "4", "--service-address", "10.1.0.1:9999"],
        capsys,
    )
    assert code == 0, err
    assert cli(["autoscale", "demo", "--disable"], capsys)[0] == 0
    assert [(s.enabled, s.max_size, s.service_address) for s in seen] == [
        (True, 3, "10.1.0.1:8086"),
        (True, 4, "10.1.0.1:9999"),
        (False, 4, "10.1.0.1:9999"),
    ]
    code, _, err = cli(["autoscale", "demo", "--disable", "--service-address", "1.2.3.4:1"], capsys)
    assert code == 2 and "--service-address" in err


def test_default_hook_is_the_deployment() -> None:
    assert deploy.apply_autoscaler in cli_autoscale.ON_CHANGE


def test_role_vars_carry_paths_never_key_material(home: Paths) -> None:
    env = Env.open(str(home.home), quiet=True)
    on = settings.AutoscaleSettings(True, 1, 3, "", "10.1.0.1:8086")
    extra = deploy.role_vars(env, "demo", on)
    assert extra["cluster_autoscaler_state"] == "present"
    assert extra["cluster_autoscaler_service_address"] == "10.1.0.1:8086"
    assert (extra["cluster_autoscaler_min_size"], extra["cluster_autoscaler_max_size"]) == (1, 3)
    for key in ("ca_cert", "client_cert", "client_key"):
        assert Path(extra[f"cluster_autoscaler_{key}_file"]).is_file()
    assert "PRIVATE KEY" not in json.dumps(extra) and "CERTIFICATE" not in json.dumps(extra)
    off = deploy.role_vars(env, "demo", settings.AutoscaleSettings(False, 1, 3, "", "10.1.0.1:8086"))
    assert off == {"cluster_autoscaler_state": "absent"}
    env.store.close()


# ---- the role's manifests -------------------------------------------------------------------------


def _render(template: str, **overrides: Any) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["to_json"] = json.dumps
    variables = {
        **yaml.safe_load((ROLE / "vars" / "main.yml").read_text()),
        "ansible_managed": "Ansible managed",
        "cluster_autoscaler_cluster_name": "demo",
        "cluster_autoscaler_name": "cluster-autoscaler",
        "cluster_autoscaler_namespace": "kube-system",
        "cluster_autoscaler_service_address": "10.1.0.1:8086",
        "cluster_autoscaler_cert_mount": "/etc/koral-autoscaler",
        "cluster_autoscaler_grpc_timeout": "30m",
        "cluster_autoscaler_min_size": 1,
        "cluster_autoscaler_max_size": 3,
        "cluster_autoscaler_extra_args": {"scale-down-unneeded-time": "5m"},
        "__cluster_autoscaler_image_ref": "10.1.0.1:5000/autoscaling/cluster-autoscaler:v1.31.0",
        **overrides,
    }
    return env.get_template(template).render(**variables)


def test_manifest_is_read_by_kubectl_and_configures_externalgrpc() -> None:
    docs = kd.yaml_load_all(_render("cluster-autoscaler.yaml.j2"))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
    }
    assert yaml.safe_load(kinds["ConfigMap"]["data"]["cloud-config"]) == {
        "address": "10.1.0.1:8086",
        "cacert": "/etc/koral-autoscaler/ca.crt",
        "cert": "/etc/koral-autoscaler/client.crt",
        "key": "/etc/koral-autoscaler/client.key",
        "grpc_timeout": "30m",
    }
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "10.1.0.1:5000/autoscaling/cluster-autoscaler:v1.31.0"
    assert container["args"][:3] == [
        "--cloud-provider=externalgrpc",
        "--cloud-config=/config/cloud-config",
        "--nodes=1:3:demo",
    ]
    assert "--scale-down-unneeded-time=5m" in container["args"]
    secret = next(v for v in pod["volumes"] if v["name"] == "certs")["secret"]
    assert secret == {"secretName": "cluster-autoscaler-certs", "defaultMode": 0o400}


def test_removal_lists_every_applied_object() -> None:
    applied = {
        (d["kind"], d["metadata"]["name"]) for d in kd.yaml_load_all(_render("cluster-autoscaler.yaml.j2"))
    }
    listed = kd.yaml_load_all(_render("objects.yaml.j2"))
    names = {(d["kind"], d["metadata"]["name"]) for d in listed}
    assert names == applied | {("Secret", "cluster-autoscaler-certs")}
    assert all(("namespace" in d["metadata"]) != d["kind"].startswith("Cluster") for d in listed)


def test_image_filter_bundle_manifest_fallback_and_registry() -> None:
    pick = _filter_module().cluster_autoscaler_image
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: cluster-autoscaler}\nspec:\n  template:\n"
        "    spec:\n      containers:\n      - name: cluster-autoscaler\n"
        "        image: registry.k8s.io/autoscaling/cluster-autoscaler:v1.30.2\n"
    )
    fallback = "registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0"
    assert pick(manifest, fallback) == "registry.k8s.io/autoscaling/cluster-autoscaler:v1.30.2"
    assert pick("", fallback) == fallback
    assert (
        pick("", fallback, "http://10.1.0.1:5000") == "10.1.0.1:5000/autoscaling/cluster-autoscaler:v1.31.0"
    )
    assert (
        pick("", "autoscaler:1", "https://reg.example:443/mirror")
        == "reg.example:443/mirror/library/autoscaler:1"
    )
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="no cluster-autoscaler container"):
        pick("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", fallback)


def test_role_defaults_are_documented_and_specified() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    assert set(defaults) == set(spec)
    assert all(k.startswith("cluster_autoscaler_") for k in defaults)


# ---- systemd unit, delete ------------------------------------------------------------------------


def test_unit_command_uses_the_recorded_address(home: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    settings.enable(home, "demo", 1, 3, limit=10, service_address="10.1.0.1:8086")
    code, out, err = cli(["autoscaler", "unit", "--cluster", "demo", "--koral-play", "/opt/kp"], capsys)
    assert code == 0, err
    assert "ExecStart=/opt/kp autoscaler serve --cluster demo --listen 10.1.0.1:8086" in out
    assert f'Environment="KORAL_HOME={home.home}"' in out and "[Install]" in out


def test_delete_forgets_autoscaling_and_certificates(home: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.enable(home, "demo", 1, 3, limit=10, service_address="10.1.0.1:8086")
    certs = ensure_certs(home, "demo", ["10.1.0.1"])
    assert certs.client_key.exists()
    forgotten: list[Path] = []
    real_forget = settings.forget

    def forget(paths: Paths, name: str) -> None:
        forgotten.append(settings.settings_path(paths, name))
        real_forget(paths, name)

    class NoMachines:
        def destroy(self, _spec: object) -> None:
            pass

    monkeypatch.setattr(delete_op, "provider_for", lambda *_a, **_k: NoMachines())
    monkeypatch.setattr(delete_op.autoscaling, "forget", forget)
    env = Env.open(str(home.home), quiet=True)
    assert delete_op.delete(env, "demo") is True
    env.store.close()
    assert forgotten == [settings.settings_path(home, "demo")]
    assert not settings.settings_path(home, "demo").exists() and not certs.dir.exists()
    assert settings.load_settings(home, "demo").enabled is False


def test_forget_drops_record_and_certificates(home: Paths) -> None:
    settings.enable(home, "demo", 1, 3, limit=10)
    certs = ensure_certs(home, "demo")
    settings.forget(home, "demo")
    assert not settings.settings_path(home, "demo").exists() and not certs.dir.exists()
    assert home.cluster_dir("demo").exists()
    settings.forget(home, "demo")  # idempotent
