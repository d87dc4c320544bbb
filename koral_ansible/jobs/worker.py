"""``python -m koral_ansible.jobs.worker HOME JOB_ID``: run one job's operation, write its result.

Secrets arrive as one JSON object on stdin (the starter writes it and closes the pipe). The
operation's progress goes to the job's progress file; its outcome (state, exit code, one-line
redacted error, where it failed) to ``result.json``, written last. SIGTERM interrupts the
operation the way Ctrl-C interrupts the CLI (recorded, re-runnable).
"""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType

from koral_ansible.errors import KoralError
from koral_ansible.jobs.files import JobFiles
from koral_ansible.jobs.kinds import kind_of
from koral_ansible.jobs.model import JobFailure, JobRecord, JobState
from koral_ansible.jobs.progress_file import FileProgress
from koral_ansible.jobs.store import write_result
from koral_ansible.jobs.view import read_progress, view_of
from koral_ansible.operations.context import Env, Interrupted
from koral_ansible.paths import read_json_record
from koral_ansible.state import now


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"interrupted by signal {signal.Signals(signum).name}")


def _outcome(exc: BaseException | None, record: JobRecord) -> tuple[int, str]:
    if exc is None:
        return 0, ""
    if isinstance(exc, KoralError):
        return exc.exit_code, exc.message
    if isinstance(exc, KeyboardInterrupt):
        return 1, "interrupted"
    return 1, " ".join(f"{record.kind.value} of {record.cluster} failed: {exc}".split())


def run(home: str, job_id: str, secrets: dict[str, str]) -> int:
    env = Env.open(home)
    files = JobFiles.of(env.paths, job_id)
    record = JobRecord.model_validate(read_json_record(files.record, "job record"))
    env.redactor.add(*secrets.values())
    sink = FileProgress(files.progress, env.redactor)
    env.progress_factory = lambda _operation: sink
    signal.signal(signal.SIGTERM, _interrupt)
    error: BaseException | None = None
    try:
        kind_of(record.kind.value).run(env, record.cluster, record.params, secrets)
    except BaseException as exc:  # every outcome is recorded; the worker itself always ends
        error = exc
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the result is written in any case
    code, message = _outcome(error, record)
    failure = None
    if code:
        view = view_of(job_id, record.kind.value, read_progress(env, job_id)[0])
        last = view.failures[-1] if view.failures else None
        failure = JobFailure(phase=view.phase, host=last.host if last else "", task=last.task if last else "")
        sink.message(f"error: {message}")
    done = record.model_copy(
        update={
            "state": JobState.FAILED if code else JobState.SUCCEEDED,
            "ended": now(),
            "exit_code": code,
            "error": env.redactor.text(message),
            "failure": failure,
        }
    )
    write_result(files, done)
    # Last line, after the result is on disk: a tailing reader (SSE) may stop and read the record.
    sink.end(done.state.value, code, done.error)
    sink.shutdown()
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m koral_ansible.jobs.worker HOME JOB_ID", file=sys.stderr)
        return 2
    raw = sys.stdin.read()
    secrets = {str(k): str(v) for k, v in (json.loads(raw) if raw.strip() else {}).items()}
    return run(args[0], args[1], secrets)


if __name__ == "__main__":
    sys.exit(main())
