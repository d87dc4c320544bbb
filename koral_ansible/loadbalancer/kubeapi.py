"""The cluster's API through the real kubectl and the admin kubeconfig in the koral home.

``kubectl get services -A -o json`` lists the Services, ``kubectl get nodes -o json`` the nodes;
``kubectl patch --subresource=status``
writes ``status.loadBalancer`` through ``services/{name}/status`` as a cloud controller does
(kubernetes/cloud-provider ``controllers/service/controller.go``: ``patchStatus``).
kubectl is the bundle's (``k8s/kubectl`` of the cluster's recorded bundle directory), else
``$KORAL_KUBECTL``, else the first ``kubectl`` on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koral_ansible.bundle.layout import binary_path
from koral_ansible.bundle.registry import find_bundle
from koral_ansible.errors import OperationError

TIMEOUT = 30


def find_kubectl(home: Path, kubernetes_version: str, arch: str = "amd64") -> Path:
    record = find_bundle(home, kubernetes_version, arch)
    if record and record.directory:
        candidate = Path(record.directory) / binary_path("kubectl")
        if candidate.is_file():
            return candidate
    env = os.environ.get("KORAL_KUBECTL")
    if env:
        return Path(env)
    found = shutil.which("kubectl")
    if found:
        return Path(found)
    raise OperationError(
        f"no kubectl: record a bundle directory for Kubernetes {kubernetes_version} or set KORAL_KUBECTL"
    )


@dataclass(frozen=True)
class KubeApi:
    kubectl: Path
    kubeconfig: Path

    def _run(self, *args: str, stdin: str | None = None) -> str:
        cmd = [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "--request-timeout", "20s", *args]
        try:
            proc = subprocess.run(
                cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise OperationError(f"kubectl {args[0]} timed out after {TIMEOUT}s") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise OperationError(f"kubectl {args[0]} failed: {last}")
        return proc.stdout

    def services(self) -> list[dict[str, Any]]:
        data = json.loads(self._run("get", "services", "--all-namespaces", "-o", "json") or "{}")
        return list(data.get("items") or [])

    def nodes(self) -> list[dict[str, Any]]:
        data = json.loads(self._run("get", "nodes", "-o", "json") or "{}")
        return list(data.get("items") or [])

    def patch_status(self, namespace: str, name: str, load_balancer: dict[str, Any]) -> None:
        # A merge patch replaces status.loadBalancer.ingress as a whole (lists are atomic in it).
        body = json.dumps({"status": {"loadBalancer": load_balancer}})
        if not load_balancer:
            body = json.dumps({"status": {"loadBalancer": {"ingress": None}}})
        self._run(
            "patch", "service", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", body
        )
