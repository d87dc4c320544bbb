"""The frame every cluster operation runs in: lock, operation record, phases, events, state.

Every operation (create, delete, scale, ...) is::

    with OperationFrame(env, name, "create", busy=STARTING, failed=ERROR) as op:
        with op.phase("provision"):
            ...

which holds the cluster lock for the whole operation, records the operation and each phase
in the state store (a phase that finished is skipped on a re-run: resumability), writes one
event per phase start/end, and on failure records the error (redacted), sets the failure
state (Error for create, Alert for day-2 operations) and re-raises. Ctrl-C and SIGTERM are
recorded as "interrupted"; SIGKILL leaves the operation "running" with a dead pid, which
``StateStore.last_operation`` reports as interrupted.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

from koral_ansible.errors import KoralError, OperationError
from koral_ansible.paths import Paths
from koral_ansible.progress import NullProgress, Progress, make_progress
from koral_ansible.redact import Redactor
from koral_ansible.runner import stop_orphans
from koral_ansible.state import ClusterState, Operation, StateStore


@dataclass
class Env:
    """Process-wide settings shared by every operation."""

    paths: Paths
    store: StateStore
    verbose: bool = False
    quiet: bool = False
    tuned: bool = True
    redactor: Redactor = field(default_factory=Redactor)
    #: When set, every operation's progress comes from here instead of the terminal (the
    #: background job worker writes it to the job's progress file).
    progress_factory: Callable[[str], Progress] | None = None

    @classmethod
    def open(cls, home: str | None = None, **kwargs: Any) -> Env:
        paths = Paths.resolve(home)
        return cls(paths=paths, store=StateStore(paths), **kwargs)

    def progress(self, operation: str) -> Progress:
        if self.progress_factory is not None:
            return self.progress_factory(operation)
        return make_progress(operation, self.redactor, verbose=self.verbose, quiet=self.quiet)


class Interrupted(OperationError):
    """SIGINT/SIGTERM during an operation."""


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"interrupted by signal {signal.Signals(signum).name}")


class OperationFrame:
    def __init__(
        self,
        env: Env,
        cluster: str,
        operation: str,
        busy: ClusterState | None,
        failed: ClusterState | None,
        params: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.env = env
        self.store = env.store
        self.cluster = cluster
        self.operation = operation
        self.busy = busy
        self.failed = failed
        self.params = params or {}
        self.progress: Progress = progress or NullProgress()
        self.op: Operation | None = None
        self._lock = env.store.lock(cluster, operation)
        self._old_term: Any = None

    def __enter__(self) -> OperationFrame:
        self._lock.__enter__()
        try:
            orphans = stop_orphans(self.env.paths.runs(self.cluster))
            self.op = self.store.begin_operation(self.cluster, self.operation, self.params)
            # Python lets only the main thread set signal handlers; an operation a server runs on
            # a worker thread (the console's rule changes) leaves SIGTERM to the server.
            if threading.current_thread() is threading.main_thread():
                self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
            if self.busy is not None and self.store.find_cluster(self.cluster) is not None:
                self.store.set_state(self.cluster, self.busy)
            self.event("start", "Started", "resumed" if self.op.done_phases else "")
            if orphans:
                self.event("start", "Cleaned", f"stopped Ansible left by a killed run (pids {orphans})")
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    @property
    def resumed(self) -> bool:
        return bool(self.op and self.op.done_phases)

    def event(self, phase: str, result: str, message: str = "") -> None:
        self.store.event(self.cluster, self.operation, phase, result, self.env.redactor.text(message))

    def done(self, phase: str) -> bool:
        """Whether ``phase`` already completed in an earlier (interrupted) run of this operation."""
        return bool(self.op and phase in self.op.done_phases)

    @contextlib.contextmanager
    def phase(self, name: str, skip_if_done: bool = False) -> Iterator[bool]:
        """Run one phase; yields False (and records nothing) when it is done and may be skipped."""
        assert self.op is not None
        if skip_if_done and self.done(name):
            self.progress.phase(f"{name} (done earlier, skipped)")
            yield False
            return
        self.progress.phase(name)
        self.store.set_phase(self.op.id, name)
        self.event(name, "Started")
        yield True
        self.store.set_phase(self.op.id, name, done=True)
        self.op.done_phases.append(name)
        self.event(name, "Completed")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            assert self.op is not None
            if exc is None:
                self.store.finish_operation(self.op.id, "succeeded")
                self.event("end", "Completed")
                return
            interrupted = isinstance(exc, KeyboardInterrupt | Interrupted)
            message = self.env.redactor.text(str(exc) or exc_type.__name__ if exc_type else "")
            phase = self.store.operation(self.op.id)
            self.event(phase.phase if phase else "end", "Interrupted" if interrupted else "Failed", message)
            self.store.finish_operation(self.op.id, "interrupted" if interrupted else "failed")
            if self.failed is not None and self.store.find_cluster(self.cluster) is not None:
                self.store.set_state(self.cluster, self.failed)
        finally:
            if self._old_term is not None:
                signal.signal(signal.SIGTERM, self._old_term)
            self.progress.close()
            self._lock.__exit__(None, None, None)
        if exc is not None and not isinstance(exc, KoralError | KeyboardInterrupt):
            raise OperationError(f"{self.operation} of {self.cluster} failed: {exc}") from exc
