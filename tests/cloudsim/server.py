"""The HTTP side: ``/client/api`` with CloudStack's authentication, answers and errors."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.cloudsim import errors as E
from tests.cloudsim.backend import MachineBackend, MemoryBackend
from tests.cloudsim.commands import COMMANDS, Api, AsyncPlan
from tests.cloudsim.errors import ApiError
from tests.cloudsim.faults import Fault, Faults
from tests.cloudsim.jobs import Job, JobRunner, new_id
from tests.cloudsim.model import Account, Cloud, public
from tests.cloudsim.request import Request
from tests.cloudsim.signing import SignatureError, check_timestamps, find_param, verify

API_PATH = "/client/api"
CONTROL_PATH = "/_cloudsim"
AUTH_ERROR = "unable to verify user credentials and/or request signature"
# ApiServlet.isStateChangingCommandUsingPOST: these may still come by GET when POST is enforced.
_READ_ONLY = re.compile(r"^(get|list|query|find)\w+$")
_READ_ONLY_NAMES = frozenset(
    (
        "isaccountallowedtocreateofferingswithtags",
        "readyforshutdown",
        "cloudianisenabled",
        "quotabalance",
        "quotasummary",
        "quotatarifflist",
        "quotaisenabled",
        "quotastatement",
        "verifyoauthcodeandgetuser",
    )
)


def _read_only(command: str) -> bool:
    name = command.lower()
    return bool(_READ_ONLY.match(name)) or name in _READ_ONLY_NAMES


@dataclass
class SimConfig:
    """Knobs of one test cloud."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    api_key: str = "koral-test-key"
    secret: str = "koral-test-secret"
    role: str = "Admin"
    extra_accounts: tuple[Account, ...] = ()
    job_latency: float = 0.05  # seconds every async job takes before it completes
    command_latency: dict[str, float] = field(default_factory=dict)  # per-command override
    # "Public" addresses are loopback addresses: anything that follows them (ssh, kubectl) stays on
    # this machine, as the traffic rule of the tests demands (a podman backend DNATs them to nodes).
    public_range: str = "127.0.100.10-127.0.100.250"
    guest_cidr: str = "10.1.1.0/24"
    kubernetes_enabled: bool = True
    max_cluster_size: int = 10
    faults: tuple[Fault, ...] = ()
    # enforce.post.requests.and.timestamps (CloudStack's default: false). On here, so that every
    # client is tested against the stricter setting: state-changing commands only by POST, and
    # only signatureVersion=3 requests whose expires lies at most 15 minutes ahead.
    enforce_post: bool = True


