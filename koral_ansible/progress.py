"""Live progress for long operations, fed by operation phases and ansible-runner events.

On a terminal: a rich live view with the operation phase, the current play and task, and
one row per host (tasks ok/changed/failed, last task). Elsewhere (CI, pipes): one line per
phase, per play and per failed host. ``--verbose`` streams Ansible's own output as well.
The event hook is cheap (counters only); rendering happens on rich's refresh timer.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from koral_ansible.redact import Redactor


class Progress(Protocol):
    def phase(self, name: str) -> None: ...
    def message(self, text: str) -> None: ...
    def runner_event(self, event: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


@dataclass
class HostProgress:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    task: str = ""


@dataclass
class ProgressState:
    operation: str
    phase: str = ""
    play: str = ""
    task: str = ""
    started: float = field(default_factory=time.monotonic)
    hosts: dict[str, HostProgress] = field(default_factory=dict)

    def host(self, name: str) -> HostProgress:
        if name not in self.hosts:
            self.hosts[name] = HostProgress()
        return self.hosts[name]

    def apply(self, event: dict[str, Any]) -> tuple[str, str | None]:
        """Update counters from one runner event; returns (kind, host) for the sink."""
        kind = str(event.get("event", ""))
        data = event.get("event_data") or {}
        host = data.get("host")
        if kind == "playbook_on_play_start":
            self.play = str(data.get("play", ""))
        elif kind == "playbook_on_task_start":
            self.task = str(data.get("task", ""))
        elif kind == "runner_on_start" and host:
            self.host(host).task = str(data.get("task", ""))
        elif kind == "runner_on_ok" and host:
            h = self.host(host)
            if (data.get("res") or {}).get("changed"):
                h.changed += 1
            else:
                h.ok += 1
        elif kind == "runner_on_failed" and host and not data.get("ignore_errors"):
            self.host(host).failed += 1
        elif kind == "runner_on_skipped" and host:
            self.host(host).skipped += 1
        elif kind == "runner_on_unreachable" and host:
            h = self.host(host)
            h.unreachable = True
            h.failed += 1
        return kind, host


#: The runner events :meth:`ProgressState.apply` counts; everything else is noise for progress.
COUNTED_EVENTS = frozenset(
    {
        "playbook_on_play_start",
        "playbook_on_task_start",
        "runner_on_start",
        "runner_on_ok",
        "runner_on_failed",
        "runner_on_skipped",
        "runner_on_unreachable",
    }
)


def reduce_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """What :meth:`ProgressState.apply` reads of a runner event (None if it counts nothing), in
    the event's own shape, so a stored copy replays into the same counters. A failure keeps its
    :func:`failure_message` under ``failure`` (not redacted here: the caller redacts)."""
    kind = str(event.get("event", ""))
    if kind not in COUNTED_EVENTS:
        return None
    data = event.get("event_data") or {}
    kept: dict[str, Any] = {
        k: str(data[k]) for k in ("host", "task", "play") if data.get(k) not in (None, "")
    }
    if kind == "runner_on_ok":
        kept["res"] = {"changed": bool((data.get("res") or {}).get("changed"))}
    if data.get("ignore_errors"):
        kept["ignore_errors"] = True
    out: dict[str, Any] = {"event": kind, "event_data": kept}
    if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
        out["failure"] = failure_message(event)
    return out


def failure_message(event: dict[str, Any]) -> str:
    """The useful part of a failed task's result: its message plus the command's stderr/stdout tail."""
    res = (event.get("event_data") or {}).get("res") or {}
    if res.get("censored"):
        return str(res["censored"])
    parts: list[str] = []
    for key in ("msg", "reason", "stderr", "module_stderr", "stdout"):
        val = res.get(key)
        if isinstance(val, str) and val.strip():
            tail = " ".join(val.strip().splitlines()[-3:])
            if tail not in parts:
                parts.append(tail)
        if len(parts) == 2 or (parts and key == "msg" and val != "non-zero return code"):
            break
    return ": ".join(parts)[:500] if parts else "task failed"


class LiveProgress:
    """Rich live display on a terminal."""

    def __init__(
        self, operation: str, redactor: Redactor, verbose: bool = False, stream: TextIO | None = None
    ):
        self.state = ProgressState(operation)
        self.redactor = redactor
        self.verbose = verbose
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.live = Live(
            get_renderable=self._render, console=self.console, refresh_per_second=4, transient=True
        )
        self.live.start()

    def _render(self) -> Group:
        st = self.state
        elapsed = time.monotonic() - st.started
        head = Text.assemble(
            (f"{st.operation} ", "bold"),
            (f"[{st.phase}] ", "cyan"),
            (f"{st.play} ", "magenta"),
            (f"- {st.task}" if st.task else "", ""),
            (f"  {elapsed:5.0f}s", "dim"),
        )
        table = Table(box=None, padding=(0, 1), show_header=bool(st.hosts))
        for col in ("host", "ok", "changed", "failed", "task"):
            table.add_column(col)
        for name, h in sorted(st.hosts.items()):
            status = "red" if h.failed else "green"
            table.add_row(Text(name, style=status), str(h.ok), str(h.changed), str(h.failed), h.task[:60])
        return Group(head, table)

    def phase(self, name: str) -> None:
        self.state.phase = name
        self.console.print(f"[cyan]==>[/] {self.state.operation}: {name}")

    def message(self, text: str) -> None:
        self.console.print(f"    {self.redactor.text(text)}", highlight=False, markup=False)

    def runner_event(self, event: dict[str, Any]) -> None:
        kind, host = self.state.apply(event)
        if self.verbose and event.get("stdout"):
            self.console.print(self.redactor.text(str(event["stdout"])), markup=False, highlight=False)
        elif kind in ("runner_on_failed", "runner_on_unreachable") and host:
            data = event.get("event_data") or {}
            if not data.get("ignore_errors"):
                self.console.print(
                    f"[red]FAILED[/] {host} | {data.get('task', '')} | "
                    f"{self.redactor.text(failure_message(event))}",
                    markup=True,
                    highlight=False,
                )

    def close(self) -> None:
        self.live.stop()


class LineProgress:
    """Plain lines for logs and CI."""

    def __init__(
        self, operation: str, redactor: Redactor, verbose: bool = False, stream: TextIO | None = None
    ):
        self.state = ProgressState(operation)
        self.redactor = redactor
        self.verbose = verbose
        self.stream = stream or sys.stderr

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.state.started
        self.stream.write(f"[{elapsed:6.1f}s] {self.redactor.text(text)}\n")
        self.stream.flush()

    def phase(self, name: str) -> None:
        self.state.phase = name
        self._line(f"==> {self.state.operation}: {name}")

    def message(self, text: str) -> None:
        self._line(f"    {text}")

    def runner_event(self, event: dict[str, Any]) -> None:
        kind, host = self.state.apply(event)
        if self.verbose and event.get("stdout"):
            self.stream.write(self.redactor.text(str(event["stdout"])) + "\n")
        if kind == "playbook_on_play_start":
            self._line(f"    play: {self.state.play}")
        elif kind in ("runner_on_failed", "runner_on_unreachable") and host:
            data = event.get("event_data") or {}
            if not data.get("ignore_errors"):
                self._line(f"    FAILED {host} | {data.get('task', '')} | {failure_message(event)}")
        elif kind == "playbook_on_stats":
            parts = [
                f"{n}: ok={h.ok} changed={h.changed} failed={h.failed}"
                for n, h in sorted(self.state.hosts.items())
            ]
            if parts:
                self._line("    " + "; ".join(parts))

    def close(self) -> None:
        self.stream.flush()


class NullProgress:
    def phase(self, name: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def runner_event(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(operation: str, redactor: Redactor, verbose: bool = False, quiet: bool = False) -> Progress:
    if quiet:
        return NullProgress()
    if sys.stderr.isatty() and not verbose:
        return LiveProgress(operation, redactor, verbose)
    return LineProgress(operation, redactor, verbose)
