"""Signing out ends the session everywhere (a copied cookie too, across a console restart), and
sign-in attempts are limited per client address."""

from __future__ import annotations

import stat
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from koral_ansible.console import auth
from koral_ansible.console.app import build_app
from koral_ansible.console.signout import SignedOut, signed_out_path
from koral_ansible.console.throttle import LIMIT, WINDOW, LoginThrottle
from koral_ansible.paths import Paths

ORIGIN = "https://testserver"


@pytest.fixture
def token(koral_home: Paths) -> str:
    return auth.load_or_create_token(koral_home)[0]


def _client(paths: Paths, token: str) -> TestClient:
    return TestClient(build_app(paths.home, token, {"testserver"}), base_url=ORIGIN)


@pytest.fixture
def client(koral_home: Paths, token: str) -> Iterator[TestClient]:
    with _client(koral_home, token) as c:
        yield c


def _sign_in(client: TestClient, token: str) -> str:
    resp = client.post("/login", data={"token": token}, headers={"origin": ORIGIN}, follow_redirects=False)
    assert resp.status_code == 303
    return str(resp.cookies[auth.COOKIE])


def _csrf(client: TestClient) -> str:
    html: str = client.get("/").text
    return html.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_a_copy_of_a_signed_out_cookie_is_refused_also_after_a_restart(
    koral_home: Paths, token: str, client: TestClient
) -> None:
    cookie = _sign_in(client, token)
    other = _sign_in(client, token)  # a second session of the same token, in another browser
    client.cookies.set(auth.COOKIE, cookie)
    resp = client.post(
        "/logout", data={"csrf": _csrf(client)}, headers={"origin": ORIGIN}, follow_redirects=False
    )
    assert resp.status_code == 303
    for app_client in (client, _client(koral_home, token)):  # the same console, and a restarted one
        with app_client as c:
            c.cookies.set(auth.COOKIE, cookie)
            assert c.get("/api/clusters").status_code == 401
            c.cookies.set(auth.COOKIE, other)
            assert c.get("/api/clusters").status_code == 200
    path = signed_out_path(koral_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cookie.rsplit(".", 1)[0] in path.read_text() and token not in path.read_text()


def test_expired_ids_are_dropped_when_another_signs_out(koral_home: Paths) -> None:
    store = SignedOut(signed_out_path(koral_home))
    store.add("1000.old")
    store.add(f"{1000 + auth.SESSION_SECONDS + 10}.new", now=1000 + auth.SESSION_SECONDS + 20)
    assert store.current() == frozenset({f"{1000 + auth.SESSION_SECONDS + 10}.new"})


def test_wrong_tokens_from_one_address_are_throttled_then_the_right_one_too(
    client: TestClient, token: str
) -> None:
    for _ in range(LIMIT):
        assert client.post("/login", data={"token": "guess"}, headers={"origin": ORIGIN}).status_code == 401
    resp = client.post("/login", data={"token": token}, headers={"origin": ORIGIN}, follow_redirects=False)
    assert resp.status_code == 429
    assert 0 < int(resp.headers["retry-after"]) <= WINDOW
    assert token not in resp.text and "guess" not in resp.text


def test_throttle_window_passes_and_counts_per_address() -> None:
    t = LoginThrottle(limit=2, window=10)
    t.failed("a", now=0)
    t.failed("a", now=1)
    assert t.retry_after("a", now=2) == 8  # the first failure leaves the window at 10
    assert t.retry_after("b", now=2) == 0
    assert t.retry_after("a", now=10.5) == 0
    assert t.retry_after("a", now=11.5) == 0
