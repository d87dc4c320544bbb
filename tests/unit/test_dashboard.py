"""``koral-play dashboard``: the switch and its record, bad input (exit 2, field named, nothing
changed), the login token (stdout only: never in the koral home, events or stderr), the
``dashboard`` role's image filter and ``create --dashboard``."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from koral_ansible.cli import dashboard as cli_dashboard
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.dashboard import access, deploy, settings
from koral_ansible.errors import InputError, OperationError
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec
from koral_ansible.state import NodeRecord, StateStore
from tests.bundle_fixtures import DASHBOARD_YAML

REPO = Path(__file__).resolve().parents[2]
SECRET = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJrb3JhbC10ZXN0In0.c2VjcmV0LXNpZ25hdHVyZS1kby1ub3QtbG9n"


def _filter() -> Any:
    spec = importlib.util.spec_from_file_location(
        "dashboard_filter", REPO / "roles" / "dashboard" / "filter_plugins" / "dashboard_manifest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dashboard_manifest


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    h = tmp_path / "home"
    monkeypatch.setenv("KORAL_HOME", str(h))
    paths = Paths.resolve(h, tmp_path / "cache")
    store = StateStore(paths)
    store.add_cluster(validate_spec({"name": "demo", "size": 1}))
    store.set_endpoint("demo", {"public_ip": "10.1.0.1"})
    store.upsert_node("demo", NodeRecord("demo-control-1", "control", 0, state="Running"))
    store.close()
    yield paths


@pytest.fixture()
def applied(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    seen: list[tuple[str, bool]] = []
    monkeypatch.setattr(deploy, "apply_dashboard", lambda _env, name, on: seen.append((name, on)))
    return seen


def cli(
    args: list[str], capsys: pytest.CaptureFixture[str], group: click.Group = root
) -> tuple[int, str, str]:
    code = run_cli(group, args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["dashboard", "ghost"], "NAME"),
        (["dashboard", "ghost", "--enable"], "NAME"),
        (["dashboard", "demo", "--duration", "5m"], "--duration"),
        (["dashboard", "demo", "--duration", "599s"], "--duration"),
        (["dashboard", "demo", "--duration", "soon"], "--duration"),
        (["dashboard", "demo", "--duration", "-1h"], "--duration"),
        (["dashboard", "demo", "--enable", "--disable"], "--enable/--disable"),
        (["dashboard", "demo", "--enable", "--duration", "1h"], "--duration"),
        (["dashboard", "demo", "-o", "xml"], "--output"),
        (["dashboard", "demo"], "NAME"),  # not enabled: nothing to log in to
    ],
)
def test_bad_input_exit_2_field_named_nothing_changed(
    args: list[str], field: str, home: Paths, applied: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(args, capsys)
    assert code == 2, err
    assert field in err and len(err.strip().splitlines()) == 1
    assert out == "" and applied == []
    assert not settings.settings_path(home, "demo").exists()


def test_duration_parsing() -> None:
    assert access.parse_duration("10m") == 600
    assert access.parse_duration("1h30m") == 5400
    assert access.parse_duration("900s") == 900
    with pytest.raises(InputError) as bad:
        access.parse_duration("9m59s")
    assert bad.value.field == "--duration" and "10m" in bad.value.message


def test_enable_disable_record_apply_and_show(
    home: Paths, applied: list[tuple[str, bool]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(["dashboard", "demo", "--enable", "-o", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["enabled"] is True
    assert stat.S_IMODE(settings.settings_path(home, "demo").stat().st_mode) == 0o600
    code, out, _ = cli(["show", "demo", "-o", "json"], capsys)
    assert json.loads(out)["dashboard"] is True
    assert cli(["dashboard", "demo", "--disable"], capsys)[0] == 0
    assert applied == [("demo", True), ("demo", False)]
    assert settings.load_settings(home, "demo").enabled is False


def test_failed_apply_restores_the_record(
    home: Paths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*_a: Any) -> None:
        raise OperationError("dashboard.yml failed on demo-control-1")

    monkeypatch.setattr(deploy, "apply_dashboard", boom)
    code, _, err = cli(["dashboard", "demo", "--enable"], capsys)
    assert code == 1 and "dashboard.yml failed" in err
    assert settings.load_settings(home, "demo").enabled is False


def _fake_kubectl(tmp_path: Path, token: str = SECRET) -> Path:
    """Answers ``create token ... --output=json`` as kubectl does (a TokenRequest), recording argv."""
    exe = tmp_path / "kubectl"
    answer = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "spec": {"expirationSeconds": 1800},
        "status": {"token": token, "expirationTimestamp": "2026-12-02T01:30:00Z"},
    }
    exe.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\ncat <<'EOF'\n{json.dumps(answer)}\nEOF\n")
    exe.chmod(0o755)
    return exe


def test_token_goes_to_stdout_only(
    home: Paths,
    applied: list[Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubectl = _fake_kubectl(tmp_path)
    monkeypatch.setattr(access, "host_kubectl", lambda _bundle: contextlib.nullcontext(kubectl))
    assert cli(["dashboard", "demo", "--enable"], capsys)[0] == 0
    code, out, err = cli(["dashboard", "demo", "--duration", "30m"], capsys)
    assert code == 0, err
    assert out.strip() == SECRET and SECRET not in err
    assert "port-forward service/kubernetes-dashboard 8443:443" in err
    assert "services/https:kubernetes-dashboard:/proxy/" in err
    argv = (tmp_path / "argv").read_text().split()
    assert argv[-4:] == ["token", "koral-dashboard-admin", "--duration=1800s", "--output=json"]
    code, out, _ = cli(["dashboard", "demo", "-o", "yaml"], capsys)
    info = yaml.safe_load(out)
    assert info["token"] == SECRET and info["token_expires"] == "2026-12-02T01:30:00Z"
    code, out, _ = cli(["events", "demo", "-o", "json"], capsys)
    assert SECRET not in out
    for path in home.home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_login_token_error_names_kubectl_not_a_token(tmp_path: Path) -> None:
    exe = tmp_path / "kubectl"
    exe.write_text(
        "#!/bin/sh\necho 'error: failed to create token: serviceaccounts \"x\" not found' >&2\nexit 1\n"
    )
    exe.chmod(0o755)
    with pytest.raises(OperationError, match='serviceaccounts "x" not found'):
        access.login_token(exe, tmp_path / "kc", 600)
    assert "hidden" in repr(access.LoginToken(SECRET, "t")) and SECRET not in repr(
        access.LoginToken(SECRET, "t")
    )


def test_filter_moves_every_image_to_the_registry_in_push_layout() -> None:
    from koral_ansible.bundle.push import Registry

    dashboard_manifest = _filter()
    assert dashboard_manifest(DASHBOARD_YAML, "") == DASHBOARD_YAML
    out = dashboard_manifest(DASHBOARD_YAML, "https://reg.example:5000/mirror")
    docs = list(yaml.safe_load_all(out))
    images = [
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    registry = Registry.parse("https://reg.example:5000/mirror")
    assert images == [
        registry.target("kubernetesui/dashboard:v2.7.0"),
        registry.target("kubernetesui/metrics-scraper:v1.0.8"),
    ]
    assert images[0] == "reg.example:5000/mirror/kubernetesui/dashboard:v2.7.0"
    assert [d["kind"] for d in docs] == [d["kind"] for d in yaml.safe_load_all(DASHBOARD_YAML)]


def test_create_dashboard_flag_enables_after_create(
    home: Paths,
    applied: list[tuple[str, bool]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from koral_ansible import operations

    store = StateStore(home)
    record = store.get_cluster("demo")
    store.close()
    monkeypatch.setattr(operations, "create", lambda _env, _spec: record)
    code, _, err = cli(["create", "demo", "--size", "1", "--dashboard"], capsys)
    assert code == 0, err
    assert applied == [("demo", True)] and settings.load_settings(home, "demo").enabled


def test_wired_into_root() -> None:
    assert root.get_command(click.Context(root), "dashboard") is cli_dashboard.dashboard


def test_host_kubectl_from_a_directory_or_an_iso_bundle(tmp_path: Path) -> None:
    from koral_ansible.bundle.iso import make_iso

    bundle = tmp_path / "bundle"
    (bundle / "k8s").mkdir(parents=True)
    (bundle / "k8s" / "kubectl").write_bytes(b"#!/bin/sh\necho real\n")
    with access.host_kubectl(bundle) as exe:
        assert exe == bundle / "k8s" / "kubectl"
    iso = make_iso(bundle, tmp_path / "b.iso", "KORAL")
    with access.host_kubectl(iso) as exe:
        assert exe.read_bytes() == b"#!/bin/sh\necho real\n" and exe.stat().st_mode & 0o100
        copied = exe
    assert not copied.exists()
