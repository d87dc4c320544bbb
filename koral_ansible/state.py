"""Persistent state: clusters, nodes, cloud resources, operations and the event log.

SQLite in WAL mode; every change is one transaction (atomic). Secrets are never stored
here: they live in a 0600 file per cluster (:meth:`StateStore.save_secrets`).
A per-cluster lock (``flock`` on ``locks/<name>.lock``) serializes operations on one
cluster; the kernel releases it when the holder dies, even by SIGKILL, so an interrupted
operation can always be re-run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from koral_ansible.errors import LockedError, NotFoundError, OperationError
from koral_ansible.locks import BusyLock, held_lock
from koral_ansible.paths import Paths, private_dir, write_private
from koral_ansible.spec import ClusterSpec, restore_spec


class ClusterState(StrEnum):
    """CKS cluster states."""

    CREATED = "Created"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    SCALING = "Scaling"
    UPGRADING = "Upgrading"
    REMOVING_NODES = "RemovingNodes"
    RECOVERING = "Recovering"
    ALERT = "Alert"
    ERROR = "Error"
    DESTROYING = "Destroying"
    DESTROYED = "Destroyed"


SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    endpoint TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    idx INTEGER NOT NULL,
    private_ip TEXT NOT NULL DEFAULT '',
    ssh_host TEXT NOT NULL DEFAULT '',
    ssh_port INTEGER NOT NULL DEFAULT 22,
    state TEXT NOT NULL DEFAULT 'Creating',
    provider_id TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (cluster, name)
);
CREATE TABLE IF NOT EXISTS resources (
    cluster TEXT NOT NULL,
    kind TEXT NOT NULL,
    rid TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    PRIMARY KEY (cluster, kind, rid)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL,
    time TEXT NOT NULL,
    operation TEXT NOT NULL,
    phase TEXT NOT NULL,
    result TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL,
    operation TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    done_phases TEXT NOT NULL DEFAULT '[]',
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,
    finished TEXT
);
CREATE TABLE IF NOT EXISTS network_rules (
    cluster TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);
CREATE INDEX IF NOT EXISTS events_cluster ON events(cluster, id);
CREATE INDEX IF NOT EXISTS operations_cluster ON operations(cluster, id);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class NodeRecord:
    name: str
    role: str  # "control" or "worker"
    idx: int  # position in the cluster (0 = first control node); ssh port = 2222 + idx
    private_ip: str = ""
    ssh_host: str = ""
    ssh_port: int = 22
    state: str = "Creating"
    provider_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_control(self) -> bool:
        return self.role == "control"


@dataclass
class ClusterRecord:
    name: str
    provider: str
    spec: ClusterSpec
    state: ClusterState
    endpoint: dict[str, Any]
    created: str
    updated: str
    nodes: list[NodeRecord] = field(default_factory=list)

    @property
    def control_nodes(self) -> list[NodeRecord]:
        return [n for n in self.nodes if n.is_control]

    @property
    def workers(self) -> list[NodeRecord]:
        return [n for n in self.nodes if not n.is_control]


@dataclass
class Event:
    time: str
    operation: str
    phase: str
    result: str
    message: str


@dataclass
class Resource:
    kind: str
    rid: str
    data: dict[str, Any]
    created: str


@dataclass
class Operation:
    id: int
    cluster: str
    operation: str
    params: dict[str, Any]
    status: str  # running | succeeded | failed | interrupted
    phase: str
    done_phases: list[str]
    pid: int
    started: str
    finished: str | None


OPEN_TIMEOUT = 30.0  # seconds to wait for another process holding the database


class StateStore:
    """All reads and writes of koral's state go through here."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        private_dir(paths.home)
        self._db = self._connect(paths.db)

    # ---- plumbing ---------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # Switching a new database to WAL answers "database is locked" at once (no busy wait)
        # while another process does the same, e.g. two `koral-play create` in a new home:
        # retry the set-up for as long as the busy timeout would have waited.
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            db = sqlite3.connect(str(path), timeout=OPEN_TIMEOUT, isolation_level=None)
            try:
                db.row_factory = sqlite3.Row
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(SCHEMA)
                break
            except sqlite3.Error as exc:
                db.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise OperationError(f"cannot open state database {path}: {exc}") from None
                time.sleep(random.uniform(0.01, 0.1))
        with contextlib.suppress(OSError):
            path.chmod(0o600)
        return db

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise OperationError(f"state database {self.paths.db}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    # ---- clusters ---------------------------------------------------------------------------
    def add_cluster(self, spec: ClusterSpec, state: ClusterState = ClusterState.CREATED) -> ClusterRecord:
        ts = now()
        with self._tx() as db:
            db.execute(
                "INSERT INTO clusters(name, provider, spec, state, created, updated) VALUES (?,?,?,?,?,?)",
                (spec.name, spec.provider, json.dumps(spec.public_dict()), state.value, ts, ts),
            )
        self.save_secrets(spec.name, spec.secrets())
        return self.get_cluster(spec.name)

    def find_cluster(self, name: str) -> ClusterRecord | None:
        row = self._db.execute("SELECT * FROM clusters WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        spec = restore_spec(json.loads(row["spec"]), self.load_secrets(name))
        return ClusterRecord(
            name=row["name"],
            provider=row["provider"],
            spec=spec,
            state=ClusterState(row["state"]),
            endpoint=json.loads(row["endpoint"]),
            created=row["created"],
            updated=row["updated"],
            nodes=self.nodes(name),
        )

    def get_cluster(self, name: str) -> ClusterRecord:
        rec = self.find_cluster(name)
        if rec is None:
            known = ", ".join(self.cluster_names()) or "none"
            raise NotFoundError("NAME", f"no cluster named {name!r} (known clusters: {known})")
        return rec

    def cluster_names(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM clusters ORDER BY name")]

    def list_clusters(self) -> list[ClusterRecord]:
        return [c for n in self.cluster_names() if (c := self.find_cluster(n)) is not None]

    def set_state(self, name: str, state: ClusterState) -> None:
        with self._tx() as db:
            db.execute("UPDATE clusters SET state=?, updated=? WHERE name=?", (state.value, now(), name))

    def set_spec(self, spec: ClusterSpec) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE clusters SET spec=?, updated=? WHERE name=?",
                (json.dumps(spec.public_dict()), now(), spec.name),
            )
        self.save_secrets(spec.name, spec.secrets())

    def set_endpoint(self, name: str, endpoint: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE clusters SET endpoint=?, updated=? WHERE name=?", (json.dumps(endpoint), now(), name)
            )

    def forget_cluster(self, name: str) -> None:
        """Drop every row of a cluster (after its resources are gone). Events are kept."""
        with self._tx() as db:
            db.execute("DELETE FROM nodes WHERE cluster=?", (name,))
            db.execute("DELETE FROM resources WHERE cluster=?", (name,))
            db.execute("DELETE FROM network_rules WHERE cluster=?", (name,))
            db.execute("DELETE FROM clusters WHERE name=?", (name,))
        self.paths.secrets(name).unlink(missing_ok=True)

    # ---- nodes ------------------------------------------------------------------------------
    def upsert_node(self, cluster: str, node: NodeRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO nodes(cluster, name, role, idx, private_ip, ssh_host, ssh_port, state,"
                " provider_id, data) VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(cluster, name) DO UPDATE SET role=excluded.role, idx=excluded.idx,"
                " private_ip=excluded.private_ip, ssh_host=excluded.ssh_host, ssh_port=excluded.ssh_port,"
                " state=excluded.state, provider_id=excluded.provider_id, data=excluded.data",
                (
                    cluster,
                    node.name,
                    node.role,
                    node.idx,
                    node.private_ip,
                    node.ssh_host,
                    node.ssh_port,
                    node.state,
                    node.provider_id,
                    json.dumps(node.data),
                ),
            )

    def set_node_state(self, cluster: str, node: str, state: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE nodes SET state=? WHERE cluster=? AND name=?", (state, cluster, node))

    def nodes(self, cluster: str) -> list[NodeRecord]:
        rows = self._db.execute(
            "SELECT * FROM nodes WHERE cluster=? ORDER BY idx, name", (cluster,)
        ).fetchall()
        return [
            NodeRecord(
                name=r["name"],
                role=r["role"],
                idx=r["idx"],
                private_ip=r["private_ip"],
                ssh_host=r["ssh_host"],
                ssh_port=r["ssh_port"],
                state=r["state"],
                provider_id=r["provider_id"],
                data=json.loads(r["data"]),
            )
            for r in rows
        ]

    def remove_node(self, cluster: str, node: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM nodes WHERE cluster=? AND name=?", (cluster, node))

    # ---- resources --------------------------------------------------------------------------
    def add_resource(self, cluster: str, kind: str, rid: str, data: dict[str, Any] | None = None) -> None:
        """Record a resource; call it as soon as the resource exists (or is about to)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO resources(cluster, kind, rid, data, created) VALUES (?,?,?,?,?)"
                " ON CONFLICT(cluster, kind, rid) DO UPDATE SET data=excluded.data",
                (cluster, kind, rid, json.dumps(data or {}), now()),
            )

    def resources(self, cluster: str, kind: str | None = None) -> list[Resource]:
        q = "SELECT * FROM resources WHERE cluster=?"
        args: tuple[Any, ...] = (cluster,)
        if kind is not None:
            q += " AND kind=?"
            args += (kind,)
        rows = self._db.execute(q + " ORDER BY created, rowid", args).fetchall()
        return [Resource(r["kind"], r["rid"], json.loads(r["data"]), r["created"]) for r in rows]

    def remove_resource(self, cluster: str, kind: str, rid: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM resources WHERE cluster=? AND kind=? AND rid=?", (cluster, kind, rid))

    # ---- the user's network rules (koral_ansible.rules): wanted state, not cloud objects -------
    def put_network_rule(self, cluster: str, name: str, data: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO network_rules(cluster, name, data, created) VALUES (?,?,?,?)"
                " ON CONFLICT(cluster, name) DO UPDATE SET data=excluded.data",
                (cluster, name, json.dumps(data), now()),
            )

    def network_rules(self, cluster: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT data FROM network_rules WHERE cluster=? ORDER BY created, rowid", (cluster,)
        ).fetchall()
        return [json.loads(r["data"]) for r in rows]

    def remove_network_rule(self, cluster: str, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM network_rules WHERE cluster=? AND name=?", (cluster, name))

    # ---- events and operations --------------------------------------------------------------
    def event(self, cluster: str, operation: str, phase: str, result: str, message: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO events(cluster, time, operation, phase, result, message) VALUES (?,?,?,?,?,?)",
                (cluster, now(), operation, phase, result, message[:2000]),
            )

    def events(self, cluster: str, limit: int | None = None) -> list[Event]:
        q = "SELECT * FROM events WHERE cluster=? ORDER BY id"
        rows = self._db.execute(q, (cluster,)).fetchall()
        evs = [Event(r["time"], r["operation"], r["phase"], r["result"], r["message"]) for r in rows]
        return evs[-limit:] if limit else evs

    def begin_operation(
        self, cluster: str, operation: str, params: dict[str, Any] | None = None
    ) -> Operation:
        """Start an operation, or resume the last one of the same kind if it did not finish."""
        last = self.last_operation(cluster)
        with self._tx() as db:
            if last and last.operation == operation and last.status in ("running", "failed", "interrupted"):
                db.execute(
                    "UPDATE operations SET status='running', pid=?, params=?, finished=NULL WHERE id=?",
                    (os.getpid(), json.dumps(params or last.params), last.id),
                )
                op_id = last.id
            else:
                cur = db.execute(
                    "INSERT INTO operations(cluster, operation, params, status, pid, started)"
                    " VALUES (?,?,?,?,?,?)",
                    (cluster, operation, json.dumps(params or {}), "running", os.getpid(), now()),
                )
                op_id = int(cur.lastrowid or 0)
        op = self.operation(op_id)
        assert op is not None
        return op

    def operation(self, op_id: int) -> Operation | None:
        r = self._db.execute("SELECT * FROM operations WHERE id=?", (op_id,)).fetchone()
        return _op(r) if r else None

    def last_operation(self, cluster: str) -> Operation | None:
        r = self._db.execute(
            "SELECT * FROM operations WHERE cluster=? ORDER BY id DESC LIMIT 1", (cluster,)
        ).fetchone()
        if r is None:
            return None
        op = _op(r)
        if op.status == "running" and not _alive(op.pid):
            op.status = "interrupted"
        return op

    def set_phase(self, op_id: int, phase: str, done: bool = False) -> None:
        with self._tx() as db:
            r = db.execute("SELECT done_phases FROM operations WHERE id=?", (op_id,)).fetchone()
            phases = json.loads(r[0]) if r else []
            if done and phase not in phases:
                phases.append(phase)
            db.execute(
                "UPDATE operations SET phase=?, done_phases=? WHERE id=?", (phase, json.dumps(phases), op_id)
            )

    def finish_operation(self, op_id: int, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE operations SET status=?, finished=? WHERE id=?", (status, now(), op_id))

    # ---- secrets ----------------------------------------------------------------------------
    def save_secrets(self, name: str, secrets: dict[str, str]) -> None:
        path = self.paths.secrets(name)
        if secrets:
            write_private(path, json.dumps(secrets))
        else:
            path.unlink(missing_ok=True)

    def load_secrets(self, name: str) -> dict[str, str]:
        path = self.paths.secrets(name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    # ---- locking ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, cluster: str, operation: str) -> Iterator[None]:
        """Hold the cluster's lock for one operation, or raise LockedError at once."""
        private_dir(self.paths.locks)
        try:
            with held_lock(self.paths.cluster_lock(cluster), lock_holder(operation, os.getpid(), now())):
                yield
        except BusyLock as busy:
            raise busy_error(cluster, busy.holder) from None


def lock_holder(operation: str, pid: int, since: str) -> str:
    """What the holder of a cluster's lock writes into it (and a refused command shows)."""
    return f"{operation} (pid {pid}, since {since})"


def busy_error(cluster: str, holder: str, job_id: str = "") -> LockedError:
    """The one busy refusal, for a CLI command and a console job alike; a console job running on
    the cluster adds its id after the lock holder's text."""
    job = f" (console job {job_id})" if job_id else ""
    return LockedError(
        f"cluster {cluster!r} is busy: {holder or 'another operation'}{job} holds its lock; "
        "wait for it to finish (or stop it) and retry"
    )


def _op(r: sqlite3.Row) -> Operation:
    return Operation(
        id=r["id"],
        cluster=r["cluster"],
        operation=r["operation"],
        params=json.loads(r["params"]),
        status=r["status"],
        phase=r["phase"],
        done_phases=json.loads(r["done_phases"]),
        pid=r["pid"],
        started=r["started"],
        finished=r["finished"],
    )


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
