"""Start a job: check its inputs and the cluster lock, then spawn a detached worker."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

from koral_ansible.errors import LockedError, OperationError
from koral_ansible.jobs.files import JobFiles, new_id
from koral_ansible.jobs.kinds import kind_of
from koral_ansible.jobs.liveness import process_start
from koral_ansible.jobs.model import JobKind, JobRecord, JobState
from koral_ansible.jobs.store import running_job, write_record, write_result
from koral_ansible.locks import BusyLock, held_lock, holder_of
from koral_ansible.operations.context import Env
from koral_ansible.paths import private_dir
from koral_ansible.spec import check_name
from koral_ansible.state import busy_error, lock_holder, now


@contextlib.contextmanager
def _starting(env: Env, cluster: str, kind: str) -> Iterator[None]:
    """Two starts for one cluster at once (two browser tabs): the second is refused."""
    private_dir(env.paths.locks)
    try:
        with held_lock(env.paths.locks / f"{cluster}.job-start.lock", f"starting a {kind} job"):
            yield
    except BusyLock:
        raise LockedError(f"cluster {cluster!r} is busy: another job is being started") from None


def _refuse_busy(env: Env, cluster: str, kind: str) -> None:
    """LockedError when a job or any other operation (a CLI command) holds the cluster."""
    job = running_job(env, cluster)
    if job is not None:
        # The worker's own lock text once it holds the lock; before that (it is starting) the
        # same text from its record, so the refusal reads as the CLI's either way.
        holder = holder_of(env.paths.cluster_lock(cluster)) or lock_holder(
            job.kind.value, job.pid, job.created
        )
        raise busy_error(cluster, holder, job.id)
    with env.store.lock(cluster, kind):  # the CLI's own lock and busy message
        pass


def start_job(
    env: Env, kind: str, cluster: str, params: dict[str, Any], secrets: dict[str, str] | None = None
) -> JobRecord:
    """Validate (InputError, exit 2, with ``.field``), refuse a busy cluster (LockedError), then
    run the operation in a detached worker; returns the running job's record."""
    spec = kind_of(kind)
    check_name(cluster)  # before any file is named after it (locks, job records)
    secrets = dict(secrets or {})
    spec.check_inputs(params, secrets)
    with _starting(env, cluster, kind):
        _refuse_busy(env, cluster, kind)
        for value in secrets.values():
            env.redactor.add(value)
        spec.check(env, cluster, params, secrets)
        files = JobFiles.of(env.paths, new_id()).create()
        record = JobRecord(
            id=files.dir.name, kind=JobKind(kind), cluster=cluster, params=params, created=now()
        )
        write_record(files, record)  # from here on running_job() sees it: the next start is refused
    log = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "koral_ansible.jobs.worker", str(env.paths.home), record.id],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the console (its terminal, its Ctrl-C)
            close_fds=True,
        )
    except OSError as exc:
        failed = record.model_copy(
            update={"state": JobState.FAILED, "ended": now(), "exit_code": 1, "error": f"cannot start: {exc}"}
        )
        write_result(files, failed)
        raise OperationError(f"cannot start the {kind} job's worker: {exc}") from None
    finally:
        os.close(log)
    record = record.model_copy(update={"pid": proc.pid, "pid_start": process_start(proc.pid)})
    write_record(files, record)
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(secrets).encode())  # secrets over a pipe: never argv or a file
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the worker died at once; its record says so
    # Reap the worker when it ends so it does not linger as a zombie of a long-running console.
    threading.Thread(target=proc.wait, name=f"job-{record.id}", daemon=True).start()
    return record
