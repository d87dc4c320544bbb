"""Sign in with the login token (the only page without a session), sign out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from koral_ansible.console import auth
from koral_ansible.console.csrf import checked_form
from koral_ansible.console.templates import render


def session_cookie(response: Response, value: str, max_age: int) -> None:
    response.set_cookie(
        auth.COOKIE, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=True
    )


async def login_page(request: Request) -> Response:
    return render(request, "login.html", error="")


async def login(request: Request) -> Response:
    form = await request.form()
    token: str = request.state.token
    if not auth.token_matches(token, str(form.get("token") or "")):
        return render(request, "login.html", 401, error="That is not this console's login token.")
    response = RedirectResponse("/", status_code=303)
    session_cookie(response, auth.new_session_cookie(token), auth.SESSION_SECONDS)
    return response


async def logout(request: Request) -> Response:
    await checked_form(request)
    response = RedirectResponse("/login", status_code=303)
    session_cookie(response, "", 0)
    return response


ROUTES = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
