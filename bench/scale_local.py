"""`scale` +1 worker on local nodes at 2 workers and at 8 workers: the time must not grow with size.

    python -m bench.scale_local [--small 2] [--large 8]

Measures, in one run on this machine (warm node image; the bundle recorded by scripts/setup.sh):
create 1+SMALL, then `scale` to SMALL+1 (timed), `scale` to LARGE (not timed), `scale` to LARGE+1
(timed). For each timed scale: total, provision and join phases, each play of scale.yml, and the
hosts that had any event (only the first control node and the new node may). The result is the
ratio of the two timed scales, which must stay near 1 (scale touches only the new node and the
first control node's token and kubectl wait), and the ratio of their task result counts (the work
done, which the machine's load does not change), which must be 1. Prints a table and writes
bench/results/scale_local.json. Ratios, not absolute times, are the result: absolute times depend
on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.create_local import phase_seconds, play_durations
from koral_ansible import operations
from koral_ansible.operations.context import Env
from koral_ansible.runner import RunResult
from koral_ansible.spec import validate_spec

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bscale"


def run_work(data_dir: Path) -> tuple[list[str], int]:
    """Hosts with any job event in one ansible-runner run, and its task results (ok/failed/skipped).

    The task result count is the work a run does, independent of the machine's load.
    """
    hosts, results = set(), 0
    for path in (data_dir / "artifacts" / "run" / "job_events").glob("*.json"):
        ev = json.loads(path.read_text())
        host = (ev.get("event_data") or {}).get("host")
        if host:
            hosts.add(str(host))
        results += ev.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_skipped")
    return sorted(hosts), results


def timed_scale(env: Env, size: int) -> dict[str, Any]:
    before = set(env.paths.runs(NAME).glob("*-scale-scale*"))
    events_before = len(env.store.events(NAME))
    t0 = time.monotonic()
    operations.scale(env, NAME, size)
    total = time.monotonic() - t0
    (run,) = sorted(set(env.paths.runs(NAME).glob("*-scale-scale*")) - before)
    # phase_seconds reads the last Started/Completed pair: this scale's.
    assert len(env.store.events(NAME)) > events_before
    hosts, results = run_work(run)
    return {
        "size": size,
        "seconds": total,
        "provision_seconds": phase_seconds(env, NAME, "provision"),
        "join_seconds": phase_seconds(env, NAME, "join"),
        "plays": play_durations(RunResult("scale.yml", "successful", 0, run)),
        "hosts": hosts,
        "task_results": results,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=2, help="workers before the first timed scale")
    ap.add_argument("--large", type=int, default=8, help="workers before the second timed scale")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="koral-bench-")
    os.environ["KORAL_HOME"] = home
    from scripts.offline_bundle import main as record_bundle  # the bundle setup.sh records

    record_bundle()
    env = Env.open(home, quiet=True)
    out: dict[str, Any] = {"small": args.small, "large": args.large}
    try:
        t0 = time.monotonic()
        operations.create(env, validate_spec({"name": NAME, "size": args.small}))
        out["create_seconds"] = time.monotonic() - t0
        out["at_small"] = timed_scale(env, args.small + 1)
        t0 = time.monotonic()
        operations.scale(env, NAME, args.large)
        out["grow_seconds"] = time.monotonic() - t0
        out["at_large"] = timed_scale(env, args.large + 1)
        out["ratio"] = out["at_large"]["seconds"] / out["at_small"]["seconds"]
        out["join_ratio"] = out["at_large"]["join_seconds"] / out["at_small"]["join_seconds"]
        out["task_results_ratio"] = out["at_large"]["task_results"] / out["at_small"]["task_results"]
    finally:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "scale_local.json").write_text(json.dumps(out, indent=2))
        if env.store.find_cluster(NAME):
            operations.delete(env, NAME)
    small, large = out["at_small"], out["at_large"]
    print(f"{'measure':44} {'+1 at ' + str(args.small):>10} {'+1 at ' + str(args.large):>10}")
    for key in ("seconds", "provision_seconds", "join_seconds"):
        print(f"{'scale ' + key:44} {small[key]:10.1f} {large[key]:10.1f}")
    for (play, s_secs), (_, l_secs) in zip(small["plays"], large["plays"], strict=False):
        print(f"  play: {play[:38]:38} {s_secs:10.1f} {l_secs:10.1f}")
    print(f"{'hosts with events':44} {len(small['hosts']):10d} {len(large['hosts']):10d}")
    work = "task results (work, load-independent)"
    print(f"{work:44} {small['task_results']:10d} {large['task_results']:10d}")
    print(f"{'create 1+' + str(args.small):44} {out['create_seconds']:10.1f}")
    print(f"{'scale to ' + str(args.large) + ' (not timed: setup)':44} {out['grow_seconds']:10.1f}")
    ratio_label = f"ratio +1 at {args.large} / +1 at {args.small} (near 1)"
    print(f"{ratio_label:44} {out['ratio']:10.2f}")
    print(f"{'join phase ratio':44} {out['join_ratio']:10.2f}")
    print(f"{'task results ratio (must be 1)':44} {out['task_results_ratio']:10.2f}")
    same_work = small["task_results"] == large["task_results"]
    return 0 if len(small["hosts"]) == len(large["hosts"]) == 2 and same_work else 1


if __name__ == "__main__":
    raise SystemExit(main())
