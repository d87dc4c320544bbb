"""Live progress: per-phase, per-host counters from runner events; failures named and redacted."""

from __future__ import annotations

import io

from rich.console import Console

from koral_ansible.progress import LineProgress, LiveProgress
from koral_ansible.redact import Redactor

EVENTS = [
    {"event": "playbook_on_play_start", "event_data": {"play": "Prepare nodes"}},
    {"event": "runner_on_start", "event_data": {"host": "n1", "task": "Set sysctl"}},
    {"event": "runner_on_ok", "event_data": {"host": "n1", "res": {"changed": True}}},
    {"event": "runner_on_ok", "event_data": {"host": "n1", "res": {"changed": False}}},
    {
        "event": "runner_on_failed",
        "event_data": {"host": "n2", "task": "Join", "res": {"msg": "bad s3cr3t-value"}},
    },
    {
        "event": "runner_on_failed",
        "event_data": {"host": "n2", "task": "Probe", "ignore_errors": True, "res": {}},
    },
]


def test_live_view_counts_hosts_and_redacts() -> None:
    stream = io.StringIO()
    live = LiveProgress("create", Redactor(["s3cr3t-value"]), stream=stream)
    live.phase("configure")
    for ev in EVENTS:
        live.runner_event(ev)
    console = Console(file=io.StringIO(), width=100)
    console.print(live._render())
    live.close()
    view = console.file.getvalue()  # type: ignore[attr-defined]
    assert "create [configure] Prepare nodes" in view
    rows = {line.split()[0]: line.split()[1:4] for line in view.splitlines() if line.strip().startswith("n")}
    assert rows == {"n1": ["1", "1", "0"], "n2": ["0", "0", "1"]}
    out = stream.getvalue()
    assert "FAILED n2 | Join | bad ********" in out and "s3cr3t-value" not in out + view
    assert "Probe" not in out, "ignored errors are not failures"


def test_line_progress_for_logs() -> None:
    stream = io.StringIO()
    lines = LineProgress("scale", Redactor(), stream=stream)
    lines.phase("join")
    for ev in [*EVENTS, {"event": "playbook_on_stats", "event_data": {}}]:
        lines.runner_event(ev)
    out = stream.getvalue()
    assert "==> scale: join" in out and "play: Prepare nodes" in out
    assert "n1: ok=1 changed=1 failed=0; n2: ok=0 changed=0 failed=1" in out
