"""How to reach a cluster's dashboard, and a short-lived login token for it.

The token comes from the TokenRequest API (``kubectl create token SA --duration``, the real
kubectl of the cluster's bundle, run on this machine with the cluster's admin kubeconfig) for
the login ServiceAccount the ``dashboard`` role creates. It is returned to the caller only:
never written to the koral home, an event, a log or an error message.

The API refuses durations under 10 minutes (kubernetes/kubernetes
pkg/apis/authentication/validation/validation.go, MinTokenAgeSec) and over 2^32 seconds; koral
refuses them first, as bad input naming --duration.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koral_ansible.bundle.iso import IsoReader, is_iso
from koral_ansible.errors import InputError, OperationError

NAMESPACE = "kubernetes-dashboard"
SERVICE = "kubernetes-dashboard"
ADMIN = "koral-dashboard-admin"
MIN_SECONDS = 600
MAX_SECONDS = 1 << 32
DEFAULT_DURATION = "1h"
PROXY_PORT = 8001
FORWARD_PORT = 8443
KUBECTL = "k8s/kubectl"  # in the bundle (koral_ansible/bundle/layout.py)
_UNITS = {"h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """``1h``, ``30m``, ``1h30m``, ``900s`` -> seconds; InputError naming --duration."""
    allowed = "a duration from 10m to 4294967296s in h/m/s (e.g. 10m, 1h, 1h30m)"
    m = _DURATION.match(text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise InputError("--duration", f"must be {allowed} (got {text!r})")
    seconds = sum(int(v) * _UNITS[u] for v, u in zip(m.groups(), "hms", strict=True) if v)
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise InputError("--duration", f"must be {allowed}; the API refuses shorter tokens (got {text!r})")
    return seconds


@contextlib.contextmanager
def host_kubectl(bundle_path: Path | None) -> Iterator[Path]:
    """The real kubectl to run here: the bundle's ``k8s/kubectl`` (a directory bundle's file, or
    copied out of an ISO bundle into a private temporary directory for the call), else the
    kubectl on PATH."""
    if bundle_path is not None and bundle_path.is_dir() and (bundle_path / KUBECTL).is_file():
        yield bundle_path / KUBECTL
        return
    if bundle_path is not None and is_iso(bundle_path):
        with IsoReader(bundle_path) as iso, tempfile.TemporaryDirectory(prefix="koral-kubectl-") as tmp:
            if KUBECTL in iso.files():
                exe = Path(tmp) / "kubectl"
                with iso.open(KUBECTL) as src, exe.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                exe.chmod(0o700)
                yield exe
                return
    found = shutil.which("kubectl")
    if not found:
        raise OperationError(
            "no kubectl to ask for a dashboard token: the cluster's bundle has no k8s/kubectl "
            "and there is no kubectl on PATH"
        )
    yield Path(found)


@dataclass(frozen=True)
class LoginToken:
    token: str
    expires: str

    def __repr__(self) -> str:  # never print the secret by accident
        return f"LoginToken(token=<hidden>, expires={self.expires!r})"


def login_token(kubectl: Path, kubeconfig: Path, seconds: int, timeout: float = 60) -> LoginToken:
    """A token for the login ServiceAccount, valid ``seconds`` (TokenRequest API)."""
    argv = [
        str(kubectl),
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        NAMESPACE,
        "create",
        "token",
        ADMIN,
        f"--duration={seconds}s",
        "--output=json",
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OperationError(f"kubectl create token failed: {exc}") from None
    if proc.returncode != 0:
        # kubectl's error never holds a token (none was issued)
        raise OperationError(f"kubectl create token failed: {proc.stderr.strip() or proc.returncode}")
    try:
        status = json.loads(proc.stdout)["status"]
        return LoginToken(token=str(status["token"]), expires=str(status["expirationTimestamp"]))
    except (ValueError, KeyError, TypeError):
        raise OperationError("kubectl create token answered no TokenRequest status") from None


def reach(cluster: str) -> dict[str, Any]:
    """How to open the dashboard from this machine: kubectl proxy or a port-forward, run by
    the operator with ``koral-play kubeconfig`` (koral opens no host forward for it)."""
    kc = f"$(koral-play kubeconfig {cluster} --path)"
    return {
        "proxy_command": f"kubectl --kubeconfig {kc} proxy --port {PROXY_PORT}",
        "proxy_url": (
            f"http://localhost:{PROXY_PORT}/api/v1/namespaces/{NAMESPACE}/services/https:{SERVICE}:/proxy/"
        ),
        "port_forward_command": (
            f"kubectl --kubeconfig {kc} --namespace {NAMESPACE} port-forward "
            f"service/{SERVICE} {FORWARD_PORT}:443"
        ),
        "port_forward_url": f"https://localhost:{FORWARD_PORT}/",
    }
