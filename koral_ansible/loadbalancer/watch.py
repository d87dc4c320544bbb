"""List, then watch, one kind of object of a cluster's API, as client-go's Reflector does
(kubernetes/kubernetes staging/src/k8s.io/client-go/tools/cache/reflector.go ``ListAndWatch``).

Through the bundle's real kubectl (``kubectl get --raw``, which streams the response as it comes,
with the admin kubeconfig's credentials), so it speaks the API's own REST: a list gives the
collection's ``metadata.resourceVersion``; the watch asks
``?watch=1&resourceVersion=<rv>&allowWatchBookmarks=true&timeoutSeconds=<n>`` and reads the
newline-separated events (``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}``,
staging/src/k8s.io/apimachinery/pkg/watch/watch.go). Each event moves the resourceVersion on; a
BOOKMARK only moves it. The watch ending (its timeout, a broken connection) is watched again
from the last resourceVersion; ``410 Expired`` (an ERROR event whose Status has code 410, what
the watch cache sends for a resourceVersion older than its window, staging/src/k8s.io/apiserver/
pkg/storage/cacher/cacher.go ``Watch``; or a 410 answer) lists again, as does a third failure in
a row.

The informer keeps no objects: it calls ``on_change`` after each list and after each event that
matters (``relevant`` says what of an object matters; by default every event does), and the
controller's pass reads the current state itself (level-triggered).
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koral_ansible.errors import OperationError

log = logging.getLogger("koral.loadbalancer")

WATCH_TIMEOUT = 300  # seconds one watch request lasts (client-go picks 5-10 min: minWatchTimeout)
LIST_TIMEOUT = 30
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # seconds before retrying after a failure
FAILURES_BEFORE_RELIST = 3

Relevant = Callable[[dict[str, Any]], object]


@dataclass
class Counters:
    lists: int = 0
    events: int = 0
    expired: int = 0
    failures: int = 0


def _key(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    return f"{md.get('namespace') or ''}/{md.get('name') or ''}"


class Informer:
    """One list-and-watch loop in a thread (``start`` / ``stop``)."""

    def __init__(
        self,
        kubectl: Path,
        kubeconfig: Path,
        path: str,
        on_change: Callable[[], None],
        relevant: Relevant | None = None,
        watch_timeout: int = WATCH_TIMEOUT,
    ) -> None:
        self.kubectl, self.kubeconfig, self.path = kubectl, kubeconfig, path
        self.on_change, self.relevant, self.watch_timeout = on_change, relevant, watch_timeout
        self.counters = Counters()
        self._seen: dict[str, object] = {}
        self._stop = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    # --- the loop -----------------------------------------------------------------------
    def _run(self) -> None:
        rv: str | None = None
        failures = 0
        while not self._stop.is_set():
            if rv is None:
                try:
                    rv = self._list()
                except (OperationError, OSError, ValueError) as exc:
                    failures += 1
                    self.counters.failures += 1
                    log.warning("list %s: %s", self.path, exc)
                    self._stop.wait(BACKOFF[min(failures, len(BACKOFF)) - 1])
                    continue
                failures = 0
            outcome, rv_after, detail = self._watch(rv)
            if outcome == "expired":  # the resourceVersion left the server's window: start over
                self.counters.expired += 1
                log.info("watch %s: %s; listing again", self.path, detail)
                rv = None
            elif outcome == "ended":
                failures = 0
                rv = rv_after
            elif not self._stop.is_set():
                failures += 1
                self.counters.failures += 1
                log.warning("watch %s: %s", self.path, detail)
                self._stop.wait(BACKOFF[min(failures, len(BACKOFF)) - 1])
                rv = None if failures >= FAILURES_BEFORE_RELIST else rv_after

    def _list(self) -> str:
        cmd = self._cmd(self.path, "--request-timeout", "20s")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LIST_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise OperationError(f"kubectl get --raw {self.path} timed out after {LIST_TIMEOUT}s") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise OperationError(f"kubectl get --raw {self.path} failed: {last}")
        data = json.loads(proc.stdout)
        self._seen = {_key(o): self._value(o) for o in data.get("items") or []}
        self.counters.lists += 1
        self.on_change()
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, rv: str) -> tuple[str, str, str]:
        """Watch from ``rv`` until the stream ends: (outcome, last resourceVersion, detail);
        outcome is ``ended``, ``expired`` or ``failed``."""
        query = f"watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds={self.watch_timeout}"
        cmd = self._cmd(f"{self.path}?{query}")
        with self._lock:
            if self._stop.is_set():
                return "ended", rv, "stopped"
            self._proc = proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        outcome, detail = "ended", ""
        assert proc.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        for chunk in proc.stdout:
            buffer += chunk
            while True:
                buffer = buffer.lstrip()
                if not buffer:
                    break
                try:
                    event, end = decoder.raw_decode(buffer)
                except ValueError:
                    break  # an event split over reads: wait for the rest
                buffer = buffer[end:]
                rv, stop = self._event(event, rv)
                if stop is not None:
                    outcome, detail = stop
        proc.stdout.close()
        err = proc.stderr.read() if proc.stderr else ""
        code = proc.wait()
        if outcome == "ended" and code != 0 and not self._stop.is_set():
            last = (err.strip().splitlines() or [f"exit {code}"])[-1]
            expired = "(Expired)" in last or "(Gone)" in last
            outcome, detail = ("expired" if expired else "failed"), last
        return outcome, rv, detail

    def _event(self, event: Any, rv: str) -> tuple[str, tuple[str, str] | None]:
        """Apply one watch event: the new resourceVersion, and (outcome, detail) if the watch is over."""
        if not isinstance(event, dict):
            return rv, ("failed", "not a watch event")
        typ, obj = event.get("type"), event.get("object") or {}
        if typ == "ERROR":
            code, message = obj.get("code"), str(obj.get("message") or obj.get("reason") or "error")
            return rv, ("expired" if code == 410 else "failed", message)
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
        if typ == "BOOKMARK":
            return rv, None
        self.counters.events += 1
        key = _key(obj)
        before = self._seen.get(key)
        if typ == "DELETED":
            self._seen.pop(key, None)
            after = None
        else:
            after = self._seen[key] = self._value(obj)
        if self.relevant is None or before != after:
            self.on_change()
        return rv, None

    def _value(self, obj: dict[str, Any]) -> object:
        return self.relevant(obj) if self.relevant is not None else None

    def _cmd(self, path: str, *extra: str) -> list[str]:
        return [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "get", "--raw", path, *extra]
