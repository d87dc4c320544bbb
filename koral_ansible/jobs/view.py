"""The job's live view, rebuilt from its progress file with the CLI's own counters."""

from __future__ import annotations

import json
from typing import Any

from koral_ansible.jobs.files import JobFiles
from koral_ansible.jobs.model import JobView, TaskFailure
from koral_ansible.jobs.store import get_job
from koral_ansible.operations.context import Env
from koral_ansible.progress import ProgressState

MESSAGES_KEPT = 20


def read_progress(env: Env, job_id: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Whole lines written since byte ``offset`` and the offset after them (for SSE tailing)."""
    files = JobFiles.of(env.paths, job_id)
    try:
        with files.progress.open("rb") as fh:
            fh.seek(max(0, offset))
            raw = fh.read()
    except FileNotFoundError:
        return [], offset
    end = raw.rfind(b"\n") + 1  # a line still being written waits for the next read
    lines: list[dict[str, Any]] = []
    for chunk in raw[:end].splitlines():
        try:
            lines.append(json.loads(chunk))
        except ValueError:
            continue
    return lines, max(0, offset) + end


def view_of(job_id: str, operation: str, lines: list[dict[str, Any]]) -> JobView:
    state = ProgressState(operation)
    failures: list[TaskFailure] = []
    messages: list[str] = []
    for line in lines:
        kind = line.get("type")
        if kind == "phase":
            state.phase = str(line.get("phase", ""))
        elif kind == "message":
            messages = [*messages[-(MESSAGES_KEPT - 1) :], str(line.get("message", ""))]
        elif kind == "event":
            _event, host = state.apply(line)
            if "failure" in line and host:
                data = line.get("event_data") or {}
                failures.append(
                    TaskFailure(host=host, task=str(data.get("task", "")), message=str(line["failure"]))
                )
    return JobView(
        id=job_id,
        phase=state.phase,
        play=state.play,
        task=state.task,
        hosts=state.hosts,
        failures=failures,
        messages=messages,
    )


def job_view(env: Env, job_id: str) -> JobView:
    record = get_job(env, job_id)
    lines, _end = read_progress(env, job_id)
    return view_of(job_id, record.kind.value, lines)
