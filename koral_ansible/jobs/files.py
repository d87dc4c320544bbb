"""Where one job keeps its files: ``<home>/jobs/<id>/`` (0700), every file 0600."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from koral_ansible.errors import NotFoundError
from koral_ansible.paths import Paths, private_dir

ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$")


def new_id() -> str:
    """Sortable by start time, unique by its random tail."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class JobFiles:
    dir: Path

    @classmethod
    def of(cls, paths: Paths, job_id: str) -> JobFiles:
        if not ID_RE.match(job_id):
            raise NotFoundError("job", f"{job_id!r} is not a job id (like 20261202T031500-a1b2c3)")
        return cls(paths.jobs / job_id)

    def create(self) -> JobFiles:
        private_dir(self.dir.parent)
        private_dir(self.dir)
        return self

    @property
    def record(self) -> Path:
        """The job as started (kind, cluster, params, pid): written by the starter."""
        return self.dir / "job.json"

    @property
    def result(self) -> Path:
        """How it ended (state, exit code, error, failure): written by the worker, last."""
        return self.dir / "result.json"

    @property
    def progress(self) -> Path:
        """JSON lines: phases, messages, reduced runner events (redacted)."""
        return self.dir / "progress.jsonl"

    @property
    def log(self) -> Path:
        """The worker's stdout and stderr."""
        return self.dir / "worker.log"
