"""Push a bundle's images into a real registry (Debian's docker-registry on loopback) with skopeo."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.bundle import BuildResult
from koral_ansible.bundle.push import Registry, push_bundle, skopeo_copy_argv
from koral_ansible.errors import InputError, OperationError
from tests.bundle_fixtures import make_test_bundle
from tests.versions import COREDNS, DEFAULT, ETCD, PAUSE

VERSION = DEFAULT
USER, PASSWORD = "koral", "pa55-w0rd-not-in-logs"

needs_tools = pytest.mark.skipif(
    not (shutil.which("docker-registry") and shutil.which("skopeo")),
    reason="needs Debian's docker-registry and skopeo",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_registry(root: Path, htpasswd: Path | None) -> Iterator[str]:
    port = _free_port()
    auth = f"auth: {{htpasswd: {{realm: koral, path: {htpasswd}}}}}\n" if htpasswd else ""
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n{auth}"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(root / "registry.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"{url}/v2/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # 401: up, wants credentials
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((root / "registry.log").read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return make_test_bundle(tmp_path_factory.mktemp("push"), VERSION)


@pytest.fixture()
def registry(tmp_path: Path) -> Iterator[str]:
    yield from _start_registry(tmp_path, None)


@pytest.fixture()
def auth_registry(tmp_path: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("libcrypt without bcrypt")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{USER}:{hashed}\n")
    yield from _start_registry(tmp_path, htpasswd)


def _inspect(url: str, repo: str, creds: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}"]
    if creds:
        argv += ["--creds", creds]
    return subprocess.run([*argv, f"docker://{url.split('://')[1]}/{repo}"], capture_output=True, text=True)


@needs_tools
def test_push_directory_then_pull_by_mirror_path(built: BuildResult, registry: str) -> None:
    messages: list[str] = []
    pushed = push_bundle(built.directory, registry, progress=messages.append)
    assert {p.ref for p in pushed} == set(built.manifest.images)
    by_ref = {p.ref: p for p in pushed}
    host = registry.split("://")[1]
    assert by_ref[f"registry.k8s.io/pause:{PAUSE}"].target == f"{host}/pause:{PAUSE}"
    assert by_ref["docker.io/weaveworks/weave-kube:2.8.1"].target == f"{host}/weaveworks/weave-kube:2.8.1"
    assert by_ref[f"registry.k8s.io/coredns/coredns:{COREDNS}"].target == f"{host}/coredns/coredns:{COREDNS}"
    for repo, ref in (
        (f"pause:{PAUSE}", f"registry.k8s.io/pause:{PAUSE}"),
        ("kubernetesui/dashboard:v2.7.0", None),
    ):
        proc = _inspect(registry, repo)
        assert proc.returncode == 0, proc.stderr
        if ref:
            assert proc.stdout.strip() == by_ref[ref].digest
    assert len(messages) == len(pushed)


@needs_tools
def test_push_iso_with_credentials(
    built: BuildResult, auth_registry: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert built.iso is not None
    with pytest.raises(OperationError, match=r"push of .* failed") as info:
        push_bundle(built.iso, auth_registry, username=USER, password="wrong-" + PASSWORD)
    assert PASSWORD not in str(info.value)
    pushed = push_bundle(built.iso, auth_registry, username=USER, password=PASSWORD)
    assert len(pushed) == len(built.manifest.images)
    assert _inspect(auth_registry, f"etcd:{ETCD}").returncode != 0  # anonymous: refused
    assert _inspect(auth_registry, f"etcd:{ETCD}", f"{USER}:{PASSWORD}").returncode == 0
    out, err = capfd.readouterr()
    assert PASSWORD not in out + err


def test_registry_url_and_argv(tmp_path: Path) -> None:
    assert Registry.parse("http://10.1.0.5:5000") == Registry("10.1.0.5:5000", True)
    assert Registry.parse("reg.example:443/mirror") == Registry("reg.example:443", False, "mirror")
    assert Registry.parse("https://reg.example", insecure=True).insecure
    assert Registry("h:1", False, "m").target("busybox") == "h:1/m/library/busybox:latest"
    digest = "sha256:" + "c" * 64
    assert Registry("h:1", True).target(f"quay.io/a/b:1@{digest}") == "h:1/a/b:1"
    assert Registry("h:1", True).target(f"quay.io/a/b@{digest}") == f"h:1/a/b@{digest}"
    for bad in ("ftp://x", "http://", "http://h:port", "http://h?x=1"):
        with pytest.raises(InputError, match=r"^--registry: "):
            Registry.parse(bad)
    if shutil.which("skopeo"):
        argv = skopeo_copy_argv(
            "oci-archive:/a.tar", "h:1/a:1", Registry("h:1", True), tmp_path / "auth.json"
        )
        assert "--dest-tls-verify=false" in argv and "--dest-authfile" in argv
        assert argv[-2:] == ["oci-archive:/a.tar", "docker://h:1/a:1"]


@needs_tools
def test_cli_registry_push(
    built: BuildResult,
    auth_registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import click

    from koral_ansible.cli.common import run_cli
    from koral_ansible.cli.registry import registry

    group = click.Group("koral-play", commands={"registry": registry})
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    monkeypatch.delenv("KORAL_REGISTRY_PASSWORD", raising=False)
    args = ["registry", "push", str(built.directory), "--registry", auth_registry]
    code = run_cli(group, [*args, "--username", USER, "--password-file", str(password_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["REF", "TARGET", "DIGEST"] and len(lines) == len(built.manifest.images)
    pause = [f"registry.k8s.io/pause:{PAUSE}", f"{auth_registry.removeprefix('http://')}/pause:{PAUSE}"]
    assert any(line.split()[:2] == pause for line in lines)
    assert PASSWORD not in out + err and "registry: push" in err

    monkeypatch.setenv("KORAL_REGISTRY_PASSWORD", PASSWORD)
    assert run_cli(group, args) == 2  # a password without a user name
    assert capsys.readouterr().err.startswith("error: --username: ")
    code = run_cli(group, ["registry", "push", str(built.directory), "--registry", "ftp://x"])
    assert code == 2 and "--registry" in capsys.readouterr().err
