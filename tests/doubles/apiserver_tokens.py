"""The API server double's ServiceAccount tokens: the TokenRequest subresource, the token
authenticator and the (cluster-admin only) authorization of ServiceAccount users.

Upstream (kubernetes/kubernetes):
- ``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token``: pkg/registry/core/serviceaccount/
  storage/token.go (TokenREST.Create: the ServiceAccount must exist, else its NotFound; the answer is
  the TokenRequest with status.token and status.expirationTimestamp), defaults from
  pkg/apis/authentication/v1/defaults.go (expirationSeconds 3600), validation from
  pkg/apis/authentication/validation/validation.go (ValidateTokenRequest: expirationSeconds
  below MinTokenAgeSec = 600 or above 2^32 is 422 Invalid, field spec.expirationSeconds);
- the token: a JWT signed RS256 with --service-account-signing-key-file, claims as
  pkg/serviceaccount/claims.go (Claims: iss, sub, aud, exp, iat, nbf, jti, kubernetes.io
  {namespace, serviceaccount {name, uid}}), audiences defaulting to the issuer (--api-audiences);
- authentication: pkg/serviceaccount/jwt.go (JWTTokenAuthenticator: signature against
  --service-account-key-file, issuer, audience, expiry) and claims.go (validate: the
  ServiceAccount must still exist with the same uid), user ``system:serviceaccount:NS:NAME``
  with groups system:serviceaccounts, system:serviceaccounts:NS, system:authenticated
  (staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go).

Authorization is a subset of RBAC: a ServiceAccount user is allowed everything when a
ClusterRoleBinding binds it (or one of its groups) to cluster-admin, and nothing otherwise.

Stdlib only (openssl for RSA): shipped inside the doubles' zipapp.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

try:
    from . import apiserver_resources as res
    from . import apiserver_store as st
except ImportError:  # run from the zipapp (top-level modules)
    import apiserver_resources as res  # type: ignore[no-redef]
    import apiserver_store as st  # type: ignore[no-redef]

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
MIN_SECONDS = 10 * 60
MAX_SECONDS = 1 << 32
DEFAULT_SECONDS = 3600
_TOKEN_REQUEST = res.Resource("authentication.k8s.io", "v1", "tokenrequests", "TokenRequest", True)
_SA = next(r for r in res.RESOURCES if r.plural == "serviceaccounts")
_CRB = next(r for r in res.RESOURCES if r.plural == "clusterrolebindings")
SA_PREFIX = "system:serviceaccount:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _openssl(args: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("openssl")
    if not exe:
        raise st.ApiStatus(500, "InternalError", "openssl not found (needed to sign service account tokens)")
    return subprocess.run([exe, *args], input=stdin, capture_output=True, check=False)


def _issuer(opts: dict[str, str]) -> str:
    return opts.get("service-account-issuer", DEFAULT_ISSUER).split(",")[0]


def _audiences(opts: dict[str, str]) -> list[str]:
    return [a for a in opts.get("api-audiences", "").split(",") if a] or [_issuer(opts)]


def request_token(
    store: st.Store, opts: dict[str, str], ns: str, name: str, body: Any, now: _dt.datetime | None = None
) -> dict[str, Any]:
    """The TokenRequest answer for ServiceAccount ``ns/name`` (token.go TokenREST.Create)."""
    if not isinstance(body, dict):
        raise st.bad_request("the body of the request was empty")
    spec = body.setdefault("spec", {}) or {}
    body["spec"] = spec
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = spec["expirationSeconds"] = DEFAULT_SECONDS
    req_name = str((body.get("metadata") or {}).get("name", ""))
    why = ""
    if not isinstance(seconds, int) or seconds < MIN_SECONDS:
        why = "may not specify a duration less than 10 minutes"
    elif seconds > MAX_SECONDS:
        why = "may not specify a duration larger than 2^32 seconds"
    if why:
        raise st.invalid(
            _TOKEN_REQUEST, req_name, [("spec.expirationSeconds", f"Invalid value: {seconds}: {why}")]
        )
    sa = store.get(_SA, ns, name)
    if sa is None:
        raise st.not_found(_SA, name)
    if spec.get("boundObjectRef"):
        raise st.bad_request("the API server double does not bind tokens to objects (boundObjectRef)")
    spec["audiences"] = spec.get("audiences") or _audiences(opts)
    key = opts.get("service-account-signing-key-file")
    if not key:
        raise st.ApiStatus(
            500, "InternalError", "failed to generate token: no --service-account-signing-key-file"
        )
    now = now or _dt.datetime.now(_dt.UTC)
    iat = int(now.timestamp())
    claims = {
        "aud": spec["audiences"],
        "exp": iat + seconds,
        "iat": iat,
        "iss": _issuer(opts),
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]},
        },
        "nbf": iat,
        "sub": f"{SA_PREFIX}{ns}:{name}",
    }
    header = {"alg": "RS256", "kid": ""}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    proc = _openssl(["dgst", "-sha256", "-sign", key], signing_input.encode())
    if proc.returncode != 0:
        raise st.ApiStatus(500, "InternalError", "failed to generate token: signing failed")
    expiry = _dt.datetime.fromtimestamp(iat + seconds, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": None},
        "spec": spec,
        "status": {"token": f"{signing_input}.{_b64(proc.stdout)}", "expirationTimestamp": expiry},
    }


def _verify(pub: str, signing_input: str, signature: bytes) -> bool:
    with tempfile.NamedTemporaryFile() as sig:
        sig.write(signature)
        sig.flush()
        proc = _openssl(["dgst", "-sha256", "-verify", pub, "-signature", sig.name], signing_input.encode())
    return proc.returncode == 0


def authenticate(store: st.Store, opts: dict[str, str], token: str) -> tuple[str, list[str]] | None:
    """The ServiceAccount user of a valid token, else None (jwt.go, claims.go validate)."""
    parts = token.split(".")
    pub = opts.get("service-account-key-file")
    if len(parts) != 3 or not pub or not Path(pub).exists():
        return None
    try:
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except ValueError:
        return None
    if not isinstance(claims, dict) or not _verify(pub, f"{parts[0]}.{parts[1]}", signature):
        return None
    now = _dt.datetime.now(_dt.UTC).timestamp()
    aud = claims.get("aud") or []
    if (
        claims.get("iss") != _issuer(opts)
        or not set(aud if isinstance(aud, list) else [aud]) & set(_audiences(opts))
        or not isinstance(claims.get("exp"), int)
        or claims["exp"] < now
        or int(claims.get("nbf", 0)) > now + 60
    ):
        return None
    k8s = claims.get("kubernetes.io") or {}
    ns = str(k8s.get("namespace", ""))
    sa_ref = k8s.get("serviceaccount") or {}
    sa = store.get(_SA, ns, str(sa_ref.get("name", "")))
    if sa is None or sa["metadata"].get("uid") != sa_ref.get("uid"):
        return None
    return (
        f"{SA_PREFIX}{ns}:{sa_ref['name']}",
        ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
    )


def cluster_admin(store: st.Store, user: str, groups: list[str]) -> bool:
    """Whether a ClusterRoleBinding grants ``user`` (a ServiceAccount) the cluster-admin role."""
    ns, _, name = user[len(SA_PREFIX) :].partition(":")
    for crb in store.list(_CRB, None):
        ref = crb.get("roleRef") or {}
        if ref.get("kind") != "ClusterRole" or ref.get("name") != "cluster-admin":
            continue
        for s in crb.get("subjects") or []:
            if s.get("kind") == "ServiceAccount" and s.get("name") == name and s.get("namespace") == ns:
                return True
            if s.get("kind") in ("Group", "User") and s.get("name") in (*groups, user):
                return True
    return False
