"""A :class:`~koral_ansible.progress.Progress` that appends JSON lines to the job's progress file.

Lines (each with ``t``, UTC ISO time, and ``type``):
``{"type": "phase", "phase": ...}``, ``{"type": "message", "message": ...}`` and
``{"type": "end", "state": ..., "exit_code": ..., "error": ...}`` (last, after the result is
written) and ``{"type": "event", "event": ..., "event_data": {...}, "failure": ...}`` where the event is
:func:`koral_ansible.progress.reduce_event` of a runner event (only what the CLI's progress
counts). Everything is redacted with the job's redactor before it is written.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from koral_ansible.progress import reduce_event
from koral_ansible.redact import Redactor
from koral_ansible.state import now


class FileProgress:
    def __init__(self, path: Path, redactor: Redactor) -> None:
        self.path = path
        self.redactor = redactor
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _write(self, line: dict[str, Any]) -> None:
        data = (json.dumps(self.redactor.data({"t": now(), **line})) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)  # O_APPEND: one write per line, readers never see half a line

    def phase(self, name: str) -> None:
        self._write({"type": "phase", "phase": name})

    def message(self, text: str) -> None:
        self._write({"type": "message", "message": text})

    def runner_event(self, event: dict[str, Any]) -> None:
        reduced = reduce_event(event)
        if reduced is not None:
            self._write({"type": "event", **reduced})

    def end(self, state: str, exit_code: int, error: str) -> None:
        """The job's last line (written after its result)."""
        self._write({"type": "end", "state": state, "exit_code": exit_code, "error": error})

    def close(self) -> None:
        """Operations close their progress when they end; a job may run more than one."""

    def shutdown(self) -> None:
        os.close(self._fd)
