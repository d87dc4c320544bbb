"""Run koral operations on one thread (the process's main thread) on behalf of gRPC handlers.

koral's operations (``OperationFrame``) install a SIGTERM handler, which Python allows only on
the main thread; gRPC handlers run on a thread pool. ``MainThreadRunner.wrap(fn)`` returns a
callable that, from any thread, queues ``fn`` for the thread that runs :meth:`run` and waits
for its result (or re-raises its exception there). A job interrupted by SIGTERM/SIGINT (the
operation's handler receives the signal, not the server's) also stops :meth:`run`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from koral_ansible.errors import OperationError
from koral_ansible.operations.context import Interrupted

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class _Job:
    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class MainThreadRunner:
    def __init__(self) -> None:
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the runner thread and return its result (directly when already there)."""
        if threading.current_thread() is self._thread:
            return fn()
        if self._closed.is_set():
            raise OperationError("the autoscaler service is stopping; retry later")
        job = _Job(fn)
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def wrap(self, fn: Callable[P, T]) -> Callable[P, T]:
        def run_on_runner(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(lambda: fn(*args, **kwargs))

        return run_on_runner

    def run(self, stop: threading.Event, poll: float = 0.2) -> None:
        """Execute queued jobs on this thread until ``stop`` is set; then fail what is left."""
        self._thread = threading.current_thread()
        try:
            while not stop.is_set():
                try:
                    job = self._jobs.get(timeout=poll)
                except queue.Empty:
                    continue
                self._execute(job)
                if isinstance(job.error, Interrupted | KeyboardInterrupt):
                    stop.set()  # the operation's own SIGTERM/SIGINT handler took the signal meant for us
        finally:
            self._closed.set()
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                job.error = OperationError("the autoscaler service is stopping; retry later")
                job.done.set()

    @staticmethod
    def _execute(job: _Job) -> None:
        try:
            job.result = job.fn()
        except BaseException as exc:  # handed to the waiting handler thread
            job.error = exc
        finally:
            job.done.set()
