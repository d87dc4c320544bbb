"""The web console in-process (Starlette's TestClient) against a koral home whose records were
written through the library: pages, sign-in, CSRF/Origin/Host refusals, form errors at their
field, no secret in any response, the kubeconfig download event, the busy refusal, jobs."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from koral_ansible import jobs
from koral_ansible.console import auth, sse
from koral_ansible.console import usage as console_usage
from koral_ansible.console.app import build_app
from koral_ansible.console.routes.create import form_field
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths, write_private
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState, NodeRecord, StateStore
from tests.unit.jobs_fake.fake_ops import MODE_ENV

FAKE_DIR = Path(__file__).parent / "jobs_fake"
REPO = Path(__file__).parents[2]
REGISTRY_PASSWORD = "Reg1stry-Pa55-secret"
WEAVE_PASSWORD = "We4ve-secret-pass"
JOIN_TOKEN = "abcdef.0123456789abcdef"
ORIGIN = "https://testserver"
TABS = ("details", "access", "nodes", "firewall", "port-forward", "lb", "events", "actions")


@pytest.fixture
def env(koral_home: Paths) -> Iterator[Env]:
    e = Env(paths=koral_home, store=StateStore(koral_home), quiet=True)
    spec = validate_spec(
        {
            "name": "demo",
            "size": 1,
            "description": "console test",
            "registry": {"url": "https://reg.example:5000", "username": "bob", "password": REGISTRY_PASSWORD},
            "weave_password": WEAVE_PASSWORD,
        }
    )
    e.store.add_cluster(spec, ClusterState.RUNNING)
    e.store.save_secrets("demo", {**spec.secrets(), "join_token": JOIN_TOKEN})
    e.store.set_endpoint("demo", {"public_ip": "10.99.0.1", "api_port": 6443})
    for idx, (name, role) in enumerate([("demo-control-1", "control"), ("demo-node-1", "worker")]):
        e.store.upsert_node(
            "demo",
            NodeRecord(
                name=name,
                role=role,
                idx=idx,
                state="Running",
                private_ip=f"10.99.1.{idx + 10}",
                ssh_host="10.99.0.1",
                ssh_port=2222 + idx,
            ),
        )
    e.store.event("demo", "create", "end", "Completed", "cluster is Running")
    write_private(koral_home.kubeconfig("demo"), "apiVersion: v1\nkind: Config\nusers: []\n")
    yield e
    e.store.close()


@pytest.fixture(autouse=True)
def usage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nodes tab reads each node over SSH (jobs.node_usage); here there are no nodes."""

    def read(_env: Env, _cluster: str) -> list[jobs.NodeUsage]:
        return [
            jobs.NodeUsage(
                name="demo-control-1",
                cpus=2,
                cpu_percent=12.0,
                load1=0.5,
                memory_used=2**30,
                memory_total=4 * 2**30,
                disk_used=3 * 2**30,
                disk_total=8 * 2**30,
            ),
            jobs.NodeUsage(name="demo-node-1", error="ssh: connection refused"),
        ]

    monkeypatch.setattr(console_usage, "node_usage", read)


@pytest.fixture
def token(env: Env) -> str:
    return auth.load_or_create_token(env.paths)[0]


@pytest.fixture
def anon(env: Env, token: str) -> Iterator[TestClient]:
    with TestClient(build_app(env.paths.home, token, {"testserver"}), base_url=ORIGIN) as client:
        yield client


@pytest.fixture
def client(anon: TestClient, token: str) -> TestClient:
    resp = anon.post("/login", data={"token": token}, headers={"origin": ORIGIN}, follow_redirects=False)
    assert resp.status_code == 303
    return anon


