"""The cluster's actions: scale, upgrade, stop, start, recover, reset, remove a worker, delete
(typed confirmation), autoscaling on/off with min/max. Each starts a job (``jobs.start_job``: the
same checks and the same busy refusal as the CLI) and goes to its live progress; a refusal is
shown on the Actions tab."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from koral_ansible import jobs
from koral_ansible.console.csrf import checked_form
from koral_ansible.console.envs import env_of
from koral_ansible.console.routes.clusters import render_cluster
from koral_ansible.console.routes.errors import error_page, status_of
from koral_ansible.errors import InputError, KoralError, NotFoundError

#: kind -> the form inputs that are its params
ACTIONS: dict[str, tuple[str, ...]] = {
    "scale": ("size",),
    "upgrade": ("version",),
    "stop": (),
    "start": (),
    "recover": (),
    "reset": (),
    "remove-node": ("node",),
    "delete": (),
    "autoscale": ("enable", "min", "max"),
}


def params_of(kind: str, form: FormData) -> dict[str, Any]:
    """The job's params from the form: an empty input is "not given"; autoscale's checkbox is
    ``enable`` true or false (min and max only go with it on, as with the CLI's --enable)."""
    params: dict[str, Any] = {k: str(form.get(k) or "").strip() for k in ACTIONS[kind]}
    if kind == "autoscale":
        params["enable"] = bool(params["enable"])
        if not params["enable"]:
            params.pop("min")
            params.pop("max")
    return {k: v for k, v in params.items() if v != ""}


def confirm_delete(name: str, form: FormData) -> None:
    typed = str(form.get("confirm") or "").strip()
    if typed != name:
        raise InputError("confirm", f"type the cluster name {name!r} to delete it")


def confirm_reset(name: str, form: FormData) -> None:
    """The CLI asks "Reset Kubernetes on every node of NAME?" (or needs --yes): here, a checkbox."""
    if not form.get("confirm_reset"):
        raise InputError("confirm_reset", f"tick the box to reset Kubernetes on every node of {name!r}")


def _start(request: Request, name: str, kind: str, form: FormData) -> Response:
    params = params_of(kind, form)
    tab = "nodes" if kind == "remove-node" else "actions"
    with env_of(request) as env:
        try:
            env.store.get_cluster(name)
            if kind == "delete":
                confirm_delete(name, form)
            elif kind == "reset":
                confirm_reset(name, form)
            job = jobs.start_job(env, kind, name, params)
        except NotFoundError as exc:
            return error_page(request, exc)
        except KoralError as exc:
            field = exc.field.lstrip("-") if isinstance(exc, InputError) else ""
            shown = field if field in (*ACTIONS[kind], "confirm", "confirm_reset") else ""
            return render_cluster(
                request, env, name, tab, status_of(exc), error=exc.message, error_field=shown, form=params
            )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


async def action(request: Request) -> Response:
    form = await checked_form(request)
    name, kind = request.path_params["name"], request.path_params["kind"]
    if kind not in ACTIONS:
        return Response(f"unknown action {kind!r}; one of: {', '.join(ACTIONS)}\n", 404)
    return await run_in_threadpool(_start, request, name, kind, form)


ROUTES = [Route("/clusters/{name}/actions/{kind}", action, methods=["POST"])]
