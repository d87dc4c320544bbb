"""One reconcile pass with a fake API and a fake host: what is programmed, which statuses are
written (only changed ones), and the CLI's bad input (koral_ansible.loadbalancer.reconcile)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.loadbalancer import hostnft, reconcile
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec

PUB = "10.213.5.1"


class FakeApi:
    def __init__(self, services: list[dict[str, Any]]) -> None:
        self.items = services
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def services(self) -> list[dict[str, Any]]:
        return json.loads(json.dumps(self.items))

    def nodes(self) -> list[dict[str, Any]]:
        worker = {
            "metadata": {"labels": {}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.213.5.12"}]},
        }
        control = {
            "metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.213.5.11"}]},
        }
        return [control, worker]

    def patch_status(self, namespace: str, name: str, load_balancer: dict[str, Any]) -> None:
        self.patches.append((namespace, name, load_balancer))
        for s in self.items:
            if s["metadata"]["name"] == name:
                s["status"] = {"loadBalancer": load_balancer}


def _svc(
    name: str, typ: str = "LoadBalancer", port: int = 80, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": f"2026-12-01T00:00:0{len(name)}Z",
        },
        "spec": {"type": typ, "ports": [{"port": port, "nodePort": 30000 + port, "protocol": "TCP"}]},
        "status": {"loadBalancer": status or {}},
    }


@pytest.fixture
def env(koral_home: Paths, monkeypatch: pytest.MonkeyPatch) -> Env:
    e = Env.open(str(koral_home.home), quiet=True)
    e.store.add_cluster(validate_spec({"name": "demo", "size": 1}))
    e.store.set_endpoint("demo", {"public_ip": PUB, "api_port": 6443})
    loaded: list[str] = []
    monkeypatch.setattr(hostnft, "apply", lambda cluster, script, save_to: loaded.append(script) or True)
    e.loaded = loaded  # type: ignore[attr-defined]
    return e


def test_pass_programs_served_services_and_writes_only_changed_status(env: Env) -> None:
    ours = [{"ip": PUB, "ipMode": "Proxy", "ports": [{"port": 8080, "protocol": "TCP"}]}]
    api = FakeApi(
        [
            _svc("web", port=8080),
            _svc("api", port=6443),  # koral's own port: refused
            _svc(
                "was", typ="ClusterIP", status={"ingress": ours}
            ),  # no longer LoadBalancer: address taken away
            _svc("np", typ="NodePort", port=9090),
        ]
    )
    result = reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]
    assert result.served == ["default/web"] and result.refused == {
        "default/api": "port 6443/TCP is taken by koral"
    }
    script = env.loaded[-1]  # type: ignore[attr-defined]
    assert f"ip daddr {PUB} tcp dport 8080 dnat to 10.213.5.12:38080" in script  # the worker only
    assert "6443" not in script
    assert api.patches == [("default", "web", {"ingress": ours}), ("default", "was", {})]
    again = reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]
    assert again.status_written == [] and len(api.patches) == 2  # level-triggered: nothing to write


def test_gone_service_leaves_an_empty_table(env: Env) -> None:
    api = FakeApi([_svc("web", port=8080)])
    reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]
    api.items = []
    reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]
    assert "dnat" not in env.loaded[-1]  # type: ignore[attr-defined]


def test_cli_unknown_cluster_is_bad_input(koral_home: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(root, ["loadbalancer", "reconcile", "--cluster", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--cluster" in err and "nope" in err and len(err.strip().splitlines()) == 1
    assert run_cli(root, ["loadbalancer", "reconcile"]) == 0
    assert not Path(koral_home.home, "clusters").exists()


def test_serve_survives_api_errors(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from koral_ansible.errors import OperationError
    from koral_ansible.loadbalancer import loop

    env.paths.kubeconfig("demo").parent.mkdir(parents=True, exist_ok=True)
    env.paths.kubeconfig("demo").write_text("{}")
    calls: list[int] = []

    def flaky(_env: Env, cluster: str) -> reconcile.Result:
        calls.append(1)
        if len(calls) == 1:
            raise OperationError("kubectl get failed: connection refused")
        return reconcile.Result(cluster, ["default/web"])

    monkeypatch.setattr(loop, "reconcile", flaky)
    stop = threading.Event()
    seen: list[dict[str, str]] = []

    def on_pass(_results: list[reconcile.Result], errors: dict[str, str]) -> None:
        seen.append(errors)
        if len(seen) == 2:
            stop.set()

    loop.serve(env, 0.01, stop, on_pass=on_pass, watcher=None)
    assert seen == [{"demo": "kubectl get failed: connection refused"}, {}]


def test_unit_runs_serve_for_this_home(koral_home: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run_cli(
            root, ["loadbalancer", "unit", "--koral-play", "/opt/koral/bin/koral-play", "--interval", "2"]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert f'Environment="KORAL_HOME={koral_home.home}"' in text
    assert "ExecStart=/opt/koral/bin/koral-play loadbalancer serve --interval 2\n" in text
    assert "Restart=on-failure" in text


def test_stopped_and_deleting_clusters_are_left_alone(env: Env) -> None:
    from koral_ansible.state import ClusterState

    env.paths.kubeconfig("demo").parent.mkdir(parents=True, exist_ok=True)
    env.paths.kubeconfig("demo").write_text("{}")
    env.store.set_state("demo", ClusterState.RUNNING)
    assert [c.name for c in reconcile.local_clusters(env)] == ["demo"]
    for state in (ClusterState.STOPPED, ClusterState.DESTROYING):
        env.store.set_state("demo", state)
        assert reconcile.local_clusters(env) == []
