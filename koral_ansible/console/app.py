"""The console's ASGI app: routes, static files, and the guard (Host, session, Origin, headers)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from koral_ansible.console.auth import TokenFile, token_path
from koral_ansible.console.guard import Guard
from koral_ansible.console.routes import ROUTES
from koral_ansible.console.signout import SignedOut, signed_out_path
from koral_ansible.console.throttle import LoginThrottle
from koral_ansible.paths import Paths


def build_app(home: Path, token: str, allowed_hosts: Iterable[str]) -> ASGIApp:
    """The console for the koral home ``home``, signing sessions with ``token`` (then with whatever
    the token file holds: a rotation ends the sessions of the old token at once), answering only
    requests whose Host is one of ``allowed_hosts`` (HOST:PORT as the browser sends it)."""
    app = Starlette(
        routes=[
            *ROUTES,
            Mount("/static", StaticFiles(packages=[("koral_ansible.console", "static")]), name="static"),
        ]
    )
    app.state.home = home
    app.state.login_throttle = LoginThrottle()
    paths = Paths.resolve(home)
    return Guard(
        app, TokenFile(token_path(paths), token), frozenset(allowed_hosts), SignedOut(signed_out_path(paths))
    )
