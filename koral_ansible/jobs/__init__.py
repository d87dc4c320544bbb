"""Background operations (jobs) for the web console: one detached worker process per operation.

A job runs a library operation (``koral_ansible.operations.*``) exactly as the CLI would, in
its own process, so it takes the cluster lock exactly as the CLI does. Everything a job has is
on disk under ``<home>/jobs/<id>/`` (0700 directory, 0600 files): the record, the progress
lines and the worker's output, so a console restart or a page reload loses nothing.

API::

    start_job(env, kind, cluster, params, secrets=None) -> JobRecord
    get_job(env, id) -> JobRecord
    list_jobs(env, cluster=None, limit=50) -> list[JobRecord]     # newest first
    running_job(env, cluster) -> JobRecord | None
    read_progress(env, id, offset) -> (lines, next_offset)        # for SSE tailing
    job_view(env, id) -> JobView                                  # phase, play, task, hosts, failures
    node_usage(env, cluster) -> list[NodeUsage]
"""

from koral_ansible.jobs.kinds import KINDS
from koral_ansible.jobs.model import JobFailure, JobKind, JobRecord, JobState, JobView, TaskFailure
from koral_ansible.jobs.start import start_job
from koral_ansible.jobs.store import get_job, list_jobs, running_job
from koral_ansible.jobs.usage import NodeUsage, node_usage
from koral_ansible.jobs.view import job_view, read_progress

__all__ = [
    "KINDS",
    "JobFailure",
    "JobKind",
    "JobRecord",
    "JobState",
    "JobView",
    "NodeUsage",
    "TaskFailure",
    "get_job",
    "job_view",
    "list_jobs",
    "node_usage",
    "read_progress",
    "running_job",
    "start_job",
]