def csrf_of(html: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert m and m.group(1)
    return m.group(1)


def post(client: TestClient, path: str, data: dict[str, str], page: str = "/") -> object:
    token = csrf_of(client.get(page).text)
    return client.post(path, data={**data, "csrf": token}, headers={"origin": ORIGIN}, follow_redirects=False)


PAGES = ("/", "/create", "/clusters/demo", "/clusters/demo/kubeconfig", "/api/clusters", "/stream/clusters")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_without_a_session_is_401(anon: TestClient, path: str) -> None:
    assert anon.get(path).status_code == 401
    assert anon.get(path, headers={"accept": "text/html"}).status_code == 401


def test_login_page_is_open_and_a_wrong_token_is_refused(anon: TestClient) -> None:
    assert anon.get("/login").status_code == 200
    resp = anon.post("/login", data={"token": "nope"}, headers={"origin": ORIGIN})
    assert resp.status_code == 401
    assert auth.COOKIE not in resp.cookies


def test_session_cookie_is_httponly_strict_secure(anon: TestClient, token: str) -> None:
    resp = anon.post("/login", data={"token": token}, headers={"origin": ORIGIN}, follow_redirects=False)
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie


def test_token_file_is_private_and_rotation_ends_sessions(env: Env, client: TestClient) -> None:
    path = auth.token_path(env.paths)
    assert path.stat().st_mode & 0o777 == 0o600
    old_cookie = client.cookies.get(auth.COOKIE)
    new, generated = auth.load_or_create_token(env.paths, rotate=True)
    assert generated and path.read_text().strip() == new
    with TestClient(build_app(env.paths.home, new, {"testserver"}), base_url=ORIGIN) as rotated:
        rotated.cookies.set(auth.COOKIE, str(old_cookie))
        assert rotated.get("/").status_code == 401


def test_rotation_while_the_console_runs_ends_old_sessions_at_once(
    env: Env, client: TestClient, token: str
) -> None:
    """The same running app: the old token's session is 401 at its next request, the old token
    no longer signs in, the new one does."""
    assert client.get("/").status_code == 200
    new, generated = auth.load_or_create_token(env.paths, rotate=True)  # what --rotate-token does
    assert generated and new != token
    assert client.get("/").status_code == 401
    assert client.get("/api/clusters").status_code == 401
    client.cookies.clear()
    old = client.post("/login", data={"token": token}, headers={"origin": ORIGIN}, follow_redirects=False)
    assert old.status_code == 401
    resp = client.post("/login", data={"token": new}, headers={"origin": ORIGIN}, follow_redirects=False)
    assert resp.status_code == 303
    assert client.get("/").status_code == 200
    # The new session's forms carry a CSRF token of the new key: an action passes the check and
    # meets its own input check (nothing is started).
    resp = post(client, "/clusters/demo/actions/scale", {"size": "x"})
    assert resp.status_code == 400 and 'id="size-error"' in resp.text
    assert jobs.list_jobs(env) == []


def test_rotation_closes_an_open_event_stream_of_an_old_session(
    env: Env, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live page's stream was let through before the rotation: it is closed at its next chunk
    (here every poll: a keepalive each second), and its reconnect is 401."""
    monkeypatch.setenv("PYTHONPATH", f"{FAKE_DIR}:{REPO}")
    monkeypatch.setenv(MODE_ENV, "sleep")  # the job (and so its stream) would last 60 s
    monkeypatch.setattr(sse, "KEEPALIVE_POLLS", 1)
    job = jobs.start_job(env, "scale", "demo", {"size": 2})  # the fake scale (jobs_fake)
    rotate = threading.Timer(1.5, auth.load_or_create_token, (env.paths,), {"rotate": True})
    stop = threading.Timer(12, os.kill, (job.pid, signal.SIGTERM))  # ends the stream without the fix
    rotate.start()
    stop.start()
    try:
        began = time.monotonic()
        resp = client.get(f"/jobs/{job.id}/stream")
        took = time.monotonic() - began
        assert resp.status_code == 200 and "event: view" in resp.text
        assert took < 8, f"the stream outlived the rotation: {took:.1f}s"
        assert "event: end" not in resp.text  # cut, not ended by the job
        assert jobs.get_job(env, job.id).state == jobs.JobState.RUNNING
        assert client.get(f"/jobs/{job.id}/stream").status_code == 401
    finally:
        rotate.cancel()
        stop.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.kill(job.pid, signal.SIGTERM)
        wait_job(env, job.id)


def test_token_file_follows_a_change_with_one_stat(env: Env, token: str) -> None:
    tokens = auth.TokenFile(auth.token_path(env.paths), token)
    assert tokens.current() == token
    new, _ = auth.load_or_create_token(env.paths, rotate=True)
    assert tokens.current() == new
    auth.token_path(env.paths).unlink()  # gone: the last token stays (only a new token replaces it)
    assert tokens.current() == new


@pytest.mark.parametrize("tab", TABS)
def test_cluster_view_tabs_render(client: TestClient, tab: str) -> None:
    resp = client.get(f"/clusters/demo?tab={tab}")
    assert resp.status_code == 200, resp.text
    assert 'aria-current="page"' in resp.text


def test_list_shows_mold_columns(client: TestClient) -> None:
    html = client.get("/").text
    for column in (
        "Name",
        "State",
        "Autoscaling",
        "Size",
        "Control nodes",
        "CPU",
        "Memory",
        "Version",
        "Zone",
    ):
        assert f"<th>{column}</th>" in html
    assert "https://10.99.0.1:6443" in html and "Running" in html
    rows = client.get("/api/clusters").json()
    assert rows[0]["name"] == "demo" and rows[0]["autoscaling"] == "off" and rows[0]["busy"] is None


def test_no_secret_in_any_response(env: Env, client: TestClient, token: str) -> None:
    bodies = [client.get(p).text for p in ("/", "/create", "/api/clusters", "/login")]
    bodies += [client.get(f"/clusters/demo?tab={t}").text for t in TABS]
    bad = client.post(
        "/create",
        data={
            "name": "x",
            "registry_url": "https://r:5000",
            "registry_password": REGISTRY_PASSWORD,
            "csrf": csrf_of(bodies[0]),
        },
        headers={"origin": ORIGIN},
    )
    bodies.append(bad.text)
    for body in bodies:
        for secret in (REGISTRY_PASSWORD, WEAVE_PASSWORD, JOIN_TOKEN, token):
            assert secret not in body


@pytest.mark.parametrize(
    "path", ["/create", "/clusters/demo/actions/stop", "/logout", "/clusters/demo/rules/firewall"]
)
def test_post_without_csrf_token_is_403(client: TestClient, path: str) -> None:
    assert client.post(path, data={}, headers={"origin": ORIGIN}).status_code == 403
    assert client.post(path, data={"csrf": "forged"}, headers={"origin": ORIGIN}).status_code == 403


def test_post_from_another_origin_or_without_one_is_403(client: TestClient) -> None:
    token = csrf_of(client.get("/").text)
    assert (
        client.post(
            "/clusters/demo/actions/stop", data={"csrf": token}, headers={"origin": "https://evil.example"}
        ).status_code
        == 403
    )
    assert client.post("/clusters/demo/actions/stop", data={"csrf": token}).status_code == 403
    assert (
        client.post("/login", data={"token": "x"}, headers={"origin": "https://evil.example"}).status_code
        == 403
    )


def test_unknown_host_is_403(client: TestClient) -> None:
    assert client.get("/", headers={"host": "rebind.example:8088"}).status_code == 403


def test_security_headers(client: TestClient) -> None:
    resp = client.get("/")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["cache-control"] == "no-store"
    for page in ("/", "/create", "/clusters/demo?tab=actions", "/login"):
        html = client.get(page).text
        assert "<script>" not in html and not re.search(r"<[^>]+\son[a-z]+=", html)  # CSP: no inline JS


def test_kubeconfig_download_is_no_store_and_an_event(env: Env, client: TestClient) -> None:
    resp = client.get("/clusters/demo/kubeconfig")
    assert resp.status_code == 200 and resp.text.startswith("apiVersion: v1")
    assert resp.headers["cache-control"] == "no-store"
    assert "attachment" in resp.headers["content-disposition"]
    last = env.store.events("demo")[-1]
    assert (last.operation, last.result) == ("kubeconfig", "Downloaded")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "ok", "size": "0"}, "size"),
        ({"name": "ok", "control_nodes": "2"}, "control_nodes"),
        ({"name": "ok", "pod_cidr": "10.244.0.1/16"}, "pod_cidr"),
        ({"name": "ok", "registry_url": "ftp://x"}, "registry_url"),
        ({"name": "ok", "registry_url": "https://r:5000", "registry_username": "u"}, "registry_username"),
        ({"name": "ok", "cni": "flannel"}, "cni"),
        ({"name": "ok", "allowed_cidrs": "10.0.0.0/8, bogus"}, "allowed_cidrs"),
    ],
)
def test_create_form_error_at_its_field_values_kept_nothing_started(
    env: Env, client: TestClient, data: dict[str, str], field: str
) -> None:
    resp = post(client, "/create", data, page="/create")
    assert resp.status_code == 400, resp.text
    assert f'id="{field}-error"' in resp.text
    assert f'id="{field}" name="{field}"' in resp.text
    for key, value in data.items():
        if key != "cni":
            assert f'value="{value}"' in resp.text
    assert jobs.list_jobs(env) == []


def test_form_field_mapping() -> None:
    assert form_field("registry.url") == "registry_url"
    assert form_field("registry") == "registry_username"
    assert form_field("allowed_cidrs.0") == "allowed_cidrs"
    assert form_field("--max-size") == ""
    assert form_field("spec") == ""


def test_busy_cluster_shows_busy_and_refuses_with_the_cli_message(env: Env, client: TestClient) -> None:
    with env.store.lock("demo", "scale"):
        assert "busy" in client.get("/clusters/demo").text
        assert client.get("/api/clusters").json()[0]["busy"].startswith("scale (pid")
        resp = post(client, "/clusters/demo/actions/stop", {})
    assert resp.status_code == 409
    assert "cluster &#39;demo&#39; is busy: scale (pid" in resp.text
    assert "holds its lock; wait for it to finish (or stop it) and retry" in resp.text
    assert jobs.list_jobs(env) == []
    assert client.get("/api/clusters").json()[0]["busy"] is None


def test_delete_needs_the_typed_name(env: Env, client: TestClient) -> None:
    resp = post(client, "/clusters/demo/actions/delete", {"confirm": "dem"})
    assert resp.status_code == 400 and 'id="confirm-error"' in resp.text
    assert jobs.list_jobs(env) == [] and env.store.find_cluster("demo") is not None


def test_scale_bad_size_is_shown_at_size(env: Env, client: TestClient) -> None:
    resp = post(client, "/clusters/demo/actions/scale", {"size": "x"})
    assert resp.status_code == 400 and 'id="size-error"' in resp.text
    assert jobs.list_jobs(env) == []


def test_rule_error_at_its_field(env: Env, client: TestClient) -> None:
    resp = post(client, "/clusters/demo/rules/firewall", {"protocol": "tcp", "port": "99999"})
    assert resp.status_code == 400 and 'id="port-error"' in resp.text
    assert env.store.network_rules("demo") == []


def test_nodes_tab_shows_usage_read_from_the_node(client: TestClient) -> None:
    html = client.get("/clusters/demo?tab=nodes").text
    assert "2 CPU, 12% busy" in html and "1.0 / 4.0 GiB" in html and "3.0 / 8.0 GiB" in html
    assert "unavailable: ssh: connection refused" in html
    assert "/clusters/demo/actions/remove-node" in html and 'value="demo-node-1"' in html


def test_autoscale_bounds_error_at_max(env: Env, client: TestClient) -> None:
    resp = post(client, "/clusters/demo/actions/autoscale", {"enable": "1", "min": "3", "max": "2"})
    assert resp.status_code == 400 and 'id="max-error"' in resp.text, resp.text
    assert jobs.list_jobs(env) == []


def test_unknown_cluster_is_404(client: TestClient) -> None:
    assert client.get("/clusters/nope").status_code == 404
    assert post(client, "/clusters/nope/actions/stop", {}).status_code == 404


def test_create_starts_a_job_and_its_progress_page_follows_it(
    env: Env, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", f"{FAKE_DIR}:{REPO}")
    monkeypatch.setenv(MODE_ENV, "fail")
    resp = post(
        client,
        "/create",
        {
            "name": "web",
            "size": "1",
            "registry_url": "https://r:5000",
            "registry_username": "u",
            "registry_password": REGISTRY_PASSWORD,
        },
        page="/create",
    )
    assert resp.status_code == 303, resp.text
    job_id = resp.headers["location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 30
    while jobs.get_job(env, job_id).state == jobs.JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page = client.get(f"/jobs/{job_id}").text
    assert 'id="job-error"' in page and "join failed on n2" in page and 'id="rerun"' in page
    assert "Join the node" in page  # the per-host last task, from job_view
    stream = client.get(f"/jobs/{job_id}/stream").text
    assert "event: view" in stream and "event: job" in stream and stream.rstrip().endswith("data: {}")
    for body in (page, stream, client.get(f"/jobs/{job_id}/json").text):
        assert REGISTRY_PASSWORD not in body


def test_rerun_of_a_create_with_a_registry_asks_for_the_password_again(
    env: Env, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password is never kept: the re-run is the create form filled from the job, the
    password empty and required, with a one-line note; typing it starts the create again."""
    monkeypatch.setenv("PYTHONPATH", f"{FAKE_DIR}:{REPO}")
    monkeypatch.setenv(MODE_ENV, "fail")
    form = {
        "name": "web",
        "size": "2",
        "cpu": "3",
        "ha": "1",
        "allowed_cidrs": "10.0.0.0/8, 192.168.0.0/16",
        "registry_url": "https://r:5000",
        "registry_username": "u",
    }
    resp = post(client, "/create", {**form, "registry_password": REGISTRY_PASSWORD}, page="/create")
    assert resp.status_code == 303, resp.text
    first = resp.headers["location"].rsplit("/", 1)[1]
    assert wait_job(env, first).state == jobs.JobState.FAILED
    assert "registry_password" not in str(jobs.get_job(env, first).params)
    resp = post(client, f"/jobs/{first}/rerun", {}, page=f"/jobs/{first}")
    assert resp.status_code == 303 and resp.headers["location"] == f"/create?rerun={first}"
    assert len(jobs.list_jobs(env)) == 1  # nothing started without the password
    page = client.get(resp.headers["location"])
    assert page.status_code == 200 and REGISTRY_PASSWORD not in page.text
    for key, value in form.items():
        if key == "ha":
            assert 'name="ha" value="1" checked' in page.text
        else:
            assert re.search(rf'id="{key}" name="{key}" type="text" value="{re.escape(value)}"', page.text), (
                key
            )
    field = re.search(r'<input id="registry_password"[^>]*>', page.text)
    assert field and 'value=""' in field.group(0) and "required" in field.group(0)
    note = re.findall(r'<p class="note" id="registry_password-note">([^<]*)</p>', page.text)
    assert note == [
        "The registry password is not kept after a create starts (only its worker had it): "
        "type it again to re-run this create."
    ]
    resp = post(
        client, "/create", {**form, "registry_password": REGISTRY_PASSWORD}, page=resp.headers["location"]
    )
    assert resp.status_code == 303
    second = resp.headers["location"].rsplit("/", 1)[1]
    assert second != first and wait_job(env, second).params == jobs.get_job(env, first).params
    assert client.get("/create?rerun=nosuch").status_code == 404
    # A create without a registry user needs no secret: re-run at once, as every other kind.
    resp = post(client, "/create", {"name": "plain", "size": "1"}, page="/create")
    plain = resp.headers["location"].rsplit("/", 1)[1]
    wait_job(env, plain)
    resp = post(client, f"/jobs/{plain}/rerun", {}, page=f"/jobs/{plain}")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/jobs/")
    wait_job(env, resp.headers["location"].rsplit("/", 1)[1])


def wait_job(env: Env, job_id: str) -> jobs.JobRecord:
    deadline = time.monotonic() + 30
    while (job := jobs.get_job(env, job_id)).state == jobs.JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return job


def test_events_stream_of_a_deleted_cluster_ends(client: TestClient) -> None:
    assert client.get("/clusters/gone/events/stream").text == "event: end\ndata: {}\n\n"


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:8088", "10.1.2.3:8088", "nope", "127.0.0.1:0", "host.example:80"]
)
def test_console_listen_refusals_exit_2_before_serving(
    koral_home: Paths, listen: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from koral_ansible.cli import root
    from koral_ansible.cli.common import run_cli

    assert run_cli(root, ["console", "--listen", listen]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --listen:") and err.count("\n") == 1
    assert not auth.token_path(koral_home).exists()  # nothing changed


def test_allowed_hosts_of_a_loopback_listen() -> None:
    from koral_ansible.console.server import allowed_hosts

    assert allowed_hosts("127.0.0.1", 8088) == {"127.0.0.1:8088", "localhost:8088", "[::1]:8088"}
    assert allowed_hosts("10.0.0.5", 80) == {"10.0.0.5:80"}


def test_an_operation_frame_runs_on_a_server_thread(env: Env) -> None:
    """The console changes rules on Starlette's pool threads: OperationFrame set SIGTERM's handler
    there, which Python refuses off the main thread (ValueError: signal only works in main thread)."""
    import threading

    from koral_ansible.operations.context import OperationFrame

    errors: list[BaseException] = []

    def run() -> None:
        try:
            other = Env.open(str(env.paths.home), quiet=True)
            with OperationFrame(other, "demo", "firewall-add", busy=None, failed=None) as frame:
                frame.event("apply", "Recorded", "from a thread")
            other.store.close()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert errors == []
    assert env.store.events("demo")[-1].result == "Completed"


def test_the_token_is_printed_only_to_a_terminal(
    koral_home: Paths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from koral_ansible.cli import root
    from koral_ansible.cli.common import run_cli
    from koral_ansible.console import server

    served: list[tuple[str, int]] = []
    monkeypatch.setattr(server, "serve", lambda _home, _token, host, port: served.append((host, port)))
    assert run_cli(root, ["console", "--listen", "127.0.0.1:18088"]) == 0
    token = auth.token_path(koral_home).read_text().strip()
    err = capsys.readouterr().err
    assert token not in err and "not shown: stderr is not a terminal" in err  # captured: not a tty
    assert served == [("127.0.0.1", 18088)]
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert run_cli(root, ["console", "--rotate-token"]) == 0
    rotated = auth.token_path(koral_home).read_text().strip()
    assert rotated != token and rotated in capsys.readouterr().err


@pytest.mark.parametrize("job_id", ["20261202T000000-abcdef", "x", "..."])
def test_unknown_or_malformed_job_is_404(client: TestClient, job_id: str) -> None:
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert client.get(f"/jobs/{job_id}/json").status_code == 404


def test_reset_needs_its_confirmation(env: Env, client: TestClient) -> None:
    resp = post(client, "/clusters/demo/actions/reset", {})
    assert resp.status_code == 400 and 'id="confirm_reset-error"' in resp.text
    assert jobs.list_jobs(env) == []


def test_lb_tab_lists_the_load_balancer_services_served(env: Env, client: TestClient) -> None:
    from koral_ansible.loadbalancer import record as lb_record

    empty = client.get("/clusters/demo?tab=lb").text
    assert 'id="lb-services"' in empty and "No LoadBalancer Service served yet." in empty
    row = {
        "service": "default/edge", "state": "serving", "address": "10.99.0.1", "reason": "",
        "backends": "10.99.1.11", "ports": "443/TCP", "source_ranges": "0.0.0.0/0", "traffic_policy": "Local",
    }  # fmt: skip
    lb_record.update(env.paths, env.store, "demo", [row])
    html = client.get("/clusters/demo?tab=lb").text
    cells = re.findall(r"<td>([^<]*)</td>", html.split('id="lb-services"', 1)[1].split("</table>", 1)[0])
    assert cells == [
        "default/edge",
        "serving",
        "443/TCP",
        "10.99.0.1",
        "0.0.0.0/0",
        "10.99.1.11",
        "Local",
        "",
    ]
