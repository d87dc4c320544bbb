"""Firewall, port forwarding and load balancer rules: add and delete through ``koral_ansible.rules``
(the CLI's validation and the cluster lock; an InputError is shown at its field)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from koral_ansible.console.csrf import checked_form
from koral_ansible.console.envs import env_of
from koral_ansible.console.routes.clusters import RULE_TABS, render_cluster
from koral_ansible.console.routes.errors import error_page, status_of
from koral_ansible.errors import InputError, KoralError, NotFoundError
from koral_ansible.operations.context import Env
from koral_ansible.rules import ops, validate
from koral_ansible.rules.model import FIREWALL, PORT_FORWARD, Rule
from koral_ansible.spec import max_cluster_size

FIELDS = ("name", "protocol", "port", "public_port", "private_port", "node", "algorithm", "members", "cidrs")
#: The CLI's option names in InputError.field -> the form's inputs.
FIELD_OF = {"cidr": "cidrs", "member": "members", "NAME": "name"}


def _opt(form: FormData, key: str) -> str | None:
    return str(form.get(key) or "").strip() or None


def _list(form: FormData, key: str) -> list[str]:
    return [v.strip() for v in str(form.get(key) or "").split(",") if v.strip()]


def _add(env: Env, name: str, kind: str, form: FormData) -> Rule:
    max_size = max_cluster_size(field="--max-size")
    proto, cidrs = _opt(form, "protocol"), _list(form, "cidrs")
    if kind == FIREWALL:
        return ops.add(
            env,
            name,
            lambda rec, have: validate.firewall_rule(
                rec, have, proto=proto, port=_opt(form, "port"), cidrs=cidrs, max_size=max_size
            ),
        )
    if kind == PORT_FORWARD:
        return ops.add(
            env,
            name,
            lambda rec, have: validate.port_forward_rule(
                rec,
                have,
                proto=proto,
                public_port=_opt(form, "public_port"),
                private_port=_opt(form, "private_port"),
                node=_opt(form, "node") or "",
                cidrs=cidrs,
                max_size=max_size,
            ),
        )
    return ops.add(
        env,
        name,
        lambda rec, have: validate.lb_rule(
            rec,
            have,
            name=_opt(form, "name") or "",
            proto=proto,
            public_port=_opt(form, "public_port"),
            private_port=_opt(form, "private_port"),
            algo=_opt(form, "algorithm"),
            members=_list(form, "members"),
            cidrs=cidrs,
            max_size=max_size,
        ),
    )


def _field(exc: KoralError) -> str:
    if not isinstance(exc, InputError):
        return ""
    field = exc.field.lstrip("-").replace("-", "_")
    field = FIELD_OF.get(field, field)
    return field if field in FIELDS else ""


def _do(request: Request, name: str, kind: str, form: FormData, rule: str | None) -> Response:
    with env_of(request) as env:
        try:
            env.store.get_cluster(name)
            if rule is None:
                _add(env, name, kind, form)
            else:
                ops.delete(env, name, kind, rule)
        except NotFoundError as exc:
            return error_page(request, exc)
        except KoralError as exc:
            values = {k: str(form.get(k) or "") for k in FIELDS}
            return render_cluster(
                request,
                env,
                name,
                kind,
                status_of(exc),
                error=exc.message,
                error_field=_field(exc),
                form=values,
            )
    return RedirectResponse(f"/clusters/{name}?tab={kind}", status_code=303)


async def add_rule(request: Request) -> Response:
    form = await checked_form(request)
    name, kind = request.path_params["name"], request.path_params["kind"]
    if kind not in RULE_TABS:
        return Response(f"unknown rule kind {kind!r}; one of: {', '.join(RULE_TABS)}\n", 404)
    return await run_in_threadpool(_do, request, name, kind, form, None)


async def delete_rule(request: Request) -> Response:
    form = await checked_form(request)
    name, kind = request.path_params["name"], request.path_params["kind"]
    if kind not in RULE_TABS:
        return Response(f"unknown rule kind {kind!r}; one of: {', '.join(RULE_TABS)}\n", 404)
    return await run_in_threadpool(_do, request, name, kind, form, request.path_params["rule"])


ROUTES = [
    Route("/clusters/{name}/rules/{kind}", add_rule, methods=["POST"]),
    Route("/clusters/{name}/rules/{kind}/{rule}/delete", delete_rule, methods=["POST"]),
]
