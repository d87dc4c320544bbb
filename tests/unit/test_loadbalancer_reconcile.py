"""One reconcile pass with a fake API and a fake host: what is programmed, which statuses are
written (only changed ones), and the CLI's bad input (koral_ansible.loadbalancer.reconcile)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.loadbalancer import hostnft, reconcile, record
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.spec import validate_spec

PUB = "10.213.5.1"
CONTROL, WORKER = "10.213.5.11", "10.213.5.12"  # FakeApi's nodes (no traffic is sent to them)


class FakeApi:
    def __init__(self, services: list[dict[str, Any]]) -> None:
        self.items = services
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def services(self) -> list[dict[str, Any]]:
        return json.loads(json.dumps(self.items))

    def nodes(self) -> list[dict[str, Any]]:
        worker = {
            "metadata": {"labels": {}},
            "status": {"addresses": [{"type": "InternalIP", "address": WORKER}]},
        }
        control = {
            "metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""}},
            "status": {"addresses": [{"type": "InternalIP", "address": CONTROL}]},
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

    def flaky(_env: Env, cluster: str, prober: object = None) -> reconcile.Result:
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


def test_local_policy_follows_the_health_checks(env: Env) -> None:
    """A Local Service is sent only to the nodes whose health check answers: the prober is asked
    for the backends only (not the excluded control plane), the address stays while no node
    answers, and the record and events follow each change."""
    edge = _svc("edge", port=443)
    edge["spec"].update(externalTrafficPolicy="Local", healthCheckNodePort=31443)
    api = FakeApi([edge])
    asked: list[list[tuple[object, int]]] = []
    answers = {"ok": True}

    def prober(targets: object) -> dict[Any, bool]:
        got = list(targets)  # type: ignore[call-overload]
        asked.append([(str(ip), port) for ip, port in got])
        return {t: answers["ok"] for t in got}

    result = reconcile.reconcile(env, "demo", api, prober=prober)  # type: ignore[arg-type]
    assert asked == [[(WORKER, 31443)]]
    assert {(str(ip), port): ok for (ip, port), ok in result.health.items()} == {(WORKER, 31443): True}
    assert f"tcp dport 443 dnat to {WORKER}:30443" in env.loaded[-1]  # type: ignore[attr-defined]
    answers["ok"] = False
    reconcile.reconcile(env, "demo", api, prober=prober)  # type: ignore[arg-type]
    assert f"ip daddr {PUB} tcp dport 443 drop" in env.loaded[-1]  # type: ignore[attr-defined]
    assert api.patches[-1][2]["ingress"][0]["ip"] == PUB and len(api.patches) == 1  # address kept
    row = record.load(env.paths, "demo")[0]
    assert (row["state"], row["backends"], row["traffic_policy"]) == ("serving", "", "Local")
    events = [e.message for e in env.store.events("demo") if e.operation == "loadbalancer"]
    assert events == [
        f"default/edge {PUB} 443/TCP from 0.0.0.0/0 to {WORKER}",
        f"default/edge {PUB} 443/TCP from 0.0.0.0/0 to no node (no endpoint answers its health check)",
    ]


def test_serve_passes_again_when_a_health_check_answers_otherwise(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an hour between resyncs and no watches, a change in what a Local Service's health check
    answers still gets a pass within the health interval; unchanged answers get none."""
    import threading

    from koral_ansible.loadbalancer import loop

    env.paths.kubeconfig("demo").parent.mkdir(parents=True, exist_ok=True)
    env.paths.kubeconfig("demo").write_text("{}")
    edge = _svc("edge", port=443)
    edge["spec"].update(externalTrafficPolicy="Local", healthCheckNodePort=31443)
    api = FakeApi([edge])
    real = reconcile.reconcile
    monkeypatch.setattr(loop, "reconcile", lambda e, c, prober: real(e, c, api, prober))  # type: ignore[arg-type]
    answers = {"ok": True}
    probed: list[int] = []

    def prober(targets: object) -> dict[Any, bool]:
        probed.append(1)
        return dict.fromkeys(list(targets), answers["ok"])  # type: ignore[call-overload]

    passes: list[list[reconcile.Result]] = []
    stop = threading.Event()

    def run() -> None:  # its own Env: SQLite objects belong to the thread that made them
        loop.serve(
            Env.open(str(env.paths.home), quiet=True),
            3600,
            stop,
            on_pass=lambda r, _e: passes.append(r),
            watcher=None,
            prober=prober,
            health_interval=0.1,
        )

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(probed) < 5 and time.monotonic() < deadline:  # the first pass, then some re-probes
            time.sleep(0.05)
        assert len(passes) == 1  # the answers did not change: no pass
        answers["ok"] = False
        while len(passes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(passes) == 2
    finally:
        stop.set()
        thread.join(timeout=10)
    assert f"ip daddr {PUB} tcp dport 443 drop" in env.loaded[-1]  # type: ignore[attr-defined]
