"""Mold's "Add Kubernetes cluster" form: the CLI's create fields, validated by the same builder
(``create_input.build_create_spec``); an error is shown at its field with the values kept, and
nothing is started. A valid form starts the create job and goes to its live progress.

A failed create that used a private registry cannot simply be re-run: its password was given to
the worker only and is (rightly) not kept. Its re-run (``/create?rerun=ID``) is this form filled
with the job's parameters, the password empty, required and a one-line note why."""

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
from koral_ansible.console.routes.errors import error_page
from koral_ansible.console.templates import render
from koral_ansible.create_input import CREATE_FIELDS, build_create_spec
from koral_ansible.errors import InputError, KoralError, NotFoundError
from koral_ansible.operations.context import Env
from koral_ansible.spec import max_cluster_size

#: The form's inputs: the name, the CLI's create fields the form has, the registry password.
FORM_FIELDS = ("name", *(f for f in CREATE_FIELDS if f not in ("bundle", "node_os", "allow_cgroup_v1")))
SECRET_FIELD = "registry_password"
RERUN_NOTE = (
    "The registry password is not kept after a create starts (only its worker had it): "
    "type it again to re-run this create."
)


def needs_password(params: dict[str, Any]) -> bool:
    """A registry user name needs its password (``RegistrySpec``: given together), which a job
    never keeps: such a create is re-run through the form."""
    return bool(params.get("registry_username"))


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


def form_of(name: str, params: dict[str, Any]) -> dict[str, str]:
    """The form's values for a create's name and params (the inverse of :func:`params_of`)."""
    values: dict[str, str] = {"name": name}
    for key in FORM_FIELDS[1:]:
        value = params.get(key)
        if key == "ha":
            values[key] = "1" if value else ""
        elif isinstance(value, list):
            values[key] = ", ".join(str(v) for v in value)
        else:
            values[key] = "" if value is None else str(value)
    return values


def _versions(env: Env) -> list[tuple[str, str]]:
    return [("", "default"), *((v, v) for v in views.bundle_versions(env))]


def _form_values(form: FormData | None) -> dict[str, str]:
    """What the user typed, to show again (never the password)."""
    return {k: str(form.get(k) or "") if form else "" for k in FORM_FIELDS}


def _page(
    request: Request,
    form: FormData | None = None,
    exc: KoralError | None = None,
    values: dict[str, str] | None = None,
    note: str = "",
) -> Response:
    with env_of(request) as env:
        field = form_field(exc.field) if isinstance(exc, InputError) else ""
        shown = values if values is not None else _form_values(form)
        return render(
            request,
            "create.html",
            200 if exc is None else 409 if not isinstance(exc, InputError) else 400,
            form=shown,
            versions=_versions(env),
            error=exc.message if exc else "",
            error_field=field,
            password_required=needs_password(shown),
            password_note=note,
        )


def _rerun_page(request: Request, job_id: str) -> Response:
    """The form filled from a failed create job, to type the registry password again."""
    with env_of(request) as env:
        try:
            job = jobs.get_job(env, job_id)
            if job.kind != jobs.JobKind.CREATE:
                raise NotFoundError("job", f"job {job_id!r} is not a create job")
        except KoralError as exc:
            return error_page(request, exc)
    values = form_of(job.cluster, job.params)
    return _page(request, values=values, note=RERUN_NOTE if needs_password(job.params) else "")


async def create_page(request: Request) -> Response:
    rerun = request.query_params.get("rerun")
    if rerun is not None:
        return await run_in_threadpool(_rerun_page, request, rerun)
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
