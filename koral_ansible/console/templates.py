"""Jinja2 templates (autoescaped) and the one render helper every page goes through."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from koral_ansible.console.auth import Session

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("koral_ansible.console", "templates"),
    autoescape=jinja2.select_autoescape(default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    session: Session | None = request.state.session
    csrf = session.csrf_token(request.state.token) if session else ""
    # What the user typed, shown again; an input the form did not send is empty.
    context["form"] = defaultdict(str, context.get("form") or {})
    html = ENV.get_template(name).render(csrf=csrf, signed_in=session is not None, **context)
    return HTMLResponse(html, status_code=status)
