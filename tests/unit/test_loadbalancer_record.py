"""What the controller last served, in ``koral-play show`` and in the cluster's events
(koral_ansible.loadbalancer.record), after passes with a fake API and a fake host."""

from __future__ import annotations

import json
import stat

import pytest
import yaml

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.loadbalancer import hostnft, reconcile, record
from koral_ansible.operations.context import Env
from tests.unit.test_cli_output import assert_aligned
from tests.unit.test_loadbalancer_reconcile import PUB, WORKER, FakeApi, _svc, env  # noqa: F401  (the fixture)


def _show(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    assert run_cli(root, ["show", "demo", *extra]) == 0
    return capsys.readouterr().out


def _lb_events(e: Env) -> list[tuple[str, str]]:
    return [(ev.result, ev.message) for ev in e.store.events("demo") if ev.operation == "loadbalancer"]


def test_show_lists_served_and_refused_services(env: Env, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    web = _svc("web", port=8080)
    web["spec"]["loadBalancerSourceRanges"] = ["192.0.2.0/24"]
    api = FakeApi([web, _svc("api", port=6443), _svc("np", typ="NodePort", port=9090)])
    reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]

    out = _show(capsys)
    lb_part = out.split("\n\n")[-1].strip("\n").splitlines()  # the last table
    rows = assert_aligned(lb_part[:2], texts=1)  # (a served row has no reason: its line ends early)
    assert rows == [
        ["SERVICE", "STATE", "PORTS", "ADDRESS", "SOURCE RANGES", "BACKENDS", "REASON"],
        [
            "default/api",
            "refused",
            "6443/TCP",
            "<none>",
            "0.0.0.0/0",
            "<none>",
            "port 6443/TCP is taken by koral",
        ],
    ]
    assert lb_part[2].split() == ["default/web", "serving", "8080/TCP", PUB, "192.0.2.0/24", WORKER]
    assert lb_part[2].index(PUB) == lb_part[0].index("ADDRESS")
    shown = json.loads(_show(capsys, "-o", "json"))["load_balancers"]
    assert shown == yaml.safe_load(_show(capsys, "-o", "yaml"))["load_balancers"]
    assert shown == [
        {"service": "default/api", "state": "refused", "address": "", "backends": "",
         "reason": "port 6443/TCP is taken by koral", "ports": "6443/TCP", "source_ranges": "0.0.0.0/0",
         "traffic_policy": "Cluster"},
        {"service": "default/web", "state": "serving", "address": PUB, "reason": "", "backends": WORKER,
         "ports": "8080/TCP", "source_ranges": "192.0.2.0/24", "traffic_policy": "Cluster"},
    ]  # fmt: skip
    wide = _show(capsys, "-o", "wide").split("\n\n")[-1].strip("\n").splitlines()
    assert wide[0].split()[-3:] == ["TRAFFIC", "POLICY", "REASON"] and "Cluster" in wide[2].split()
    path = env.paths.local_dir("demo") / record.RECORD
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_events_when_serving_starts_changes_is_refused_and_stops(env: Env) -> None:  # noqa: F811
    api = FakeApi([_svc("web", port=8080), _svc("api", port=6443)])
    reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]
    assert _lb_events(env) == [
        ("Refused", "default/api 6443/TCP from 0.0.0.0/0: port 6443/TCP is taken by koral"),
        ("Serving", f"default/web {PUB} 8080/TCP from 0.0.0.0/0 to {WORKER}"),
    ]
    reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]
    assert len(_lb_events(env)) == 2  # nothing changed: no event, no write
    api.items[0]["spec"]["ports"][0]["port"] = 8081
    reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]
    assert _lb_events(env)[2:] == [("Changed", f"default/web {PUB} 8081/TCP from 0.0.0.0/0 to {WORKER}")]
    api.items = []
    reconcile.reconcile(env, "demo", api)  # type: ignore[arg-type]
    assert _lb_events(env)[3:] == [("Stopped", "default/web no longer served")]
    assert record.load(env.paths, "demo") == []


def test_no_record_shows_no_table_and_remove_forgets_it(
    env: Env,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "SERVICE" not in _show(capsys)
    assert json.loads(_show(capsys, "-o", "json"))["load_balancers"] == []
    reconcile.reconcile(env, "demo", FakeApi([_svc("web", port=8080)]))  # type: ignore[arg-type]
    assert record.load(env.paths, "demo")
    monkeypatch.setattr(hostnft, "delete", lambda cluster, saved=None: None)
    reconcile.remove(env, "demo")
    assert record.load(env.paths, "demo") == []
