"""The job record and the progress view: what the console shows of a background operation."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from koral_ansible.progress import HostProgress


class JobKind(StrEnum):
    CREATE = "create"
    SCALE = "scale"
    UPGRADE = "upgrade"
    STOP = "stop"
    START = "start"
    RECOVER = "recover"
    RESET = "reset"
    DELETE = "delete"
    REMOVE_NODE = "remove-node"
    AUTOSCALE = "autoscale"


class JobState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobFailure(BaseModel):
    """Where a failed job failed: the operation phase, and the host and task when Ansible failed."""

    model_config = ConfigDict(extra="forbid")

    phase: str = ""
    host: str = ""
    task: str = ""


class JobRecord(BaseModel):
    """One background operation. ``params`` never hold secrets (those go to the worker apart)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: JobKind
    cluster: str
    params: dict[str, Any] = Field(default_factory=dict)
    state: JobState = JobState.RUNNING
    created: str  # UTC ISO 8601
    ended: str | None = None
    pid: int = 0
    #: The worker's start time (/proc/PID/stat field 22): a reused pid has another one.
    pid_start: str = ""
    exit_code: int | None = None  # 0 / 1 / 2 like the CLI
    error: str = ""  # one line, redacted
    failure: JobFailure | None = None


class TaskFailure(BaseModel):
    """One failed (not ignored) task on one host, with the CLI's failure message (redacted)."""

    host: str
    task: str
    message: str


class JobView(BaseModel):
    """The live view of a job, rebuilt from its progress file (same counters as the CLI's view)."""

    id: str
    phase: str = ""
    play: str = ""
    task: str = ""
    hosts: dict[str, HostProgress] = Field(default_factory=dict)
    failures: list[TaskFailure] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)  # the last few operation messages
