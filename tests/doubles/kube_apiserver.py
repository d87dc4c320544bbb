"""The kube-apiserver double: HTTPS, authentication, discovery, REST verbs, watches, Tables.

Started by the kubelet double from the kube-apiserver static pod manifest (``KORAL_DOUBLE_PROG=
kube-apiserver``) with the manifest's flags. What real clients (kubectl, client-go, the Python
``kubernetes`` client) need, with upstream semantics (kubernetes/kubernetes):

- authentication: client certificates of --client-ca-file (user = CN, groups = O), bootstrap
  tokens (plugin/pkg/auth/authenticator/token/bootstrap), front-proxy headers
  (staging/src/k8s.io/apiserver/pkg/authentication/request/headerrequest); anonymous requests only
  reach what system:public-info-viewer allows and kube-public/cluster-info
  (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go);
- discovery: /api, /apis, /apis/<group>, /api/v1, /apis/<group>/<version> (legacy discovery;
  kubectl asks for aggregated discovery first and falls back when the answer is not of the
  apidiscovery.k8s.io content type, staging/src/k8s.io/client-go/discovery/discovery_client.go);
- /openapi/v3 with the PATCH operations' fieldValidation parameter (see apiserver_resources);
- REST: staging/src/k8s.io/apiserver/pkg/endpoints/handlers (create.go, update.go, patch.go,
  delete.go, get.go, watch.go), Table output (rest/table.go, Accept ``as=Table``);
- one state: API servers of later control-plane nodes forward every request to the first one
  with their front-proxy client certificate, like an aggregated API server.

Stdlib only: shipped inside the doubles' zipapp.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hmac
import http.client
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

try:
    from . import apiserver_controllers as ctl
    from . import apiserver_patch as patch
    from . import apiserver_protobuf as pb
    from . import apiserver_protobuf_workloads as pbw
    from . import apiserver_resources as res
    from . import apiserver_store as st
    from . import apiserver_tokens as tokens
    from . import k8s_double as kd
except ImportError:  # run from the zipapp (top-level modules)
    import apiserver_controllers as ctl  # type: ignore[no-redef]
    import apiserver_patch as patch  # type: ignore[no-redef]
    import apiserver_protobuf as pb  # type: ignore[no-redef]
    import apiserver_protobuf_workloads as pbw  # type: ignore[no-redef]
    import apiserver_resources as res  # type: ignore[no-redef]
    import apiserver_store as st  # type: ignore[no-redef]
    import apiserver_tokens as tokens  # type: ignore[no-redef]
    import k8s_double as kd  # type: ignore[no-redef]

_BOOTSTRAP_ALLOWED = [
    ("GET", re.compile(r"^/api/v1/namespaces/kube-system/configmaps/(kubeadm-config|kubelet-config)$")),
    ("GET", re.compile(r"^/api/v1/namespaces/kube-system/secrets/kubeadm-certs$")),
    ("GET", re.compile(r"^/api/v1/nodes/[^/]+$")),
    ("POST", re.compile(r"^/apis/certificates\.k8s\.io/v1/certificatesigningrequests$")),
]
_ANON_ALLOWED = re.compile(
    r"^/(healthz|livez|readyz|version)$|^/api/v1/namespaces/kube-public/configmaps/cluster-info$"
)
_META_KEYS = {
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
}
# Top-level fields per kind for ?fieldValidation=Strict (the types in staging/src/k8s.io/api).
_TOP = {
    "ConfigMap": {"data", "binaryData", "immutable"},
    "Secret": {"data", "stringData", "type", "immutable"},
    "ServiceAccount": {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
    "Role": {"rules"},
    "ClusterRole": {"rules", "aggregationRule"},
    "RoleBinding": {"subjects", "roleRef"},
    "ClusterRoleBinding": {"subjects", "roleRef"},
    "Endpoints": {"subsets"},
    "EndpointSlice": {"addressType", "endpoints", "ports"},
    "StorageClass": {
        "provisioner",
        "parameters",
        "reclaimPolicy",
        "mountOptions",
        "allowVolumeExpansion",
        "volumeBindingMode",
        "allowedTopologies",
    },
    "PriorityClass": {"value", "globalDefault", "description", "preemptionPolicy"},
    "ControllerRevision": {"data", "revision"},
}
_NO_STRICT = {"Event"}
PROTOBUF = "application/vnd.kubernetes.protobuf"
MANAGED_PATHS = re.compile(r"^/api/v1/namespaces/kube-public/configmaps/cluster-info$")


def identity(handler: BaseHTTPRequestHandler, state: ApiState) -> tuple[str, list[str]] | None:
    conn: ssl.SSLSocket = handler.request  # type: ignore[assignment]
    cert = conn.getpeercert()
    if cert:
        subj = dict(x[0] for x in cert.get("subject", ()))
        orgs = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "organizationName"]
        issuer = dict(x[0] for x in cert.get("issuer", ()))
        if issuer.get("commonName") == "front-proxy-ca" and handler.headers.get("X-Remote-User"):
            groups = [g for g in (handler.headers.get("X-Remote-Group") or "").split(",") if g]
            return handler.headers["X-Remote-User"], groups
        if issuer.get("commonName") == "kubernetes":
            return subj.get("commonName", ""), orgs
    auth = handler.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        m = kd.TOKEN_RE.match(auth[7:].strip())
        if m:
            t = state.tokens().get(m.group(1))
            if (
                t
                and hmac.compare_digest(t["token-secret"], m.group(2))
                and t.get("usage-bootstrap-authentication") == "true"
            ):
                return f"system:bootstrap:{m.group(1)}", [
                    "system:bootstrappers",
                    *t.get("auth-extra-groups", "").split(","),
                ]
        else:
            sa_user = tokens.authenticate(state.store, getattr(handler, "opts", {}), auth[7:].strip())
            if sa_user:
                return sa_user
        return ("", ["invalid"])
    return None


class ApiState:
    """The store, its controllers and the allocators of one (primary) API server."""

    def __init__(self, path: Path, version: str, opts: dict[str, str]) -> None:
        self.version = version
        self.store = st.Store(path)
        self.lock = self.store.lock
        self.controllers = ctl.Controllers(self.store)
        self.alloc = ctl.Allocator(
            self.store,
            opts.get("service-cluster-ip-range", "10.96.0.0/12").split(",")[0],
            opts.get("service-node-port-range", "30000-32767"),
        )
        with self.lock:
            self.controllers.reconcile()
            if self.store.get(ctl.R["services"], "default", "kubernetes") is None:
                svc = {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "kubernetes",
                        "namespace": "default",
                        "labels": {"component": "apiserver", "provider": "kubernetes"},
                    },
                    "spec": {
                        "ports": [
                            {"name": "https", "port": 443, "targetPort": int(opts.get("secure-port", 6443))}
                        ],
                        "clusterIP": str(next(self.alloc.net.hosts())),
                    },
                }
                ctl.defaults(ctl.R["services"], svc)
                svc["spec"]["clusterIPs"] = [svc["spec"]["clusterIP"]]
                svc["spec"].update({"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
                self.store.create(ctl.R["services"], svc)
            self.store.save()

    def tokens(self) -> dict[str, dict[str, str]]:
        import datetime as _dt

        out = {}
        for s in self.store.list(ctl.R["secrets"], "kube-system"):
            if s.get("type") != "bootstrap.kubernetes.io/token":
                continue
            d = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
            exp = d.get("expiration")
            if exp and _dt.datetime.strptime(exp, "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=_dt.UTC
            ) < _dt.datetime.now(_dt.UTC):
                continue
            if "token-id" in d:
                out[d["token-id"]] = d
        return out


def _parse_body(raw: bytes, ctype: str) -> Any:
    if not raw:
        return None
    media = ctype.split(";")[0].strip()
    if media == PROTOBUF:
        return _protobuf_body(raw)
    if media and not (media.endswith("json") or media.endswith("yaml")):
        # the real server's answer (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/
        # negotiation/errors.go NewUnsupportedMediaTypeError, with the core serializers' types)
        raise st.ApiStatus(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            f"application/json, application/yaml, {PROTOBUF}",
        )
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if "yaml" in ctype:
            try:
                return kd.yaml_load(raw.decode())
            except kd.YamlError as exc:
                raise st.bad_request(f"error decoding YAML: {exc}") from None
        raise st.bad_request("the body of the request was in an unknown format") from None


_PB_KINDS = {**pb.KINDS, **pbw.KINDS}


def _protobuf_body(raw: bytes) -> Any:
    """A protobuf body as its JSON object (apiserver_protobuf); bytes that are no protobuf are a
    400 as from the real decoder (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go
    transformDecodeError), a kind or field the double's tables lack is the double's gap: 500."""
    try:
        return pb.decode(raw, _PB_KINDS)
    except pb.Gap as exc:
        raise st.ApiStatus(500, "InternalError", f"kube-apiserver double: {exc}") from None
    except pb.Malformed as exc:
        raise st.bad_request(str(exc)) from None
    except UnicodeDecodeError:
        # no byte of the body in the message: it may be a Secret's
        raise st.ApiStatus(
            500, "InternalError", "kube-apiserver double: a protobuf string field is not UTF-8"
        ) from None


class ApiHandler(BaseHTTPRequestHandler):
    server_version = "kube-apiserver-double"
    protocol_version = "HTTP/1.1"
    state: ApiState
    opts: dict[str, str]
    primary: str | None
    proxy_ctx: ssl.SSLContext | None = None

    def log_message(self, fmt: str, *args: Any) -> None:
        if os.environ.get("KORAL_DOUBLE_APISERVER_LOG"):
            sys.stderr.write("apiserver: " + (fmt % args) + "\n")

    def setup(self) -> None:
        self.request.settimeout(60)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.request.close()
            raise
        super().setup()

    # --- responses ------------------------------------------------------------------
    def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        if code == 429:
            self.send_header("Retry-After", "5")
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, err: st.ApiStatus) -> None:
        self._send(err.code, err.body())

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            local = urlparse(self.path).path.rstrip("/") in ("/healthz", "/livez", "/readyz", "/version")
            if self.primary and not local:
                return self._proxy(method, raw)
            self._route(method, raw)
        except st.ApiStatus as exc:
            self._error(exc)
        except patch.PatchError as exc:
            self._error(st.ApiStatus(422, "Invalid", str(exc)))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            self._error(st.bad_request(f"bad request: {type(exc).__name__}: {exc}"))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    # --- proxy (API servers of joined control-plane nodes) ----------------------------
    def _proxy(self, method: str, raw: bytes) -> None:
        conn: ssl.SSLSocket = self.request  # type: ignore[assignment]
        cert = conn.getpeercert()
        headers = {
            k: v for k, v in self.headers.items() if k.lower() in ("accept", "content-type", "user-agent")
        }
        if cert:
            subj = dict(x[0] for x in cert.get("subject", ()))
            orgs = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "organizationName"]
            headers.update({"X-Remote-User": subj.get("commonName", ""), "X-Remote-Group": ",".join(orgs)})
        if self.headers.get("Authorization"):
            headers["Authorization"] = self.headers["Authorization"]
        u = urlparse(self.primary)
        up = http.client.HTTPSConnection(
            u.hostname or "", u.port or 443, context=self.proxy_ctx, timeout=3600
        )
        try:
            up.request(method, self.path, body=raw or None, headers=headers)
            resp = up.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            return self._error(
                st.ApiStatus(503, "ServiceUnavailable", f"error trying to reach the API server: {exc}")
            )
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.getheader("Content-Type") or "application/json")
        chunked = resp.getheader("Transfer-Encoding", "") == "chunked"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                while True:
                    data = resp.read1(65536)
                    if not data:
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            finally:
                up.close()
            return None
        body = resp.read()
        up.close()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    # --- routing ----------------------------------------------------------------------
    def _route(self, method: str, raw: bytes) -> None:
        url = urlparse(self.path)
        path = url.path.rstrip("/") or "/"
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, "ok", "text/plain")
        if path == "/version":
            v = kd._vtuple(self.state.version)
            return self._send(
                200,
                {
                    "major": str(v[0]),
                    "minor": str(v[1]),
                    "gitVersion": f"v{self.state.version}",
                    "gitCommit": "0" * 40,
                    "gitTreeState": "clean",
                    "buildDate": "2024-01-01T00:00:00Z",
                    "goVersion": "go1.22.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                },
            )
        ident = identity(self, self.state)
        if ident == ("", ["invalid"]):
            return self._error(st.ApiStatus(401, "Unauthorized", "Unauthorized"))
        if ident is None and not _ANON_ALLOWED.match(path):
            return self._error(
                st.ApiStatus(
                    403,
                    "Forbidden",
                    f'forbidden: User "system:anonymous" cannot {method.lower()} path "{path}"',
                )
            )
        if (
            ident
            and "system:bootstrappers" in ident[1]
            and not _ANON_ALLOWED.match(path)
            and not any(m == method and rx.match(path) for m, rx in _BOOTSTRAP_ALLOWED)
        ):
            return self._error(
                st.ApiStatus(
                    403, "Forbidden", f'forbidden: User "{ident[0]}" cannot {method.lower()} path "{path}"'
                )
            )
        if (
            ident
            and ident[0].startswith(tokens.SA_PREFIX)
            and not _ANON_ALLOWED.match(path)
            and not tokens.cluster_admin(self.state.store, *ident)
        ):
            return self._error(
                st.ApiStatus(
                    403, "Forbidden", f'forbidden: User "{ident[0]}" cannot {method.lower()} path "{path}"'
                )
            )
        if method == "GET" and self._discovery(path):
            return None
        target = self._resource_path(path)
        if target is None:
            return self._error(
                st.ApiStatus(404, "NotFound", "the server could not find the requested resource")
            )
        # the body is decoded for a served resource only (an unserved path is a 404 first)
        body = _parse_body(raw, self.headers.get("Content-Type", ""))
        r, ns, name, sub = target
        user = ident[0] if ident else "system:anonymous"
        if method == "GET" and name is None and q.get("watch") in ("true", "1"):
            return self._watch(r, ns, q)
        with self.state.lock:
            self._verb(method, r, ns, name, sub, q, body, user)

    def _discovery(self, path: str) -> bool:
        if path == "/api":
            self._send(
                200,
                res.api_versions(
                    f"{self.opts.get('advertise-address', '127.0.0.1')}:"
                    f"{self.opts.get('secure-port', '6443')}"
                ),
            )
            return True
        if path == "/apis":
            self._send(200, res.api_group_list())
            return True
        if path == "/openapi/v2":
            # kubectl's client-side validation reads the protobuf OpenAPI v2 document (client-go
            # discovery OpenAPISchema); served with no definitions, so it validates no type itself
            # and relies on ?fieldValidation (see /openapi/v3).
            doc = _pb_string(1, "2.0") + _pb_bytes(
                2, _pb_string(1, "Kubernetes") + _pb_string(2, "koral-double")
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)
            return True
        if path == "/openapi/v3":
            self._send(200, res.openapi_v3_root())
            return True
        m = re.match(r"^/openapi/v3/(?:api/(v1)|apis/([^/]+)/([^/]+))$", path)
        if m:
            doc = res.openapi_v3_doc(m.group(2) or "", m.group(1) or m.group(3))
            if doc is None:
                self._error(st.ApiStatus(404, "NotFound", "the server could not find the requested resource"))
            else:
                self._send(200, doc)
            return True
        m = re.match(r"^/apis/([^/]+)$", path)
        if m:
            g = res.api_group(m.group(1))
            self._send(200, g) if g else self._error(
                st.ApiStatus(404, "NotFound", "the server could not find the requested resource")
            )
            return True
        m = re.match(r"^/api/(v1)$|^/apis/([^/]+)/([^/]+)$", path)
        if m:
            lst = res.api_resource_list(m.group(2) or "", m.group(1) or m.group(3))
            self._send(200, lst) if lst else self._error(
                st.ApiStatus(404, "NotFound", "the server could not find the requested resource")
            )
            return True
        return False

    @staticmethod
    def _resource_path(path: str) -> tuple[res.Resource, str | None, str | None, str | None] | None:
        m = re.match(r"^/api/(v1)/(.*)$|^/apis/([^/]+)/([^/]+)/(.*)$", path)
        if not m:
            return None
        group, version, rest = (
            ("", m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4), m.group(5))
        )
        segs = rest.split("/")
        ns = None
        if segs[0] == "namespaces" and len(segs) >= 3:
            ns, segs = segs[1], segs[2:]
        r = res.BY_PATH.get((group, version, segs[0]))
        if r is None:
            return None
        if ns is not None and not r.namespaced:
            return None
        name = segs[1] if len(segs) > 1 else None
        sub = "/".join(segs[2:]) or None
        if sub is not None and sub not in r.subresources:
            return None
        return r, ns, name, sub

    # --- verbs ------------------------------------------------------------------------
    def _accept_table(self) -> bool:
        return "as=Table" in (self.headers.get("Accept") or "")

    def _verb(
        self,
        method: str,
        r: res.Resource,
        ns: str | None,
        name: str | None,
        sub: str | None,
        q: dict[str, str],
        body: Any,
        user: str,
    ) -> None:
        s = self.state.store
        if method == "GET":
            if name is None:
                return self._list(r, ns, q)
            obj = s.get(r, ns, name)
            if obj is None:
                raise st.not_found(r, name)
            if r.plural == "configmaps" and ns == "kube-public" and name == "cluster-info":
                for tid, t in self.state.tokens().items():
                    if t.get("usage-bootstrap-signing") == "true":
                        obj.setdefault("data", {})[f"jws-kubeconfig-{tid}"] = kd.jws_sign(
                            obj["data"]["kubeconfig"], f"{tid}.{t['token-secret']}"
                        )
            if self._accept_table():
                return self._send(
                    200,
                    res.table(
                        r.plural, [obj], obj["metadata"]["resourceVersion"], q.get("includeObject", "")
                    ),
                )
            return self._send(200, self._typed(r, obj))
        dry = q.get("dryRun") == "All"
        if method == "POST":
            if name is not None and sub == "eviction":
                return self._evict(r, ns, name, body, dry)
            if name is not None and sub == "token" and ns is not None:
                return self._send(201, tokens.request_token(s, self.opts, ns, name, body))
            if name is not None:
                raise st.ApiStatus(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            if not isinstance(body, dict):
                raise st.bad_request("the body of the request was empty")
            out = self._create(r, ns, body, q, user, dry)
            return self._send(201, self._typed(r, out))
        if name is None:
            if method == "DELETE":
                return self._delete_collection(r, ns, q, dry)
            raise st.ApiStatus(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        if method == "PUT":
            if not isinstance(body, dict):
                raise st.bad_request("the body of the request was empty")
            out = self._update(r, ns, name, sub, body, q, user, dry)
            return self._send(200, self._typed(r, out))
        if method == "PATCH":
            out, code = self._patch(r, ns, name, sub, body, q, user, dry)
            return self._send(code, self._typed(r, out))
        if method == "DELETE":
            return self._delete(r, ns, name, body, dry)
        raise st.ApiStatus(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    @staticmethod
    def _typed(r: res.Resource, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("apiVersion", r.group_version)
        obj.setdefault("kind", r.kind)
        return obj

    def _list(self, r: res.Resource, ns: str | None, q: dict[str, str]) -> None:
        s = self.state.store
        lsel = st.parse_label_selector(q.get("labelSelector", ""))
        fsel = st.parse_field_selector(r.plural, q.get("fieldSelector", ""))
        items = [
            self._typed(r, o)
            for o in s.list(r, ns)
            if st.labels_match(lsel, o["metadata"].get("labels") or {}) and st.fields_match(r.plural, fsel, o)
        ]
        rv = str(s.rv)
        if self._accept_table():
            return self._send(200, res.table(r.plural, items, rv, q.get("includeObject", "")))
        return self._send(
            200,
            {
                "kind": f"{r.kind}List",
                "apiVersion": r.group_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            },
        )

    def _check_namespace(self, r: res.Resource, ns: str | None, obj: dict[str, Any]) -> None:
        md = obj.setdefault("metadata", {})
        if not r.namespaced:
            md.pop("namespace", None)
            return
        if md.get("namespace") and ns and md["namespace"] != ns:
            raise st.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        md["namespace"] = ns or md.get("namespace") or "default"
        if self.state.store.get(ctl.R["namespaces"], None, md["namespace"]) is None:
            raise st.ApiStatus(
                404,
                "NotFound",
                f'namespaces "{md["namespace"]}" not found',
                {"name": md["namespace"], "kind": "namespaces"},
            )

    def _validate(self, r: res.Resource, obj: dict[str, Any], q: dict[str, str]) -> None:
        if obj.get("kind") and obj["kind"] != r.kind:
            raise st.bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                f"expected API version ({r.group_version})"
                if obj.get("apiVersion") != r.group_version
                else f"the kind in the data ({obj['kind']}) does not match the expected kind ({r.kind})"
            )
        if q.get("fieldValidation", "") != "Strict" or r.kind in _NO_STRICT:
            return
        allowed = {"apiVersion", "kind", "metadata"} | _TOP.get(r.kind, {"spec", "status"})
        unknown = [k for k in obj if k not in allowed] + [
            f"metadata.{k}" for k in (obj.get("metadata") or {}) if k not in _META_KEYS
        ]
        if unknown:
            raise st.bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
            )

    def _prepare(self, r: res.Resource, obj: dict[str, Any]) -> None:
        if r.plural == "secrets" and "stringData" in obj:
            obj["data"] = {
                **(obj.get("data") or {}),
                **{k: base64.b64encode(str(v).encode()).decode() for k, v in obj.pop("stringData").items()},
            }

    def _manage(
        self, obj: dict[str, Any], r: res.Resource, manager: str, operation: str, fields: Any
    ) -> None:
        mf = [
            m
            for m in obj["metadata"].get("managedFields") or []
            if not (m.get("manager") == manager and m.get("operation") == operation)
        ]
        mf.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": r.group_version,
                "time": st.now_rfc3339(),
                "fieldsType": "FieldsV1",
                "fieldsV1": patch.field_set(fields),
            }
        )
        obj["metadata"]["managedFields"] = mf

    def _manager(self, q: dict[str, str]) -> str:
        return q.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0]

    def _create(
        self, r: res.Resource, ns: str | None, obj: dict[str, Any], q: dict[str, str], user: str, dry: bool
    ) -> dict[str, Any]:
        s = self.state.store
        if r.plural == "certificatesigningrequests":
            return self._csr(r, obj)
        self._validate(r, obj, q)
        self._check_namespace(r, ns, obj)
        obj.pop("status", None) if r.plural not in ("nodes", "pods", "namespaces", "events") else None
        self._prepare(r, obj)
        ctl.validate(r, obj)
        ctl.defaults(r, obj)
        if r.plural == "services":
            self.state.alloc.allocate(obj)
        if not obj["metadata"].get("managedFields"):
            self._manage(obj, r, self._manager(q), "Update", {k: v for k, v in obj.items() if k != "status"})
        if dry:
            return obj
        name = obj["metadata"].get("name") or ""
        if s.get(r, obj["metadata"].get("namespace"), name) is not None:
            raise st.already_exists(r, name)
        out = s.create(r, obj)
        if r.plural == "nodes":
            s.side.setdefault("heartbeats", {})[name] = time.time()
            n = s.get(r, None, name)
            assert n is not None
            self.state.controllers.kubelet_conditions(n)
            out = s.update(r, n)
        self._after()
        return out

    def _merge_status(
        self, r: res.Resource, old: dict[str, Any], new: dict[str, Any], sub: str | None
    ) -> dict[str, Any]:
        """Main resource writes keep the old status; /status writes keep the old spec
        (pkg/registry/*/strategy.go PrepareForUpdate)."""
        has_status = "status" in r.subresources
        if sub == "status":
            out = copy.deepcopy(old)
            out["status"] = new.get("status", {})
            return out
        if has_status and r.plural not in ("nodes",):
            new = (
                {**new, "status": old.get("status", {})}
                if "status" in old
                else {k: v for k, v in new.items() if k != "status"}
            )
        elif r.plural == "nodes":
            new = {**new, "status": old.get("status", {})}
        return new

    def _update(
        self,
        r: res.Resource,
        ns: str | None,
        name: str,
        sub: str | None,
        obj: dict[str, Any],
        q: dict[str, str],
        user: str,
        dry: bool,
    ) -> dict[str, Any]:
        s = self.state.store
        if sub not in (None, "status"):
            raise st.ApiStatus(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        old = s.get(r, ns, name)
        if old is None:
            raise st.not_found(r, name)  # AllowCreateOnUpdate is false for the built-in resources served
        self._validate(r, obj, q)
        self._check_namespace(r, ns, obj)
        if obj["metadata"].get("name") != name:
            raise st.bad_request("the name of the object does not match the name on the URL")
        self._prepare(r, obj)
        obj = self._merge_status(r, old, obj, sub)
        ctl.defaults(r, obj)
        if r.plural == "services":
            self.state.alloc.allocate(obj, old)
        obj["metadata"].setdefault("managedFields", old["metadata"].get("managedFields"))
        return self._write(r, obj, old, q, dry, obj["metadata"].get("resourceVersion"))

    def _write(
        self,
        r: res.Resource,
        obj: dict[str, Any],
        old: dict[str, Any],
        q: dict[str, str],
        dry: bool,
        expect_rv: str | None,
    ) -> dict[str, Any]:
        s = self.state.store
        ctl.validate(r, obj)
        if dry:
            return obj
        name = obj["metadata"]["name"]
        out = s.update(r, obj, expect_rv)
        self._after()
        got = s.get(r, obj["metadata"].get("namespace"), name)
        return got if got is not None else out

    def _patch(
        self,
        r: res.Resource,
        ns: str | None,
        name: str,
        sub: str | None,
        body: Any,
        q: dict[str, str],
        user: str,
        dry: bool,
    ) -> tuple[dict[str, Any], int]:
        s = self.state.store
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if sub not in (None, "status"):
            raise st.ApiStatus(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        old = s.get(r, ns, name)
        if ctype == "application/apply-patch+yaml":
            return self._apply(r, ns, name, sub, body, old, q, dry)
        if old is None:
            raise st.not_found(r, name)
        if ctype == "application/merge-patch+json":
            new = patch.merge_patch(old, body)
        elif ctype == "application/json-patch+json":
            new = patch.json_patch(old, body)
        elif ctype == "application/strategic-merge-patch+json":
            new = patch.strategic_merge(old, body)
        else:
            raise st.ApiStatus(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - "
                "accepted media types include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml, application/strategic-merge-patch+json",
            )
        if not isinstance(new, dict):
            raise st.bad_request("the patch did not produce an object")
        self._validate(r, new, q)
        new.setdefault("metadata", {})
        new["metadata"]["name"], new["metadata"]["uid"] = name, old["metadata"].get("uid")
        if r.namespaced:
            new["metadata"]["namespace"] = ns
        self._prepare(r, new)
        is_status = sub == "status"
        if r.plural == "nodes" and is_status:
            s.side.setdefault("heartbeats", {})[name] = time.time()
            posted = (
                any(
                    c.get("type") == "Ready"
                    for c in ((body or {}).get("status") or {}).get("conditions") or []
                )
                if isinstance(body, dict)
                else False
            )
            new = self._merge_status(r, old, new, "status")
            if not posted:
                self.state.controllers.kubelet_conditions(new)
        else:
            new = self._merge_status(r, old, new, sub)
        ctl.defaults(r, new)
        if r.plural == "services":
            self.state.alloc.allocate(new, old)
        if not (isinstance(body, list) and any("managedFields" in str(op.get("path")) for op in body)):
            self._manage(new, r, self._manager(q), "Update", body if isinstance(body, dict) else {})
        expect = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        return self._write(r, new, old, q, dry, expect), 200

    def _apply(
        self,
        r: res.Resource,
        ns: str | None,
        name: str,
        sub: str | None,
        cfg: Any,
        live: dict[str, Any] | None,
        q: dict[str, str],
        dry: bool,
    ) -> tuple[dict[str, Any], int]:
        s = self.state.store
        manager = q.get("fieldManager")
        if not manager:
            raise st.bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch"
            )
        if not isinstance(cfg, dict):
            raise st.bad_request("error decoding patch: the applied configuration must be an object")
        self._validate(r, cfg, q)
        if (cfg.get("metadata") or {}).get("name") not in (None, name):
            raise st.bad_request("the name of the object does not match the name on the URL")
        applied = s.side.setdefault("applied", {})
        akey = f"{st.rkey(r)}|{st.okey(ns if r.namespaced else None, name)}"
        mine = applied.get(akey, {})
        old_cfg = mine.get(manager)
        force = q.get("force") == "true"
        if live is not None:
            conflicts = []
            for other, ocfg in mine.items():
                if other == manager:
                    continue
                for path, val in _leaves(cfg):
                    if path in dict(_leaves(ocfg)) and dict(_leaves(ocfg))[path] != val:
                        conflicts.append((other, path))
            if conflicts and not force:
                n = len(conflicts)
                text = "; ".join(f'conflict with "{m}": {p}' for m, p in conflicts)
                raise st.ApiStatus(
                    409,
                    "Conflict",
                    f"Apply failed with {n} conflict{'s' if n > 1 else ''}: {text}",
                    {
                        "causes": [
                            {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": p}
                            for m, p in conflicts
                        ]
                    },
                )
            if conflicts:
                for other, p in conflicts:
                    mine[other] = _drop_path(mine[other], p)
        body = copy.deepcopy(cfg)
        body.setdefault("metadata", {})["name"] = name
        if r.namespaced:
            body["metadata"]["namespace"] = ns or "default"
        if live is None:
            obj = patch.server_side_apply(None, body, None)
            obj.setdefault("apiVersion", r.group_version)
            obj.setdefault("kind", r.kind)
            self._manage(obj, r, manager, "Apply", cfg)
            out = self._create(r, ns, obj, {**q, "fieldManager": manager}, "", dry)
            code = 201
        else:
            obj = patch.server_side_apply(live, body, old_cfg)
            obj = self._merge_status(r, live, obj, sub)
            self._prepare(r, obj)
            ctl.defaults(r, obj)
            if r.plural == "services":
                self.state.alloc.allocate(obj, live)
            self._manage(obj, r, manager, "Apply", cfg)
            out = self._write(r, obj, live, q, dry, None)
            code = 200
        if not dry:
            mine[manager] = cfg
            applied[akey] = mine
            s.save()
        return out, code

    def _delete(self, r: res.Resource, ns: str | None, name: str, body: Any, dry: bool) -> None:
        s = self.state.store
        obj = s.get(r, ns, name)
        if obj is None:
            raise st.not_found(r, name)
        pre = ((body or {}).get("preconditions") or {}) if isinstance(body, dict) else {}
        if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
            raise st.conflict(
                r,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                f"meta: {obj['metadata'].get('uid')}",
            )
        if r.plural == "namespaces" and name in ctl.SYSTEM_NAMESPACES:
            raise st.ApiStatus(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        if not dry:
            gone = s.delete(r, ns, name)
            if r.plural == "namespaces":
                for other in res.RESOURCES:
                    if other.namespaced:
                        for o in s.list(other, name):
                            s.delete(other, name, o["metadata"]["name"])
            self.state.store.side.get("applied", {}).pop(
                f"{st.rkey(r)}|{st.okey(ns if r.namespaced else None, name)}", None
            )
            self._after()
            obj = gone
        if r.plural == "pods":
            return self._send(200, self._typed(r, obj))
        return self._send(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": r.group,
                    "kind": r.plural,
                    "uid": obj["metadata"].get("uid"),
                },
            },
        )

    def _delete_collection(self, r: res.Resource, ns: str | None, q: dict[str, str], dry: bool) -> None:
        s = self.state.store
        lsel = st.parse_label_selector(q.get("labelSelector", ""))
        fsel = st.parse_field_selector(r.plural, q.get("fieldSelector", ""))
        gone = []
        for o in s.list(r, ns):
            if st.labels_match(lsel, o["metadata"].get("labels") or {}) and st.fields_match(
                r.plural, fsel, o
            ):
                if not dry:
                    s.delete(r, o["metadata"].get("namespace"), o["metadata"]["name"])
                gone.append(self._typed(r, o))
        self._after()
        self._send(
            200,
            {
                "kind": f"{r.kind}List",
                "apiVersion": r.group_version,
                "metadata": {"resourceVersion": str(s.rv)},
                "items": gone,
            },
        )

    def _evict(self, r: res.Resource, ns: str | None, name: str, body: Any, dry: bool) -> None:
        s = self.state.store
        pod = s.get(r, ns, name)
        if pod is None:
            raise st.not_found(r, name)
        if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
            raise st.bad_request("the body of the request must be an Eviction (policy/v1)")
        if not ctl.disruption_allowed(s, pod):
            raise st.ApiStatus(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
                {
                    "causes": [
                        {
                            "reason": "DisruptionBudget",
                            "message": "The disruption budget needs more healthy pods to allow the eviction.",
                        }
                    ]
                },
            )
        if not dry:
            s.delete(r, ns, name)
            self._after()
        return self._send(
            201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        )

    def _csr(self, r: res.Resource, body: dict[str, Any]) -> dict[str, Any]:
        csr = base64.b64decode(body["spec"]["request"])
        subj = kd.csr_subject(csr_to_pem(csr))
        if "CN=system:node:" not in subj or "O=system:nodes" not in subj:
            raise st.ApiStatus(403, "Forbidden", f"CSR subject {subj!r} is not a node identity")
        cert = kd.sign_csr(Path(self.opts["client-ca-file"]).with_suffix(""), csr, "client")
        body["status"] = {
            "certificate": base64.b64encode(cert).decode(),
            "conditions": [
                {
                    "type": "Approved",
                    "status": "True",
                    "reason": "AutoApproved",
                    "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                }
            ],
        }
        return body

    def _after(self) -> None:
        self.state.controllers.reconcile()
        self.state.store.save()

    # --- watch ------------------------------------------------------------------------
    def _watch(self, r: res.Resource, ns: str | None, q: dict[str, str]) -> None:
        s = self.state.store
        lsel = st.parse_label_selector(q.get("labelSelector", ""))
        fsel = st.parse_field_selector(r.plural, q.get("fieldSelector", ""))
        table = self._accept_table()
        timeout = min(float(q.get("timeoutSeconds") or 1800), 1800)
        rv_text = q.get("resourceVersion", "")
        initial = q.get("sendInitialEvents") == "true"
        rkey = st.rkey(r)

        def matches(o: dict[str, Any]) -> bool:
            if r.namespaced and ns and o["metadata"].get("namespace") != ns:
                return False
            return st.labels_match(lsel, o["metadata"].get("labels") or {}) and st.fields_match(
                r.plural, fsel, o
            )

        expired: st.ApiStatus | None = None
        with s.lock:
            start = s.rv
            first: list[tuple[str, dict[str, Any]]] = []
            if rv_text in ("", "0") or initial:
                first = [("ADDED", o) for o in s.list(r, ns) if matches(o)]
            else:
                rv = int(rv_text)  # not a number: 400 before the stream (ParseResourceVersion)
                # The oldest resourceVersion a watch can start from: this process's first one, or the
                # one before the oldest event kept (watch_cache.go getAllEventsSinceLocked, "oldest-1").
                floor = s.oldest_rv
                if s.events and len(s.events) == s.events.maxlen:
                    floor = max(floor, s.events[0][0] - 1)
                if rv < floor:
                    # errors.NewResourceExpired, sent as an ERROR event of a 200 stream, not as the
                    # response's status (cacher.go Watch: newErrWatcher, "to match the uncached watch").
                    expired = st.ApiStatus(410, "Expired", f"too old resource version: {rv} ({floor})")
                start = rv
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        headers_sent = False

        def emit(typ: str, obj: dict[str, Any]) -> None:
            nonlocal headers_sent
            obj = self._typed(r, copy.deepcopy(obj))
            if table and typ != "BOOKMARK":
                t = res.table(
                    r.plural, [obj], obj["metadata"].get("resourceVersion", ""), q.get("includeObject", "")
                )
                if headers_sent:
                    t["columnDefinitions"] = []
                headers_sent = True
                obj = t
            data = json.dumps({"type": typ, "object": obj}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        if expired is not None:
            data = json.dumps({"type": "ERROR", "object": expired.body()}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
            self.wfile.flush()
            return
        for typ, o in first:
            emit(typ, o)
        if initial:
            emit(
                "BOOKMARK",
                {
                    "kind": r.kind,
                    "apiVersion": r.group_version,
                    "metadata": {
                        "resourceVersion": str(start),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                },
            )
        deadline = time.monotonic() + timeout
        cursor = start
        while time.monotonic() < deadline:
            with s.lock:
                evs = s.events_since(cursor)
                if not evs:
                    s.changed.wait(min(5.0, max(0.1, deadline - time.monotonic())))
                    evs = s.events_since(cursor)
            for rv, key, typ, o in evs:
                cursor = rv
                if key == rkey and matches(o):
                    emit(typ, o)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _pb_bytes(field: int, data: bytes) -> bytes:
    """A length-delimited protobuf field (lengths < 128 only)."""
    assert len(data) < 128
    return bytes([field << 3 | 2, len(data)]) + data


def _pb_string(field: int, text: str) -> bytes:
    return _pb_bytes(field, text.encode())


def _leaves(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            if k in ("apiVersion", "kind") and not prefix:
                continue
            if not prefix and k == "metadata":
                v = {kk: vv for kk, vv in (v or {}).items() if kk in ("labels", "annotations")}
            out.extend(_leaves(v, f"{prefix}.{k}"))
        return out
    return [(prefix, obj)]


def _drop_path(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    parts = path.lstrip(".").split(".")
    cur: Any = out
    for p in parts[:-1]:
        cur = cur.get(p) if isinstance(cur, dict) else None
        if cur is None:
            return out
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)
    return out


def csr_to_pem(csr: bytes) -> bytes:
    return (
        csr
        if csr.startswith(b"-----")
        else b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(csr)
        + b"-----END CERTIFICATE REQUEST-----\n"
    )


def _controller_loop(state: ApiState) -> None:
    while True:
        time.sleep(2)
        with state.lock:
            rv = state.store.rv
            state.controllers.reconcile()
            if state.store.rv != rv:
                state.store.save()


def apiserver_main(argv: list[str]) -> int:
    opts: dict[str, str] = {}
    for a in argv:
        if not a.startswith("--"):
            raise kd.DoubleError(f"kube-apiserver: unexpected argument {a!r}")
        k, _, v = a[2:].partition("=")
        opts[k] = v or "true"
    for req in ("tls-cert-file", "tls-private-key-file", "client-ca-file", "secure-port"):
        if req not in opts:
            raise kd.DoubleError(f"kube-apiserver: --{req} is required")
    node = kd._node_state()
    primary = node.get("primary_server")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts["tls-cert-file"], opts["tls-private-key-file"])
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(opts["client-ca-file"])
    if opts.get("requestheader-client-ca-file"):
        ctx.load_verify_locations(opts["requestheader-client-ca-file"])
    version = os.environ.get("KORAL_DOUBLE_APISERVER_VERSION") or node.get("version") or kd.DOUBLE_VERSION
    attrs: dict[str, Any] = {"opts": opts, "primary": primary}
    if primary:
        pctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        pctx.load_verify_locations(opts["client-ca-file"])
        pctx.check_hostname = False
        pctx.load_cert_chain(opts["proxy-client-cert-file"], opts["proxy-client-key-file"])
        attrs["proxy_ctx"] = pctx
        attrs["state"] = None
    else:
        state = ApiState(kd.STATE_DIR / "apiserver-state.json", version, opts)
        attrs["state"] = state
        threading.Thread(target=_controller_loop, args=(state,), daemon=True).start()
    attrs["version"] = version
    handler = type("H", (ApiHandler,), attrs)
    if primary:
        handler.state = _VersionOnly(version)  # type: ignore[assignment]
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer((opts.get("bind-address", "0.0.0.0"), int(opts["secure-port"])), handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.stderr.write(
        f"apiserver double v{version} serving on :{opts['secure-port']} "
        f"({'proxy to ' + primary if primary else 'primary'})\n"
    )
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever()
    return 0


class _VersionOnly:
    def __init__(self, version: str) -> None:
        self.version = version