class CloudSim:
    """One test cloud: records, jobs, faults and an HTTP server on loopback."""

    def __init__(self, config: SimConfig | None = None, backend: MachineBackend | None = None) -> None:
        self.config = config or SimConfig()
        if self.config.host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the test cloud listens on loopback only")
        self.cloud = Cloud(
            self.config.public_range,
            self.config.guest_cidr,
            self.config.kubernetes_enabled,
            self.config.max_cluster_size,
        )
        self.cloud.set_config(
            "enforce.post.requests.and.timestamps",
            "true" if self.config.enforce_post else "false",
            self.cloud.configurations["enforce.post.requests.and.timestamps"]["description"],
            "Boolean",
            "false",
        )
        self.backend: MachineBackend = backend or MemoryBackend()
        self.jobs = JobRunner(self._latency)
        self.api = Api(self.cloud, self.backend, self.jobs)
        self.faults = Faults()
        for f in self.config.faults:
            self.faults.add(f)
        main = Account(
            "admin" if self.config.role == "Admin" else "user",
            self.config.api_key,
            self.config.secret,
            self.config.role,
            dbid=2 if self.config.role == "Admin" else 3,
        )
        self.accounts = {a.api_key: a for a in (main, *self.config.extra_accounts)}
        self.calls: list[str] = []  # every command received, in order (for assertions)
        # ... with its parameters (lower-cased names; without apikey and signature)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> CloudSim:
        sim = self

        class Handler(_Handler):
            cloudsim = sim

        self._httpd = ThreadingHTTPServer((self.config.host, self.config.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="cloudsim-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self.jobs.shutdown()

    def __enter__(self) -> CloudSim:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the simulator first"
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.config.host}:{self.port}{API_PATH}"

    def client_env(self) -> dict[str, str]:
        """The environment a CloudStack client (cs, ngine_io, koral) needs to talk to this cloud."""
        return {
            "CLOUDSTACK_ENDPOINT": self.endpoint,
            "CLOUDSTACK_KEY": self.config.api_key,
            "CLOUDSTACK_SECRET": self.config.secret,
        }

    # ---- test helpers -------------------------------------------------------------------------
    def inject(self, command: str, mode: str = "error", calls: Iterable[int] = (), **kw: Any) -> Fault:
        fault = Fault(command=command, mode=mode, calls=frozenset(calls), **kw)  # type: ignore[arg-type]
        self.faults.add(fault)
        return fault

    def set_latency(self, seconds: float, command: str | None = None) -> None:
        if command is None:
            self.config.job_latency = seconds
        else:
            self.config.command_latency[command.lower()] = seconds

    def _latency(self, command: str) -> float:
        return self.config.command_latency.get(command.lower(), self.config.job_latency)

    def counts(self) -> dict[str, int]:
        with self.cloud.lock:
            return self.cloud.counts()

    def expunge_destroyed(self) -> int:
        """What CloudStack's expunge thread does every expunge.interval: remove Destroyed VMs."""
        from tests.cloudsim.commands import _expunge

        with self.cloud.lock:
            ids = [v["id"] for v in self.cloud.vms.values() if v["state"] == "Destroyed"]
        for vid in ids:
            self.backend.destroy(vid)
            _expunge(self.api, vid)
        return len(ids)

    def wait_idle(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while self.jobs.pending() and time.monotonic() < end:
            time.sleep(0.01)

    # ---- dispatch -----------------------------------------------------------------------------
    def handle(self, raw: dict[str, str], method: str = "GET") -> tuple[int, dict[str, Any] | str, str]:
        """Answer one API request: (HTTP status, body, content type)."""
        cmd_name = next((v for k, v in raw.items() if k.lower() == "command"), "")
        cmd = COMMANDS.get(cmd_name.lower())
        if cmd is not None and (cmd.name != cmd_name or not self._plugin_on(cmd.plugin)):
            cmd = None  # command names are case-sensitive; a disabled plugin's commands do not exist
        # ApiServer.getSerializedApiError: the command's response name, "errorresponse" when the
        # server has no such command.
        wrapper = f"{cmd.name.lower()}response" if cmd else "errorresponse"
        enforced = self.cloud.configurations["enforce.post.requests.and.timestamps"]["value"] == "true"
        if enforced and method != "POST" and not _read_only(cmd_name):
            # ApiServlet (enforce.post.requests.and.timestamps): state-changing APIs only by POST.
            text = f"State changing command {cmd_name} needs to be sent using POST request"
            return E.METHOD_NOT_ALLOWED, {wrapper: E.server_api(E.METHOD_NOT_ALLOWED, text).body()}, "json"
        if cmd is None:
            self.calls.append(f"?{cmd_name}")  # a command this cloud does not have (tests check these)
            # ApiServer.verifyRequest: a signed request for a command the server does not have
            # is refused before the signature is checked -> ApiServlet answers 401.
            return 401, {wrapper: {"uuidList": [], "errorcode": 401, "errortext": AUTH_ERROR}}, "json"
        with self.cloud.lock:
            callers = {**self.accounts, **self.cloud.user_keys}  # users' own keys sign too
        caller = callers.get(find_param(raw, "apikey") or "")
        if caller is not None and cmd.admin_only and not caller.is_admin:
            # ApiServer.verifyRequest -> commandAvailable, before the signature is compared: the role
            # checker (DynamicRoleBasedAPIAccessChecker.checkAccess) throws UnavailableCommandException
            # -> ServerApiException(UNSUPPORTED_ACTION_ERROR).
            who = f'{{"id":{caller.dbid},"uuid":"{caller.id}","accountName":"{caller.name}","domainId":1}}'
            text = f"The API [{cmd.name}] does not exist or is not available for the account Account {who}."
            return (
                E.UNSUPPORTED_ACTION_ERROR,
                {wrapper: E.server_api(E.UNSUPPORTED_ACTION_ERROR, text).body()},
                "json",
            )
        try:
            if enforced:
                check_timestamps(raw)
            api_key = verify(raw, {k: a.secret for k, a in callers.items()})
        except SignatureError:
            return 401, {wrapper: {"uuidList": [], "errorcode": 401, "errortext": AUTH_ERROR}}, "json"
        account = callers[api_key]
        self.calls.append(cmd.name)
        self.requests.append(
            (cmd.name, {k.lower(): v for k, v in raw.items() if k.lower() not in ("apikey", "signature")})
        )
        params = {k.lower(): v for k, v in raw.items()}
        req = Request(cmd.name, params, account)
        fault = self.faults.hit(cmd.name)
        if fault is not None and fault.mode == "http503":
            return 503, "<html><body><h1>503 Service Unavailable</h1></body></html>", "html"
        if fault is not None and fault.mode == "timeout" and cmd.kind != "async":
            time.sleep(fault.hang_seconds)
        try:
            if cmd.name == "queryAsyncJobResult":
                body = self._query_job(req)
            elif cmd.kind == "async":
                body = self._submit(cmd.name, cmd.cmd_class, req, fault)
            elif fault is not None and fault.mode == "error":
                raise fault.error()
            elif cmd.kind == "list":
                body = self._list(cmd.name, req)
            else:
                with self.cloud.lock:
                    body = cmd.fn(self.api, req)
        except ApiError as exc:
            return exc.errorcode, {wrapper: exc.body()}, "json"
        except Exception as exc:  # a bug in the simulator answers like CloudStack's internal error
            return 530, {wrapper: ApiError(530, f"{type(exc).__name__}: {exc}", 4250).body()}, "json"
        return 200, {wrapper: body}, "json"

    def _plugin_on(self, plugin: str | None) -> bool:
        if plugin is None:
            return True
        return bool(self.cloud.configurations["cloud.kubernetes.service.enabled"]["value"] == "true")

    def _list(self, name: str, req: Request) -> dict[str, Any]:
        with self.cloud.lock:
            key, records = COMMANDS[name.lower()].fn(self.api, req)
            items = [public(r) for r in records]
            default_size = int(self.cloud.configurations["default.page.size"]["value"])
        page = req.integer("page")
        size = req.integer("pagesize")
        if size is not None and size != -1 and size > default_size:
            raise E.invalid_value(f"Page size can't exceed max allowed page size value: {default_size}")
        if size == -1 and page is not None:
            raise E.invalid_value("Can't specify page parameter when pagesize is -1 (Unlimited)")
        total = len(items)
        if size != -1:
            size = size if size and size > 0 else default_size
            start = (max(page or 1, 1) - 1) * size
            items = items[start : start + size]
        return {"count": total, key: items} if items else {}

    def _submit(self, name: str, cmd_class: str, req: Request, fault: Fault | None) -> dict[str, Any]:
        with self.cloud.lock:
            plan: AsyncPlan = COMMANDS[name.lower()].fn(self.api, req)
        job = Job(
            new_id(),
            name,
            cmd_class,
            req.account.id,
            req.account.user_id,
            plan.instance_type,
            plan.instance_id,
        )
        injected = fault.error() if fault is not None and fault.mode == "error" else None
        hang = fault is not None and fault.mode == "timeout"
        self.jobs.submit(job, plan.body, plan.on_error, injected, hang)
        out: dict[str, Any] = {}
        if plan.created_id:
            out["id"] = plan.created_id
        out["jobid"] = job.id
        return out

    def _query_job(self, req: Request) -> dict[str, Any]:
        job_id = req.require("jobid")
        job = self.jobs.get(job_id)
        if job is None:
            raise E.bad_id(req.command, "jobid", job_id)
        if job.account_id != req.account.id and not req.account.is_admin:
            # ApiResponseHelper.queryJobResult: a normal user sees only its own jobs
            raise E.permission_denied(f"Account {req.account.name} is not authorized to see job id={job.id}")
        return job.view()

    # ---- control endpoint (loopback test harness only) ----------------------------------------
    def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/faults":
            for text in body.get("add", []):
                self.faults.add(Fault.parse(text))
            if body.get("clear"):
                self.faults.clear()
            return {"faults": [f.__dict__ | {"calls": sorted(f.calls)} for f in self.faults.rules]}
        if path == "/latency":
            self.set_latency(float(body["seconds"]), body.get("command"))
            return {"job_latency": self.config.job_latency, "command_latency": self.config.command_latency}
        if path == "/counts":
            return self.counts()
        raise KeyError(path)


class _Handler(BaseHTTPRequestHandler):
    cloudsim: CloudSim
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body leave in one segment (no Nagle + delayed-ACK stall)
    server_version = "cloudsim/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read sim.calls instead
        return

    def _params(self, query: str) -> dict[str, str]:
        params: dict[str, str] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            params.setdefault(k, v)  # the first value wins, as with the servlet's getParameter
        return params

    def _reply(self, status: int, body: dict[str, Any] | str, kind: str) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        ctype = "application/json; charset=UTF-8" if kind == "json" else "text/html; charset=UTF-8"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, query: str, form: str = "") -> None:
        parts = urlsplit(self.path)
        if parts.path.rstrip("/") == API_PATH:
            params = self._params(query)
            params.update({k: v for k, v in self._params(form).items() if k not in params})
            status, body, kind = self.cloudsim.handle(params, self.command)
            self._reply(status, body, kind)
        elif parts.path.startswith(CONTROL_PATH):
            try:
                data = json.loads(form or "{}")
                out = self.cloudsim.control(parts.path[len(CONTROL_PATH) :], data)
            except (KeyError, ValueError) as exc:
                self._reply(400, {"error": str(exc)}, "json")
                return
            self._reply(200, out, "json")
        else:
            self._reply(404, "<html><body>404 Not Found</body></html>", "html")

    def do_GET(self) -> None:
        self._route(urlsplit(self.path).query)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length).decode("utf-8") if length else ""
        self._route(urlsplit(self.path).query, form)
