"""Async jobs: queued on submit, run after a configurable latency, queried with queryAsyncJobResult."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.cloudsim.errors import CS_CLOUD_RUNTIME, INTERNAL_ERROR, ApiError, job_error

PENDING, SUCCEEDED, FAILED = 0, 1, 2

JobFn = Callable[[], dict[str, Any]]


def cs_time() -> str:
    """CloudStack's timestamp format, e.g. 2026-11-23T09:30:00+0000."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class Job:
    id: str
    command: str
    cmd_class: str
    account_id: str
    user_id: str
    instance_type: str | None
    instance_id: str | None
    status: int = PENDING
    result: dict[str, Any] | None = None
    resultcode: int = 0
    created: str = field(default_factory=cs_time)
    completed: str | None = None
    hung: bool = False  # an injected timeout: never completes

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accountid": self.account_id,
            "userid": self.user_id,
            "cmd": self.cmd_class,
            "jobstatus": self.status,
            "jobprocstatus": 0,
            "jobresultcode": self.resultcode,
        }
        if self.instance_type:
            out["jobinstancetype"] = self.instance_type
        if self.instance_id:
            out["jobinstanceid"] = self.instance_id
        if self.status != PENDING:
            out["jobresulttype"] = "object"
            out["jobresult"] = self.result or {}
            out["completed"] = self.completed
        out["created"] = self.created
        out["jobid"] = self.id
        return out


class JobRunner:
    """Runs job bodies on a thread pool after ``latency(command)`` seconds."""

    def __init__(self, latency: Callable[[str], float], workers: int = 64) -> None:
        self.jobs: dict[str, Job] = {}
        self._latency = latency
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cloudsim-job")
        self._lock = threading.Lock()

    def submit(
        self,
        job: Job,
        body: JobFn,
        on_error: Callable[[], None] | None = None,
        injected: ApiError | None = None,
        hang: bool = False,
    ) -> Job:
        with self._lock:
            self.jobs[job.id] = job
        if hang:
            job.hung = True
            return job
        if self._latency(job.command) <= 0:
            self._run(job, body, on_error, injected)  # zero latency: done before the submit is answered
        else:
            self._pool.submit(self._run, job, body, on_error, injected)
        return job

    def _run(
        self, job: Job, body: JobFn, on_error: Callable[[], None] | None, injected: ApiError | None
    ) -> None:
        delay = self._latency(job.command)
        if delay > 0:
            time.sleep(delay)
        try:
            if injected is not None:
                raise injected
            result = body()
        except ApiError as exc:
            self._fail(job, exc, on_error)
            return
        except Exception as exc:  # a backend bug or failure: CloudRuntimeException
            self._fail(
                job, ApiError(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", CS_CLOUD_RUNTIME), on_error
            )
            return
        job.result = result
        job.completed = cs_time()
        job.status = SUCCEEDED

    @staticmethod
    def _fail(job: Job, exc: ApiError, on_error: Callable[[], None] | None) -> None:
        if on_error is not None:
            with contextlib.suppress(Exception):  # cleanup of a failed job must not mask its error
                on_error()
        body = job_error(exc)
        job.result = body
        job.resultcode = int(str(body["errorcode"]))
        job.completed = cs_time()
        job.status = FAILED

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def pending(self) -> int:
        with self._lock:
            return sum(1 for j in self.jobs.values() if j.status == PENDING and not j.hung)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def new_id() -> str:
    return str(uuid.uuid4())
