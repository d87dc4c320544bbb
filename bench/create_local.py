"""`create` on local nodes, broken down by phase, and what a second converge and Ansible's defaults cost.

    python -m bench.create_local [--workers 2] [--untuned-full]

Measures, in one run on this machine (warm node image; the bundle recorded by scripts/setup.sh):
(a) create 1+N from a warm node image, by phase: cloud/nodes (provider), then each play of
    create.yml (preflight, bundle, runtime, firewall, kubeadm, CNI) from ansible-runner's events;
(b) a second converge of the unchanged cluster: changed count (must be 0) and its time as a
    ratio of the first configure;
(e) the same converge with Ansible's defaults (no pipelining, no ControlPersist, 5 forks) as a
    ratio of ours (``--untuned-full`` runs a whole second create with the defaults instead).
Prints a table and writes bench/results/create_local.json. Ratios, not absolute times, are the
result: absolute times depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from koral_ansible import operations
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge
from koral_ansible.runner import RunResult
from koral_ansible.spec import validate_spec

RESULTS = Path(__file__).resolve().parent / "results"


def play_durations(result: RunResult) -> list[tuple[str, float]]:
    """Seconds spent in each play, from the run's job events (play start to next play start)."""
    events = []
    for path in (result.data_dir / "artifacts" / "run" / "job_events").glob("*.json"):
        ev = json.loads(path.read_text())
        if ev.get("event") in ("playbook_on_play_start", "playbook_on_stats"):
            stamp = datetime.fromisoformat(ev["created"]).timestamp()
            events.append((stamp, ev.get("event_data", {}).get("play", "end")))
    events.sort()
    return [(name, events[i + 1][0] - t) for i, (t, name) in enumerate(events[:-1])]


def task_durations(result: RunResult, top: int = 12) -> list[tuple[str, float]]:
    """The slowest tasks of a run by wall time (task start to the next task or play start)."""
    events = []
    for path in (result.data_dir / "artifacts" / "run" / "job_events").glob("*.json"):
        ev = json.loads(path.read_text())
        kind = ev.get("event")
        if kind in ("playbook_on_task_start", "playbook_on_play_start", "playbook_on_stats"):
            stamp = datetime.fromisoformat(ev["created"]).timestamp()
            data = ev.get("event_data", {})
            label = (
                f"{data.get('play', '')[:18]} / {data.get('task', '')}" if kind.endswith("task_start") else ""
            )
            events.append((stamp, label))
    events.sort()
    spans = [(label, events[i + 1][0] - t) for i, (t, label) in enumerate(events[:-1]) if label]
    return sorted(spans, key=lambda item: -item[1])[:top]


def phase_seconds(env: Env, cluster: str, phase: str) -> float:
    started = completed = None
    for e in env.store.events(cluster):
        if e.phase == phase and e.result == "Started":
            started = datetime.fromisoformat(e.time).timestamp()
        if e.phase == phase and e.result == "Completed":
            completed = datetime.fromisoformat(e.time).timestamp()
    return (completed - started) if started is not None and completed is not None else float("nan")


def timed_converge(env: Env, name: str) -> tuple[float, RunResult]:
    record = env.store.get_cluster(name)
    with OperationFrame(env, name, "converge", busy=None, failed=None) as frame:
        t0 = time.monotonic()
        result = converge(env, frame, record, "create.yml")
    return time.monotonic() - t0, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--untuned-full", action="store_true", help="(e) as a whole second create")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="koral-bench-")
    os.environ["KORAL_HOME"] = home
    from scripts.offline_bundle import main as record_bundle  # the bundle setup.sh records

    record_bundle()
    env = Env.open(home, quiet=True)
    out: dict[str, Any] = {"workers": args.workers}
    try:
        spec = validate_spec({"name": "bench", "size": args.workers})
        t0 = time.monotonic()
        operations.create(env, spec)
        out["create_seconds"] = time.monotonic() - t0
        out["provision_seconds"] = phase_seconds(env, "bench", "provision")
        out["configure_seconds"] = phase_seconds(env, "bench", "configure")
        runs = sorted((env.paths.runs("bench")).iterdir())
        first = RunResult("create.yml", "successful", 0, runs[-1])
        out["plays"] = play_durations(first)

        second_s, second = timed_converge(env, "bench")
        out["second_converge_seconds"] = second_s
        out["second_converge_changed"] = second.changed
        out["second_vs_first_ratio"] = second_s / out["configure_seconds"]
        out["second_plays"] = play_durations(second)
        out["second_slowest_tasks"] = task_durations(second)

        env.tuned = False
        if args.untuned_full:
            operations.delete(env, "bench")
            t0 = time.monotonic()
            operations.create(env, spec)
            out["untuned_create_seconds"] = time.monotonic() - t0
            out["untuned_vs_tuned_ratio"] = out["untuned_create_seconds"] / out["create_seconds"]
        else:
            untuned_s, _ = timed_converge(env, "bench")
            out["untuned_converge_seconds"] = untuned_s
            out["untuned_vs_tuned_ratio"] = untuned_s / second_s
        env.tuned = True
    finally:
        if env.store.find_cluster("bench"):
            operations.delete(env, "bench")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "create_local.json").write_text(json.dumps(out, indent=2))
    print(f"{'measure':44} {'value':>10}")
    for key in ("create_seconds", "provision_seconds", "configure_seconds"):
        print(f"{key:44} {out[key]:10.1f}")
    for play, secs in out["plays"]:
        print(f"  play: {play[:38]:38} {secs:10.1f}")
    print(f"{'second converge changed (must be 0)':44} {out['second_converge_changed']:10d}")
    print(f"{'second converge seconds':44} {out['second_converge_seconds']:10.1f}")
    for play, secs in out["second_plays"]:
        print(f"  play: {play[:38]:38} {secs:10.1f}")
    for task, secs in out["second_slowest_tasks"]:
        print(f"    task: {task[:36]:36} {secs:10.1f}")
    print(f"{'second converge / first configure':44} {out['second_vs_first_ratio']:10.2f}")
    print(f"{'ansible defaults / our settings':44} {out['untuned_vs_tuned_ratio']:10.2f}")
    return 0 if out["second_converge_changed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
