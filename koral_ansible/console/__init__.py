"""``koral-play console``: the web console over the library API the CLI uses.

Server-rendered pages (Starlette + Jinja2) with one small script for live updates (EventSource)
and CSRF-carrying fetches. Modules: :mod:`.auth` (login token, sessions), :mod:`.csrf` (CSRF
token, Origin/Host checks), :mod:`.headers` (security headers), :mod:`.templates`, :mod:`.sse`,
:mod:`.views` (what the pages show, from ``koral_ansible.operations.query``), :mod:`.routes`
(one module per area) and :mod:`.app` (wiring).
"""
