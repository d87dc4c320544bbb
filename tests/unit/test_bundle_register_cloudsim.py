"""``koral-play bundle register|list --provider cloudstack`` end to end against the test cloud.

The cloud (tests/cloudsim) really downloads the ISO from the URL given - a loopback HTTP server
of this test - and checks the ``{SHA-256}`` checksum koral sends, as secondary storage does.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from koral_ansible import versions
from koral_ansible.bundle import BuildResult
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from tests.bundle_fixtures import make_test_bundle
from tests.cloudsim.fixtures import cloudsim  # noqa: F401 - fixture
from tests.cloudsim.iso_commands import wait_isos_settled
from tests.cloudsim.server import CloudSim
from tests.versions import DEFAULT

VERSION = DEFAULT
NAME = f"kubernetes-{VERSION}-amd64"


class IsoServer:
    """Serves one directory on 127.0.0.1 and records the paths the cloud fetched."""

    def __init__(self, directory: Path) -> None:
        fetched: list[str] = []

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                fetched.append(self.path)

        self.fetched = fetched
        handler = functools.partial(Handler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return make_test_bundle(tmp_path_factory.mktemp("cs-register"), VERSION)


@pytest.fixture()
def served(built: BuildResult, tmp_path: Path) -> Iterator[tuple[IsoServer, Path]]:
    assert built.iso is not None
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(built.iso, www / built.iso.name)
    server = IsoServer(www)
    try:
        yield server, www
    finally:
        server.close()


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(root, args)
    out, err = capsys.readouterr()
    return code, out, err


def cloud_versions(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code, out, err = cli(["bundle", "list", "--provider", "cloudstack", "-o", "json"], capsys)
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_register_list_duplicate_unsupported(
    cloudsim: CloudSim,  # noqa: F811 - fixture
    built: BuildResult,
    served: tuple[IsoServer, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert built.iso is not None
    server, _www = served
    iso = str(built.iso)
    url = server.url(built.iso.name)
    monkeypatch.setenv("KORAL_HOME", str(tmp_path / "home"))
    assert cloud_versions(capsys) == []

    # The cloud's own refusal (431: not an ISO URL) is bad input: exit 2, nothing registered.
    code, _, err = cli(
        ["bundle", "register", iso, "--provider", "cloudstack", "--url", url.replace(".iso", ".img")], capsys
    )
    assert code == 2, err
    assert err.startswith("error: PATH: must be accepted by the cloud: Please specify a valid URL"), err

    code, out, err = cli(["bundle", "register", iso, "--provider", "cloudstack", "--url", url], capsys)
    assert code == 0, err
    name, version, kind, vid, _state = out.strip().split("\t")
    adds = cloudsim.calls.count("addKubernetesSupportedVersion")  # the refused one counts too
    assert (name, version, kind) == (NAME, VERSION, "kubernetes-version")

    # The cloud fetched the ISO from our server and accepted its checksum.
    isos = {i["name"]: i for i in wait_isos_settled(cloudsim.api)}
    assert f"/{built.iso.name}" in server.fetched
    cloud_iso = isos[f"{NAME}-Kubernetes-Binaries-ISO"]
    assert cloud_iso["isready"] is True and cloud_iso["status"] == "Successfully Installed"
    assert cloud_iso["size"] == built.iso.stat().st_size
    assert cloud_versions(capsys) == [
        {"name": NAME, "version": VERSION, "id": vid, "state": "Ready", "zone": "all zones"}
    ]

    # Re-running returns the same entry; no second version is added.
    code, out, err = cli(["bundle", "register", iso, "--provider", "mold", "--url", url], capsys)
    assert code == 0, err
    assert out.split("\t")[3] == vid
    assert cloudsim.calls.count("addKubernetesSupportedVersion") == adds

    # The same version under another name (the cloud would take it): refused, exit 2.
    code, _, err = cli(
        ["bundle", "register", iso, "--provider", "cloudstack", "--url", url, "--name", "other"], capsys
    )
    assert code == 2
    assert err.startswith(
        f"error: PATH: must be a Kubernetes version not yet registered in the cloud: {VERSION}"
    )
    assert f"as '{NAME}' (id {vid}" in err
    assert cloudsim.calls.count("addKubernetesSupportedVersion") == adds

    # A bundle of a version this koral does not install (as after 1.31 leaves the supported
    # range): exit 2 before the cloud is asked.
    monkeypatch.setattr(versions, "SUPPORTED_MINORS", ((1, 32), (1, 33)))
    code, _, err = cli(
        ["bundle", "register", iso, "--provider", "cloudstack", "--url", url, "--name", "n"], capsys
    )
    assert code == 2
    assert err.startswith("error: PATH: must be a bundle of a Kubernetes version koral installs")
    assert f"unsupported Kubernetes version {VERSION}; supported: 1.32.x to 1.33.x" in err
    assert cloudsim.calls.count("addKubernetesSupportedVersion") == adds
    assert [v["version"] for v in cloud_versions(capsys)] == [VERSION]


def test_checksum_mismatch_and_kubernetes_service_off(
    cloudsim: CloudSim,  # noqa: F811 - fixture
    built: BuildResult,
    served: tuple[IsoServer, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert built.iso is not None
    server, www = served
    # The URL serves a different file than the ISO koral checksummed: the cloud's download fails.
    data = bytearray(built.iso.read_bytes())
    data[len(data) // 2] ^= 0x01
    (www / "swapped.iso").write_bytes(bytes(data))
    code, out, err = cli(
        [
            "bundle",
            "register",
            str(built.iso),
            "--provider",
            "cloudstack",
            "--url",
            server.url("swapped.iso"),
        ],
        capsys,
    )
    assert code == 0, err
    isos = {i["name"]: i for i in wait_isos_settled(cloudsim.api)}
    failed = isos[f"{NAME}-Kubernetes-Binaries-ISO"]
    assert failed["isready"] is False and "didn't match the given value" in failed["status"]
    assert [(v["version"], v["state"]) for v in cloud_versions(capsys)] == [(VERSION, "Failed")]

    # Without the Kubernetes service its commands do not exist (the cloud answers 401): register
    # and list say so, exit 2, and send none of them.
    cloudsim.cloud.set_config("cloud.kubernetes.service.enabled", "false", kind="Boolean", default="false")
    before = len(cloudsim.calls)
    for args in (
        [
            "bundle",
            "register",
            str(built.iso),
            "--provider",
            "cloudstack",
            "--url",
            server.url(built.iso.name),
        ],
        ["bundle", "list", "--provider", "cloudstack"],
    ):
        code, out, err = cli(args, capsys)
        assert code == 2 and out == ""
        assert err.startswith("error: --provider: must name a cloud whose Kubernetes service is enabled"), err
        assert err.count("\n") == 1
    assert "Kubernetes" not in "".join(cloudsim.calls[before:])
