"""The console's routes, one module per area; :data:`ROUTES` is every one of them."""

from __future__ import annotations

from starlette.routing import BaseRoute

from koral_ansible.console.routes import actions, clusters, create, jobs, login, rules

ROUTES: list[BaseRoute] = [
    *login.ROUTES,
    *clusters.ROUTES,
    *create.ROUTES,
    *actions.ROUTES,
    *rules.ROUTES,
    *jobs.ROUTES,
]
