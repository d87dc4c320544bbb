"""A job's live progress (phase, play, per-host task counts, failures), resumable after a reload:
the page renders ``job_view`` and the stream tails ``read_progress`` from where the page is."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from koral_ansible import jobs
from koral_ansible.console import sse
from koral_ansible.console.csrf import checked_form
from koral_ansible.console.envs import env_of
from koral_ansible.console.routes.create import needs_password
from koral_ansible.console.routes.errors import error_page
from koral_ansible.console.templates import render
from koral_ansible.errors import KoralError
from koral_ansible.operations import query
from koral_ansible.operations.context import Env


def _events(env: Env, cluster: str) -> list[dict[str, Any]]:
    try:
        return query.events(env, cluster)
    except KoralError:
        return []  # deleted, or a create that has not recorded the cluster yet


def _page(request: Request, job_id: str) -> Response:
    with env_of(request) as env:
        try:
            job = jobs.get_job(env, job_id)
            view = jobs.job_view(env, job_id)
        except KoralError as exc:
            return error_page(request, exc)
        return render(request, "job.html", job=job, view=view, events=_events(env, job.cluster), rerun=True)


async def job_page(request: Request) -> Response:
    return await run_in_threadpool(_page, request, request.path_params["id"])


def _json(request: Request, job_id: str) -> Response:
    with env_of(request) as env:
        try:
            job = jobs.get_job(env, job_id)
            view = jobs.job_view(env, job_id)
        except KoralError as exc:
            return JSONResponse({"error": exc.message}, 404)
    return JSONResponse({"job": job.model_dump(mode="json"), "view": view.model_dump(mode="json")})


async def job_json(request: Request) -> Response:
    return await run_in_threadpool(_json, request, request.path_params["id"])


def job_stream(request: Request) -> Response:
    """``view`` events (the whole aggregated view, whenever new progress lines came) and ``job``
    when the job's state changed; ``end`` after it finished."""
    job_id = request.path_params["id"]
    home = str(request.app.state.home)
    state: dict[str, Any] = {"offset": 0, "job": None}

    def poll() -> tuple[list[tuple[str, Any]], bool]:
        env = Env.open(home, quiet=True)
        try:
            job = jobs.get_job(env, job_id)
            lines, offset = jobs.read_progress(env, job_id, state["offset"])
            out: list[tuple[str, Any]] = []
            if lines or state["job"] is None:
                out.append(("view", jobs.job_view(env, job_id).model_dump(mode="json")))
            state["offset"] = offset
            record = job.model_dump(mode="json")
            if record != state["job"]:
                out.append(("job", record))
                state["job"] = record
        except KoralError as exc:
            return [("error", {"message": exc.message})], True
        finally:
            env.store.close()
        return out, job.state != jobs.JobState.RUNNING

    return sse.stream(poll)


def _rerun(request: Request, job_id: str) -> Response:
    """Start the job again with its kind and params; a create that needs its registry password
    (never kept) goes to the create form filled from the job instead."""
    with env_of(request) as env:
        try:
            old = jobs.get_job(env, job_id)
            if old.kind == jobs.JobKind.CREATE and needs_password(old.params):
                return RedirectResponse(f"/create?{urlencode({'rerun': old.id})}", status_code=303)
            job = jobs.start_job(env, old.kind.value, old.cluster, dict(old.params))
        except KoralError as exc:
            return error_page(request, exc, back=f"/jobs/{job_id}")
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


async def rerun(request: Request) -> Response:
    await checked_form(request)
    return await run_in_threadpool(_rerun, request, request.path_params["id"])


ROUTES = [
    Route("/jobs/{id}", job_page, methods=["GET"]),
    Route("/jobs/{id}/json", job_json, methods=["GET"]),
    Route("/jobs/{id}/stream", job_stream, methods=["GET"]),
    Route("/jobs/{id}/rerun", rerun, methods=["POST"]),
]
