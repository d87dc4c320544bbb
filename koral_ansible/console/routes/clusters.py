"""The cluster list (live), the cluster view's tabs, the kubeconfig download and the live events."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from koral_ansible import jobs
from koral_ansible.console import sse, usage, views
from koral_ansible.console.envs import env_of
from koral_ansible.console.routes.errors import error_page
from koral_ansible.console.templates import render
from koral_ansible.errors import KoralError, NotFoundError
from koral_ansible.operations import query
from koral_ansible.operations.context import Env
from koral_ansible.rules import ops as rule_ops
from koral_ansible.rules.model import ALGORITHMS, FIREWALL, LB, PORT_FORWARD, PROTOCOLS

RULE_TABS = {FIREWALL: "Firewall", PORT_FORWARD: "Port forwarding", LB: "Load balancer"}
TABS = (
    ("details", "Details"),
    ("access", "Access"),
    ("nodes", "Nodes"),
    *RULE_TABS.items(),
    ("events", "Events"),
    ("actions", "Actions"),
)
DETAIL_FIELDS = (
    ("name", "Name"),
    ("description", "Description"),
    ("state", "State"),
    ("provider", "Provider"),
    ("zone", "Zone"),
    ("version", "Kubernetes version"),
    ("autoscaling", "Autoscaling"),
    ("size", "Size"),
    ("control_nodes", "Control nodes"),
    ("ha", "HA"),
    ("compute_offering", "Compute offering"),
    ("cpu", "CPU"),
    ("memory", "Memory (MiB)"),
    ("root_disk_size", "Root disk (GB)"),
    ("node_os", "Node OS"),
    ("network", "Network"),
    ("cni", "CNI"),
    ("pod_cidr", "Pod CIDR"),
    ("service_cidr", "Service CIDR"),
    ("allowed_cidrs", "Allowed CIDRs"),
    ("registry", "Private registry"),
    ("endpoint", "API endpoint"),
    ("created", "Created"),
)


def _list(request: Request) -> Response:
    with env_of(request) as env:
        return render(request, "list.html", clusters=views.cluster_rows(env))


async def cluster_list(request: Request) -> Response:
    return await run_in_threadpool(_list, request)


def _rows(request: Request) -> Response:
    with env_of(request) as env:
        return JSONResponse(views.cluster_rows(env))


async def cluster_rows(request: Request) -> Response:
    return await run_in_threadpool(_rows, request)


def clusters_stream(request: Request) -> Response:
    """``state`` events: every cluster's row whenever it changed (first: all of them)."""
    sent: dict[str, Any] = {}
    home = str(request.app.state.home)

    def poll() -> tuple[list[tuple[str, Any]], bool]:
        env = Env.open(home, quiet=True)
        try:
            rows = {r["name"]: r for r in views.cluster_rows(env)}
        finally:
            env.store.close()
        out: list[tuple[str, Any]] = [("state", r) for n, r in rows.items() if sent.get(n) != r]
        out += [("gone", {"name": n}) for n in sent if n not in rows]
        sent.clear()
        sent.update(rows)
        return out, False

    return sse.stream(poll)


def page_context(env: Env, name: str, tab: str) -> dict[str, Any]:
    """Everything the cluster view shows on ``tab`` (the library's read views; no secrets)."""
    record = env.store.get_cluster(name)
    detail = query.detail(env, record)
    detail["allowed_cidrs"] = ", ".join(detail["allowed_cidrs"])
    job = jobs.running_job(env, name)
    last = next(iter(jobs.list_jobs(env, name, limit=1)), None)
    ctx: dict[str, Any] = {
        "d": detail,
        "tab": tab,
        "tabs": TABS,
        "detail_fields": DETAIL_FIELDS,
        "rule_tabs": RULE_TABS,
        "busy": views.busy(env, name),
        "job": job,
        "failed_job": last if last is not None and last.state == jobs.JobState.FAILED else None,
        "has_kubeconfig": env.paths.kubeconfig(name).exists(),
        "nodes": [query.node_row(n) for n in record.nodes],
        "rules": [],
        "events": [],
        "upgrade_targets": views.upgrade_targets(env, record),
        "protocols": (),
        "algorithms": ALGORITHMS,
        "error": "",
        "error_field": "",
        "form": {},
    }
    if tab == "nodes":
        ctx["nodes"] = usage.with_usage(env, name, ctx["nodes"])
    elif tab in RULE_TABS:
        ctx["rules"] = [r.row() for r in rule_ops.rules(env, name, tab)]
        ctx["protocols"] = PROTOCOLS[tab]
    elif tab == "events":
        ctx["events"] = query.events(env, name)
    return ctx


def render_cluster(
    request: Request, env: Env, name: str, tab: str, status: int = 200, **extra: Any
) -> Response:
    if tab not in dict(TABS):
        tab = "details"
    ctx = page_context(env, name, tab)
    ctx.update(extra)
    return render(request, "cluster.html", status, **ctx)


def _view(request: Request, name: str, tab: str) -> Response:
    with env_of(request) as env:
        try:
            return render_cluster(request, env, name, tab)
        except KoralError as exc:
            return error_page(request, exc)


async def cluster_view(request: Request) -> Response:
    name = request.path_params["name"]
    return await run_in_threadpool(_view, request, name, request.query_params.get("tab", "details"))


def _kubeconfig(request: Request, name: str) -> Response:
    with env_of(request) as env:
        try:
            path = query.kubeconfig_path(env, name)
        except KoralError as exc:
            return error_page(request, exc, back=f"/clusters/{name}?tab=access")
        data = path.read_bytes()
        env.store.event(
            name, "kubeconfig", "download", "Downloaded", "admin kubeconfig downloaded in the console"
        )
    return Response(
        data,
        media_type="application/yaml",
        headers={
            "content-disposition": f'attachment; filename="{name}.kubeconfig"',
            "cache-control": "no-store",
        },
    )


async def kubeconfig(request: Request) -> Response:
    return await run_in_threadpool(_kubeconfig, request, request.path_params["name"])


def events_stream(request: Request) -> Response:
    """``event`` events: the cluster's events after the first ``after`` (what the page has).

    An unknown cluster ends the stream, unless ``wait=1`` (a create's progress page, opened before
    the create recorded its cluster): then it ends once the cluster existed and is gone."""
    name = request.path_params["name"]
    home = str(request.app.state.home)
    raw = request.query_params.get("after", "0")
    seen = [int(raw) if raw.isdigit() else 0]
    waiting = [request.query_params.get("wait") == "1"]

    def poll() -> tuple[list[tuple[str, Any]], bool]:
        env = Env.open(home, quiet=True)
        try:
            evs = query.events(env, name)
        except NotFoundError:
            return [], not waiting[0]  # deleted: nothing more will come
        finally:
            env.store.close()
        waiting[0] = False
        new = evs[seen[0] :]
        seen[0] = len(evs)
        return [("event", e) for e in new], False

    return sse.stream(poll)


ROUTES = [
    Route("/", cluster_list, methods=["GET"]),
    Route("/api/clusters", cluster_rows, methods=["GET"]),
    Route("/stream/clusters", clusters_stream, methods=["GET"]),
    Route("/clusters/{name}", cluster_view, methods=["GET"]),
    Route("/clusters/{name}/kubeconfig", kubeconfig, methods=["GET"]),
    Route("/clusters/{name}/events/stream", events_stream, methods=["GET"]),
]
