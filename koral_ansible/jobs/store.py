"""Reading and writing job records; a worker that died without a result shows as failed."""

from __future__ import annotations

import time
from datetime import datetime

from koral_ansible.errors import NotFoundError
from koral_ansible.jobs.files import ID_RE, JobFiles
from koral_ansible.jobs.liveness import alive
from koral_ansible.jobs.model import JobRecord, JobState
from koral_ansible.operations.context import Env
from koral_ansible.paths import read_json_record, write_private
from koral_ansible.state import now

DEAD_ERROR = "worker exited without a result"
#: A record without a pid yet is being started; after this long it never will be.
SPAWN_GRACE = 60.0

RESULT_FIELDS = ("state", "ended", "exit_code", "error", "failure")


def write_record(files: JobFiles, record: JobRecord) -> None:
    write_private(files.record, record.model_dump_json())


def write_result(files: JobFiles, record: JobRecord) -> None:
    write_private(files.result, record.model_dump_json(include=set(RESULT_FIELDS)))


def _age(created: str) -> float:
    try:
        return time.time() - datetime.fromisoformat(created).timestamp()
    except ValueError:
        return SPAWN_GRACE + 1


def load(files: JobFiles) -> JobRecord:
    """The record merged with its result; a running job whose worker is gone is failed."""
    data = read_json_record(files.record, "job record")
    if data is None:
        raise NotFoundError("job", f"no job {files.dir.name!r}")
    result = read_json_record(files.result, "job result")
    if result is not None:
        return JobRecord.model_validate({**data, **result})
    record = JobRecord.model_validate(data)
    starting = record.pid == 0 and _age(record.created) < SPAWN_GRACE
    if starting or alive(record.pid, record.pid_start):
        return record
    dead = record.model_copy(
        update={"state": JobState.FAILED, "ended": now(), "exit_code": 1, "error": DEAD_ERROR}
    )
    write_result(files, dead)  # the verdict is final: the worker can no longer write one
    return dead


def get_job(env: Env, job_id: str) -> JobRecord:
    return load(JobFiles.of(env.paths, job_id))


def list_jobs(env: Env, cluster: str | None = None, limit: int | None = 50) -> list[JobRecord]:
    """Jobs newest first, optionally of one cluster."""
    root = env.paths.jobs
    if not root.is_dir():
        return []
    out: list[JobRecord] = []
    for job_dir in sorted((p for p in root.iterdir() if ID_RE.match(p.name)), reverse=True):
        if cluster is not None:
            data = read_json_record(job_dir / "job.json", "job record")
            if not data or data.get("cluster") != cluster:
                continue
        try:
            out.append(load(JobFiles(job_dir)))
        except NotFoundError:
            continue  # being created right now
        if limit is not None and len(out) >= limit:
            break
    return out


def running_job(env: Env, cluster: str) -> JobRecord | None:
    """The job running on ``cluster``, if any (at most one: jobs take the cluster lock)."""
    return next((j for j in list_jobs(env, cluster, limit=None) if j.state == JobState.RUNNING), None)
