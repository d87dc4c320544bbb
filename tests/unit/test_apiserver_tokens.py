"""ServiceAccount tokens of the API server double, the real kubectl being the judge: the
dashboard's recommended.yaml under kubectl apply, ``kubectl create token --duration`` (the
TokenRequest subresource) and ``kubectl --token`` with the token it gave."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.bundle_fixtures import DASHBOARD_YAML
from tests.unit.test_apiserver_double import Cluster, start_cluster

NS = "kubernetes-dashboard"
ADMIN = f"""\
apiVersion: v1
kind: ServiceAccount
metadata: {{name: admin-user, namespace: {NS}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: nobody, namespace: {NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: admin-user}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: admin-user, namespace: {NS}}}]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("apiserver-tokens")
    pki = root / "pki"
    pki.mkdir()
    key = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        capture_output=True,
        check=True,
    ).stdout
    (pki / "sa.key").write_bytes(key)
    (pki / "sa.pub").write_bytes(
        subprocess.run(["openssl", "pkey", "-pubout"], input=key, capture_output=True, check=True).stdout
    )
    yield from start_cluster(
        root,
        (
            f"--service-account-key-file={pki}/sa.pub",
            f"--service-account-signing-key-file={pki}/sa.key",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        ),
    )


@pytest.fixture(scope="module")
def dashboard(cluster: Cluster) -> Cluster:
    cluster.kubectl("apply", "-f", "-", stdin=DASHBOARD_YAML)
    cluster.kubectl("apply", "-f", "-", stdin=ADMIN)
    return cluster


def _with_token(c: Cluster, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl with nothing but the server, its CA and a bearer token."""
    return subprocess.run(
        [
            str(c.kubectl_bin),
            "--kubeconfig",
            "/dev/null",
            f"--server=https://127.0.0.1:{c.port}",
            f"--certificate-authority={c.root / 'pki' / 'ca.crt'}",
            f"--token={token}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dashboard_manifest_applies_and_reapplies_unchanged(dashboard: Cluster) -> None:
    again = dashboard.kubectl("apply", "-f", "-", stdin=DASHBOARD_YAML).stdout.splitlines()
    assert len(again) == 14 and all(line.endswith(" unchanged") for line in again), again
    kinds = dashboard.kubectl(
        "-n", NS, "get", "sa,svc,secret,cm,role,rolebinding,deploy", "-o", "name"
    ).stdout.split()
    for obj in (
        "serviceaccount/kubernetes-dashboard",
        "service/kubernetes-dashboard",
        "service/dashboard-metrics-scraper",
        "secret/kubernetes-dashboard-csrf",
        "configmap/kubernetes-dashboard-settings",
        "role.rbac.authorization.k8s.io/kubernetes-dashboard",
        "rolebinding.rbac.authorization.k8s.io/kubernetes-dashboard",
        "deployment.apps/kubernetes-dashboard",
        "deployment.apps/dashboard-metrics-scraper",
    ):
        assert obj in kinds
    image = dashboard.kubectl(
        "-n",
        NS,
        "get",
        "deploy",
        "kubernetes-dashboard",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ).stdout
    assert image == "kubernetesui/dashboard:v2.7.0"


def test_create_token_duration_and_use(dashboard: Cluster) -> None:
    before = dt.datetime.now(dt.UTC)
    out = dashboard.kubectl("-n", NS, "create", "token", "admin-user", "--duration=15m", "-o", "json").stdout
    req = json.loads(out)
    assert req["kind"] == "TokenRequest" and req["apiVersion"] == "authentication.k8s.io/v1"
    assert req["spec"]["expirationSeconds"] == 900
    expiry = dt.datetime.strptime(req["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.UTC
    )
    assert abs((expiry - before).total_seconds() - 900) < 30
    default = json.loads(dashboard.kubectl("-n", NS, "create", "token", "admin-user", "-o", "json").stdout)
    assert default["spec"]["expirationSeconds"] == 3600  # defaults.go, no --duration
    token = dashboard.kubectl("-n", NS, "create", "token", "admin-user", "--duration=10m").stdout.strip()
    assert token.count(".") == 2
    who = _with_token(dashboard, token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    if who.returncode == 0:  # selfsubjectreviews is served
        assert who.stdout == f"system:serviceaccount:{NS}:admin-user"
    got = _with_token(dashboard, token, "-n", NS, "get", "deploy", "kubernetes-dashboard", "-o", "name")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "deployment.apps/kubernetes-dashboard"


def test_token_of_unbound_account_is_forbidden_and_bad_token_unauthorized(dashboard: Cluster) -> None:
    token = dashboard.kubectl("-n", NS, "create", "token", "nobody").stdout.strip()
    denied = _with_token(dashboard, token, "get", "pods", "-A")
    assert denied.returncode == 1 and "Forbidden" in denied.stderr, denied.stderr
    forged = token[: token.rindex(".") + 1] + "AAAA"
    bad = _with_token(dashboard, forged, "get", "pods", "-A")
    assert bad.returncode == 1 and "Unauthorized" in bad.stderr, bad.stderr


def test_token_request_refusals(dashboard: Cluster) -> None:
    short = dashboard.kubectl("-n", NS, "create", "token", "admin-user", "--duration=5m", check=False)
    assert short.returncode == 1
    assert short.stderr.strip() == (
        'error: failed to create token: TokenRequest.authentication.k8s.io "" is invalid: '
        "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"
    )
    missing = dashboard.kubectl("-n", NS, "create", "token", "ghost", check=False)
    assert missing.returncode == 1
    assert 'serviceaccounts "ghost" not found' in missing.stderr


def test_token_stops_working_when_its_account_is_deleted(dashboard: Cluster) -> None:
    # (kubectl create serviceaccount/clusterrolebinding send protobuf, which the double does not read)
    dashboard.kubectl("apply", "-f", "-", stdin=ADMIN.replace("admin-user", "short-lived"))
    token = dashboard.kubectl("-n", NS, "create", "token", "short-lived").stdout.strip()
    assert _with_token(dashboard, token, "get", "ns").returncode == 0
    dashboard.kubectl("-n", NS, "delete", "serviceaccount", "short-lived")
    gone = _with_token(dashboard, token, "get", "ns")
    assert gone.returncode == 1 and "Unauthorized" in gone.stderr


def test_dashboard_manifest_deletes_and_deletes_again_quietly(cluster: Cluster) -> None:
    """What the dashboard role's absent state runs: delete --ignore-not-found -f, twice."""
    cluster.kubectl("apply", "-f", "-", stdin=DASHBOARD_YAML.replace("kubernetes-dashboard", "dash-two"))
    first = cluster.kubectl(
        "delete",
        "--ignore-not-found",
        "-f",
        "-",
        stdin=DASHBOARD_YAML.replace("kubernetes-dashboard", "dash-two"),
    )
    assert 'namespace "dash-two" deleted' in first.stdout
    assert cluster.kubectl("get", "ns", "dash-two", check=False).returncode == 1
    second = cluster.kubectl(
        "delete",
        "--ignore-not-found",
        "-f",
        "-",
        stdin=DASHBOARD_YAML.replace("kubernetes-dashboard", "dash-two"),
    )
    assert second.stdout == ""
