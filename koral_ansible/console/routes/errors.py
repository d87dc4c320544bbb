"""How library errors become pages: bad input 400 (at its field), unknown names 404, busy 409."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

from koral_ansible.console.templates import render
from koral_ansible.errors import KoralError, LockedError, NotFoundError


def status_of(exc: KoralError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, LockedError):
        return 409
    return 400 if exc.exit_code == 2 else 500


def error_page(request: Request, exc: KoralError, back: str = "/") -> HTMLResponse:
    heading = {404: "Not found", 409: "Busy", 400: "Bad input"}.get(status_of(exc), "Failed")
    return render(request, "error.html", status_of(exc), heading=heading, message=exc.message, back=back)
