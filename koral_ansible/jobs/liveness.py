"""Is a job's worker still alive? Its pid plus its start time, so a reused pid does not fool us."""

from __future__ import annotations

from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # proc_pid_stat(5): "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def process_start(pid: int) -> str:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot); "" if no such process."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def alive(pid: int, start: str) -> bool:
    """The process ``pid`` that started at ``start`` still runs (a zombie does not)."""
    if pid <= 0:
        return False
    fields = _stat_fields(pid)
    if not fields or len(fields) <= 19:
        return False
    return fields[0] not in ("Z", "X") and fields[19] == start
