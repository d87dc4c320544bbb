"""CSRF protection: the session's token on every state-changing request, plus Origin and Host checks.

- Host: only the addresses the console listens on (DNS-rebinding pages name another host).
- Origin: a POST must come from the console's own origin (``Origin``, else ``Referer``; neither is a
  refusal), as OWASP's CSRF cheat sheet recommends on top of a token.
- Token: the form field ``csrf`` or the ``X-CSRF-Token`` header must carry the session's CSRF token.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from koral_ansible.console.auth import Session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEADER = "x-csrf-token"
FIELD = "csrf"


def origin_refusal(method: str, host: str, origin: str | None, referer: str | None) -> str | None:
    """Why an unsafe request's origin is refused (None: it is the console's own)."""
    if method in SAFE_METHODS:
        return None
    source = origin or referer
    if not source or source == "null":
        return "a state-changing request needs an Origin header"
    if urlsplit(source).netloc != host:
        return f"origin {urlsplit(source).netloc or source!r} is not this console ({host})"
    return None


def host_refusal(host: str, allowed: frozenset[str]) -> str | None:
    return None if host in allowed else f"host {host!r} is not one this console serves"


async def checked_form(request: Request) -> FormData:
    """The request's form after its CSRF token was checked (403 otherwise)."""
    form = await request.form()
    session: Session = request.state.session
    expected = session.csrf_token(request.state.token)
    given = request.headers.get(HEADER) or str(form.get(FIELD) or "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")
    return form
