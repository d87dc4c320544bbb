"""``koral-play bundle build|verify|list``: paths on stdout, progress on stderr, exit 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from koral_ansible.bundle import find_bundle, list_bundles
from koral_ansible.cli.bundle import bundle
from koral_ansible.cli.common import run_cli
from tests.bundle_fixtures import FixtureSources, make_sources
from tests.versions import DEFAULT, PAUSE

VERSION = DEFAULT


def _group() -> click.Group:
    """The real root group once `bundle` is wired into it; else a stand-in with --state-dir."""
    from koral_ansible.cli import root

    if "bundle" in root.commands:
        return root

    @click.group()
    @click.option("--state-dir", envvar="KORAL_HOME")
    @click.option("-q", "--quiet", is_flag=True)
    @click.pass_context
    def stand_in(ctx: click.Context, state_dir: str | None, quiet: bool) -> None:
        ctx.ensure_object(dict)
        ctx.obj.update(home=state_dir, quiet=quiet)

    stand_in.add_command(bundle)
    return stand_in


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("KORAL_HOME", str(h))
    return h


@pytest.fixture()
def src(tmp_path: Path) -> FixtureSources:
    return make_sources(tmp_path, VERSION)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(_group(), args)
    out, err = capsys.readouterr()
    return code, out, err


def _build_args(src: FixtureSources, out: Path, *extra: str) -> list[str]:
    return [
        "bundle",
        "build",
        "--kubernetes-version",
        VERSION,
        "--cni-version",
        src.cni_version,
        "--crictl-version",
        src.crictl_version,
        "--network-yaml",
        str(src.network_yaml),
        "--dashboard-yaml",
        str(src.dashboard_yaml),
        "--from",
        str(src.from_dir),
        "--output",
        str(out),
        *extra,
    ]


def test_build_verify_list(
    src: FixtureSources, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = cli(_build_args(src, out, "--name", "b1"), capsys)
    assert code == 0, stderr
    assert stdout.splitlines() == [str((out / "b1").resolve()), str((out / "b1.iso").resolve())]
    assert "bundle: " in stderr and str(out) not in stdout.replace(str(out / "b1"), "")

    code, stdout, _ = cli(["bundle", "verify", str(out / "b1.iso")], capsys)
    assert code == 0 and f": ok (b1, kubernetes {VERSION}, amd64," in stdout

    code, stdout, _ = cli(["bundle", "list", "-o", "json"], capsys)
    rows = json.loads(stdout)
    assert [(r["name"], r["version"], r["arch"]) for r in rows] == [("b1", VERSION, "amd64")]
    assert rows[0]["iso"] == str((out / "b1.iso").resolve())
    record = find_bundle(home, VERSION)
    assert record is not None and record.name == "b1"

    code, stdout, _ = cli(["bundle", "list"], capsys)
    assert code == 0 and "b1" in stdout and VERSION in stdout


def test_verify_failure_exit_1_names_file(
    src: FixtureSources, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli(_build_args(src, out, "--no-iso", "--force"), capsys)[0] == 0
    directory = out / f"kubernetes-{VERSION}-amd64"
    kubectl = directory / "k8s" / "kubectl"
    kubectl.write_bytes(kubectl.read_bytes()[:-1] + b"X")
    code, stdout, stderr = cli(["bundle", "verify", str(directory)], capsys)
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and "k8s/kubectl: sha256 mismatch" in stderr


def test_verify_record_adds_to_list(
    src: FixtureSources, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli(_build_args(src, out, "--no-iso", "--name", "b2"), capsys)[0] == 0
    (home / "bundles.json").unlink()
    assert list_bundles(home) == []
    code, _, _ = cli(["bundle", "verify", "--record", str(out / "b2")], capsys)
    assert code == 0
    assert [r.name for r in list_bundles(home)] == ["b2"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--arch", "s390x"], "--arch"),
        (["--name", "no/slash"], "--name"),
        (["--cni-version", "one"], "--cni-version"),
    ],
)
def test_bad_input_exit_2_one_line(
    src: FixtureSources,
    tmp_path: Path,
    home: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    field: str,
) -> None:
    code, stdout, stderr = cli(_build_args(src, tmp_path / "out", *extra), capsys)
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"error: {field}: ") and stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_missing_option_and_missing_image(
    src: FixtureSources, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = cli(["bundle", "build", "--kubernetes-version", VERSION], capsys)
    assert code == 2 and "--cni-version" in stderr
    (src.from_dir / "images" / f"registry.k8s.io_pause_{PAUSE}.tar").unlink()
    code, _, stderr = cli(_build_args(src, tmp_path / "out"), capsys)
    assert code == 2 and f"registry.k8s.io/pause:{PAUSE}" in stderr and "missing" in stderr


def test_help(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["bundle"], ["bundle", "build"], ["bundle", "verify"], ["bundle", "list"]):
        code, stdout, _ = cli([*command, "--help"], capsys)
        assert code == 0 and "Usage:" in stdout
    assert not home.exists()


def test_register_local_and_cloudstack(
    src: FixtureSources,
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from koral_ansible.cli import bundle as bundle_cli
    from tests.unit.test_bundle_register import FakeCloud

    out = tmp_path / "out"
    assert cli(_build_args(src, out, "--name", "b3"), capsys)[0] == 0
    (home / "bundles.json").unlink()
    code, stdout, _ = cli(["bundle", "register", str(out / "b3.iso")], capsys)
    assert code == 0 and stdout.startswith(f"b3\t{VERSION}\tlocal\t")
    assert [r.iso for r in list_bundles(home)] == [str((out / "b3.iso").resolve())]

    cloud = FakeCloud()
    monkeypatch.setattr(bundle_cli, "_cloud_client", lambda: cloud)
    code, _, stderr = cli(["bundle", "register", str(out / "b3.iso"), "--provider", "cloudstack"], capsys)
    assert code == 2 and stderr.startswith("error: --url: required")
    code, _, stderr = cli(["bundle", "register", str(out / "b3.iso"), "--provider", "aws"], capsys)
    assert code == 2 and stderr.startswith("error: --provider: must be one of local, cloudstack, mold")
    url = "http://10.0.0.5/b3.iso"
    code, stdout, stderr = cli(
        ["bundle", "register", str(out / "b3.iso"), "--provider", "mold", "--url", url], capsys
    )
    assert code == 0, stderr
    assert stdout.split("\t")[:3] == ["b3", VERSION, "kubernetes-version"]
    code, stdout, _ = cli(["bundle", "list", "--provider", "cloudstack", "-o", "json"], capsys)
    assert code == 0 and [(r["name"], r["version"]) for r in json.loads(stdout)] == [("b3", VERSION)]
