"""Sign in with the login token (the only page without a session), sign out."""

from __future__ import annotations

import sys

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from koral_ansible.console import auth
from koral_ansible.console.csrf import checked_form
from koral_ansible.console.signout import SignedOut
from koral_ansible.console.templates import render
from koral_ansible.console.throttle import LoginThrottle


def session_cookie(response: Response, value: str, max_age: int) -> None:
    response.set_cookie(
        auth.COOKIE, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=True
    )


async def login_page(request: Request) -> Response:
    return render(request, "login.html", error="")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login(request: Request) -> Response:
    throttle: LoginThrottle = request.app.state.login_throttle
    client = _client(request)
    wait = throttle.retry_after(client)
    if wait:
        response = render(
            request, "login.html", 429, error=f"Too many wrong tokens from {client}: try again in {wait} s."
        )
        response.headers["Retry-After"] = str(wait)
        return response
    form = await request.form()
    token: str = request.state.token
    if not auth.token_matches(token, str(form.get("token") or "")):
        throttle.failed(client)
        # What was typed is never written anywhere: it may be a near miss of the real token.
        print(f"console: sign-in refused from {client}: not the login token", file=sys.stderr, flush=True)
        return render(request, "login.html", 401, error="That is not this console's login token.")
    signed_in = RedirectResponse("/", status_code=303)
    session_cookie(signed_in, auth.new_session_cookie(token), auth.SESSION_SECONDS)
    return signed_in


async def logout(request: Request) -> Response:
    await checked_form(request)
    session: auth.Session = request.state.session
    signed_out: SignedOut = request.state.signed_out
    signed_out.add(session.sid)  # a copy of this cookie is refused from now on, too
    response = RedirectResponse("/login", status_code=303)
    session_cookie(response, "", 0)
    return response


ROUTES = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
