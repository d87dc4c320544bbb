"""Mold's "Add Kubernetes cluster" form: the CLI's create fields, validated by the same builder
(``create_input.build_create_spec``); an error is shown at its field with the values kept, and
nothing is started. A valid form starts the create job and goes to its live progress."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from koral_ansible import jobs
from koral_ansible.console import views
from koral_ansible.console.csrf import checked_form
from koral_ansible.console.envs import env_of
from koral_ansible.console.templates import render
from koral_ansible.create_input import CREATE_FIELDS, build_create_spec
from koral_ansible.errors import InputError, KoralError
from koral_ansible.operations.context import Env
from koral_ansible.spec import max_cluster_size

#: The form's inputs: the name, the CLI's create fields the form has, the registry password.
FORM_FIELDS = ("name", *(f for f in CREATE_FIELDS if f not in ("bundle", "node_os", "allow_cgroup_v1")))
SECRET_FIELD = "registry_password"


def form_field(error_field: str) -> str:
    """The form input an InputError's ``.field`` belongs to ('' when none: shown above the form)."""
    field = error_field.lstrip("-").replace("-", "_")
    head, _, tail = field.partition(".")
    if head == "registry":
        return f"registry_{tail.split('.')[0]}" if tail else "registry_username"
    if head == "version":
        head = "kubernetes_version"
    return head if head in FORM_FIELDS or head == SECRET_FIELD else ""


def params_of(form: FormData) -> tuple[str, dict[str, Any], str | None]:
    """(name, create params, registry password) from the form; an empty input is "not given"."""
    params: dict[str, Any] = {}
    for key in FORM_FIELDS[1:]:
        value = str(form.get(key) or "").strip()
        if key == "ha":
            params[key] = True if value else None
        elif key == "allowed_cidrs":
            params[key] = [c.strip() for c in value.split(",") if c.strip()] or None
        else:
            params[key] = value or None
    password = str(form.get(SECRET_FIELD) or "") or None
    return str(form.get("name") or "").strip(), {k: v for k, v in params.items() if v is not None}, password


def _versions(env: Env) -> list[tuple[str, str]]:
    return [("", "default"), *((v, v) for v in views.bundle_versions(env))]


def _form_values(form: FormData | None) -> dict[str, str]:
    """What the user typed, to show again (never the password)."""
    return {k: str(form.get(k) or "") if form else "" for k in FORM_FIELDS}


def _page(request: Request, form: FormData | None = None, exc: KoralError | None = None) -> Response:
    with env_of(request) as env:
        field = form_field(exc.field) if isinstance(exc, InputError) else ""
        return render(
            request,
            "create.html",
            200 if exc is None else 409 if not isinstance(exc, InputError) else 400,
            form=_form_values(form),
            versions=_versions(env),
            error=exc.message if exc else "",
            error_field=field,
        )


async def create_page(request: Request) -> Response:
    return await run_in_threadpool(_page, request)


def _start(request: Request, form: FormData) -> Response:
    name, params, password = params_of(form)
    secrets = {SECRET_FIELD: password} if password else None
    with env_of(request) as env:
        try:
            # The name first: it names the lock file start_job checks before the spec.
            build_create_spec(name, params, password, max_size=max_cluster_size(field="--max-size"))
            job = jobs.start_job(env, "create", name, params, secrets)
        except KoralError as exc:
            return _page(request, form, exc)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


async def create(request: Request) -> Response:
    form = await checked_form(request)
    return await run_in_threadpool(_start, request, form)


ROUTES = [
    Route("/create", create_page, methods=["GET"]),
    Route("/create", create, methods=["POST"]),
]
