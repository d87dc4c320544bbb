"""The ASGI middleware in front of every route: Host check, session, Origin check, headers.

Order: a request for a host the console does not serve is 403; without a valid session every path
but ``/login`` and ``/static/`` is 401 (the login page as body, so a browser can sign in); a
state-changing request from another origin is 403. The CSRF token itself is checked where the
form is read (:func:`koral_ansible.console.csrf.checked_form`). A response that streams (the live
pages' event streams) is checked again before each chunk: when its session ended (the token was
rotated, or it expired) the stream is closed, and the browser's reconnect meets the 401.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koral_ansible.console import auth, csrf
from koral_ansible.console.headers import with_security_headers
from koral_ansible.console.signout import SignedOut

OPEN_PATHS = ("/login", "/static/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class _SessionEnded(Exception):
    """Stops a streaming response whose session ended while it streamed."""


class Guard:
    def __init__(
        self, app: ASGIApp, tokens: auth.TokenFile, allowed_hosts: frozenset[str], signed_out: SignedOut
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.allowed_hosts = allowed_hosts
        self.signed_out = signed_out

    def session(self, cookie: str | None) -> auth.Session | None:
        """The cookie's session under the token file's current token, unless it signed out."""
        session = auth.session_of(self.tokens.current(), cookie)
        return None if session is None or session.sid in self.signed_out else session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": with_security_headers(list(message.get("headers", [])), path),
                }
            await send(message)

        host = _header(scope, b"host") or ""
        refusal = csrf.host_refusal(host, self.allowed_hosts)
        if refusal is None:
            refusal = csrf.origin_refusal(
                str(scope["method"]), host, _header(scope, b"origin"), _header(scope, b"referer")
            )
        if refusal is not None:
            await _plain(send_secured, 403, refusal)
            return
        cookies = SimpleCookie()
        cookies.load(_header(scope, b"cookie") or "")
        morsel = cookies.get(auth.COOKIE)
        token = self.tokens.current()  # the token file's now, so a rotation counts at once
        cookie = morsel.value if morsel else None
        session = self.session(cookie)
        state = scope.setdefault("state", {})
        state["session"], state["token"] = session, token  # the routes' (csrf, login) token
        state["signed_out"] = self.signed_out
        if session is None and not path.startswith(OPEN_PATHS):
            if scope["method"] == "GET" and "text/html" in (_header(scope, b"accept") or ""):
                await _sign_in_link(send_secured, "/login")
            else:
                await _plain(send_secured, 401, "sign in first: this console needs its login token")
            return
        if session is None:
            await self.app(scope, receive, send_secured)
            return
        ended = False

        async def send_checked(message: Message) -> None:
            nonlocal ended
            streaming = message["type"] == "http.response.body" and message.get("more_body", False)
            if streaming and self.session(cookie) is None:
                ended = True
                await send_secured({"type": "http.response.body", "body": b"", "more_body": False})
                raise _SessionEnded
            await send_secured(message)

        try:
            await self.app(scope, receive, send_checked)
        except Exception:
            if not ended:  # however the app passes it on (as is, or as ClientDisconnect)
                raise


async def _plain(send: Send, status: int, text: str) -> None:
    body = f"{text}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _sign_in_link(send: Send, location: str) -> None:
    """A browser's page request without a session: 401 would show a bare error, so the login page
    is one click away (status 401 with a link) rather than a silent redirect."""
    body = (
        f'<!doctype html><title>Sign in</title><p>Sign in first: <a href="{location}">login</a></p>'.encode()
    )
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
