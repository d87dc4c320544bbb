"""Background jobs (koral_ansible.jobs): records, progress, view, exit codes, refusals, liveness,
secrets. The worker is the real ``python -m koral_ansible.jobs.worker``; only the operation it
calls is a fake (tests/unit/jobs_fake, loaded into the worker through sitecustomize)."""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from koral_ansible import jobs
from koral_ansible.autoscaler import settings
from koral_ansible.errors import InputError, LockedError, NotFoundError
from koral_ansible.jobs import kinds
from koral_ansible.jobs.files import JobFiles
from koral_ansible.jobs.progress_file import FileProgress
from koral_ansible.jobs.store import DEAD_ERROR, write_record
from koral_ansible.jobs.view import view_of
from koral_ansible.locks import held_lock
from koral_ansible.operations.context import Env
from koral_ansible.paths import Paths
from koral_ansible.progress import LineProgress
from koral_ansible.redact import Redactor
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState, NodeRecord, StateStore, now
from tests.unit.jobs_fake.fake_ops import EVENTS, MODE_ENV

FAKE_DIR = Path(__file__).parent / "jobs_fake"
REPO = Path(__file__).parents[2]
SECRET = "s3cr3t-Registry-Pass"


@pytest.fixture
def env(koral_home: Paths, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("PYTHONPATH", f"{FAKE_DIR}:{REPO}")
    monkeypatch.setenv(MODE_ENV, "ok")
    e = Env(paths=koral_home, store=StateStore(koral_home), quiet=True)
    e.store.add_cluster(validate_spec({"name": "demo", "size": 2}), ClusterState.RUNNING)
    for idx, (name, role) in enumerate(
        [("demo-control-1", "control"), ("demo-node-1", "worker"), ("demo-node-2", "worker")]
    ):
        e.store.upsert_node("demo", NodeRecord(name=name, role=role, idx=idx, state="Running"))
    return e


def wait_done(env: Env, job_id: str, timeout: float = 30.0) -> jobs.JobRecord:
    deadline = time.monotonic() + timeout
    while True:
        job = jobs.get_job(env, job_id)
        if job.state != jobs.JobState.RUNNING:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still running"
        time.sleep(0.05)


def cli_counters() -> dict[str, tuple[int, int, int, int, bool]]:
    """What the CLI's progress counts from EVENTS."""
    line = LineProgress("scale", Redactor(), stream=io.StringIO())
    for event in EVENTS:
        line.runner_event(event)
    return {n: (h.ok, h.changed, h.failed, h.skipped, h.unreachable) for n, h in line.state.hosts.items()}


def test_scale_job_runs_in_a_worker_and_records_everything(env: Env) -> None:
    job = jobs.start_job(env, "scale", "demo", {"size": 3})
    assert job.state == jobs.JobState.RUNNING and job.pid > 0 and job.pid_start
    assert jobs.running_job(env, "demo") is not None
    done = wait_done(env, job.id)
    assert (done.state, done.exit_code, done.error, done.failure) == (jobs.JobState.SUCCEEDED, 0, "", None)
    assert done.ended and done.created <= done.ended and done.params == {"size": 3}
    assert jobs.running_job(env, "demo") is None
    # The worker ran the operation in the real frame: recorded in the state store like the CLI's.
    last = env.store.last_operation("demo")
    assert last is not None and (last.operation, last.status) == ("scale", "succeeded")
    lines, end = jobs.read_progress(env, job.id, 0)
    assert [ln["phase"] for ln in lines if ln["type"] == "phase"] == ["join"]
    last = lines[-1]
    assert last == {"t": last["t"], "type": "end", "state": "succeeded", "exit_code": 0, "error": ""}
    assert {ln["event"] for ln in lines if ln["type"] == "event"} <= {
        "playbook_on_play_start",
        "playbook_on_task_start",
        "runner_on_start",
        "runner_on_ok",
        "runner_on_failed",
        "runner_on_skipped",
        "runner_on_unreachable",
    }
    assert all("stdout" not in str(ln) for ln in lines)  # only what progress counts is kept
    assert jobs.read_progress(env, job.id, end) == ([], end)
    view = jobs.job_view(env, job.id)
    got = {n: (h.ok, h.changed, h.failed, h.skipped, h.unreachable) for n, h in view.hosts.items()}
    assert got == cli_counters()
    assert (view.phase, view.play, view.task) == ("join", "Prepare nodes", "Join the node")
    assert [(f.host, f.task) for f in view.failures] == [("n2", "Join the node"), ("n3", "Join the node")]
    assert view.failures[0].message == "kubeadm join failed"
    files = JobFiles.of(env.paths, job.id)
    assert stat.S_IMODE(files.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(env.paths.jobs.stat().st_mode) == 0o700
    for path in files.dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_view_replays_to_the_cli_counters() -> None:
    """The stored lines rebuild exactly the counters the CLI's live view keeps."""
    buf: list[dict[str, object]] = []

    class Sink(FileProgress):
        def __init__(self) -> None:
            self.redactor = Redactor()

        def _write(self, line: dict[str, object]) -> None:
            buf.append(line)

    sink = Sink()
    for event in EVENTS:
        sink.runner_event(event)
    view = view_of("x", "scale", buf)  # type: ignore[arg-type]
    got = {n: (h.ok, h.changed, h.failed, h.skipped, h.unreachable) for n, h in view.hosts.items()}
    assert got == cli_counters()


def test_failed_job_records_exit_code_error_and_where(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_ENV, "fail")
    done = wait_done(env, jobs.start_job(env, "scale", "demo", {"size": 3}).id)
    assert (done.state, done.exit_code, done.error) == (jobs.JobState.FAILED, 1, "join failed on n2")
    assert done.failure == jobs.JobFailure(phase="join", host="n3", task="Join the node")
    end = jobs.read_progress(env, done.id, 0)[0][-1]
    assert (end["type"], end["state"], end["exit_code"], end["error"]) == ("end", "failed", 1, done.error)
    last = env.store.last_operation("demo")
    assert last is not None and last.status == "failed"


def test_input_error_raises_before_anything_is_spawned(env: Env) -> None:
    cases = [
        ("scale", {"size": "0"}, "size"),
        ("scale", {}, "size"),
        ("scale", {"size": 2, "colour": "red"}, "colour"),
        ("create", {"pod_cidr": "10.0.0.1/8"}, "pod_cidr"),
        ("create", {"size": "many"}, "size"),
        ("remove-node", {"node": "demo-control-1"}, "NODE"),
        ("upgrade", {"version": "1.0.0"}, "--version"),
        ("explode", {}, "kind"),
    ]
    for kind, params, field in cases:
        with pytest.raises(InputError) as exc:
            jobs.start_job(env, kind, "new" if kind == "create" else "demo", params)
        assert exc.value.field == field, (kind, params, str(exc.value))
        assert exc.value.exit_code == 2
    with pytest.raises(NotFoundError):
        jobs.start_job(env, "stop", "nosuch", {})
    with pytest.raises(InputError) as exc:
        jobs.start_job(env, "scale", "demo", {"size": 2}, {"registry_password": SECRET})
    assert exc.value.field == "registry_password" and SECRET not in str(exc.value)
    assert jobs.list_jobs(env) == []
    assert not env.paths.jobs.exists()


@pytest.mark.parametrize("name", ["../x", "", "a" * 33, "../../etc/passwd", "Demo", "demo\n", "x/y"])
@pytest.mark.parametrize("kind", ["delete", "create", "stop"])
def test_cluster_name_is_validated_before_any_file_is_created(env: Env, kind: str, name: str) -> None:
    before = sorted(p.relative_to(env.paths.home) for p in env.paths.home.rglob("*"))
    with pytest.raises(InputError) as exc:
        jobs.start_job(env, kind, name, {})
    assert exc.value.field == "NAME" and exc.value.exit_code == 2
    assert "1-32 characters of a-z, 0-9 and '-'" in str(exc.value) and "\n" not in str(exc.value).strip()
    assert sorted(p.relative_to(env.paths.home) for p in env.paths.home.rglob("*")) == before
    assert not (env.paths.home / "x.lock").exists() and not env.paths.locks.exists()


def test_busy_cluster_is_refused(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    with env.store.lock("demo", "upgrade"), pytest.raises(LockedError, match="busy: upgrade"):
        jobs.start_job(env, "scale", "demo", {"size": 3})
    assert jobs.list_jobs(env) == []
    with held_lock(env.paths.locks / "demo.job-start.lock", "x"), pytest.raises(LockedError, match="started"):
        jobs.start_job(env, "scale", "demo", {"size": 3})  # another tab is starting one right now
    monkeypatch.setenv(MODE_ENV, "sleep")
    first = jobs.start_job(env, "scale", "demo", {"size": 3})
    try:
        with pytest.raises(LockedError, match=f"job {first.id}"):
            jobs.start_job(env, "stop", "demo", {})
        # A CLI command at the same time meets the lock the worker holds, as with two CLIs.
        deadline = time.monotonic() + 20
        while True:
            try:
                with env.store.lock("demo", "stop"):
                    pass
            except LockedError as exc:
                cli_message = str(exc)
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert cli_message.startswith(f"cluster 'demo' is busy: scale (pid {first.pid}, since ")
        assert cli_message.endswith(" holds its lock; wait for it to finish (or stop it) and retry")
        # The console's refusal is the CLI's, word for word, with the job's id after the holder.
        with pytest.raises(LockedError) as refused:
            jobs.start_job(env, "stop", "demo", {})
        assert str(refused.value) == cli_message.replace(
            " holds its lock", f" (console job {first.id}) holds its lock"
        )
    finally:
        os.kill(first.pid, signal.SIGTERM)
    done = wait_done(env, first.id)
    assert (done.state, done.exit_code, done.error) == (
        jobs.JobState.FAILED,
        1,
        "interrupted by signal SIGTERM",
    )
    assert len(jobs.list_jobs(env, "demo")) == 1


def test_dead_worker_shows_failed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_ENV, "sleep")
    job = jobs.start_job(env, "scale", "demo", {"size": 3})
    deadline = time.monotonic() + 20
    while not jobs.read_progress(env, job.id, 0)[0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    done = wait_done(env, job.id)
    assert (done.state, done.exit_code, done.error) == (jobs.JobState.FAILED, 1, DEAD_ERROR)
    assert jobs.get_job(env, job.id) == done  # the verdict is kept
    # The lock died with the worker: the cluster can be operated again.
    with env.store.lock("demo", "scale"):
        pass


def test_reused_pid_does_not_keep_a_job_alive(env: Env) -> None:
    files = JobFiles.of(env.paths, "20261202T000000-abcdef").create()
    record = jobs.JobRecord(
        id=files.dir.name,
        kind=jobs.JobKind.SCALE,
        cluster="demo",
        created=now(),
        pid=os.getpid(),
        pid_start="1",  # this pid, but not the process that started the job
    )
    write_record(files, record)
    assert jobs.get_job(env, record.id).error == DEAD_ERROR


def test_list_jobs_newest_first_and_by_cluster(env: Env) -> None:
    for n, cluster in enumerate(("demo", "other", "demo")):
        files = JobFiles.of(env.paths, f"20261202T00000{n}-abcdef").create()
        write_record(
            files,
            jobs.JobRecord(id=files.dir.name, kind=jobs.JobKind.STOP, cluster=cluster, created=now()),
        )
    assert [j.id[-8:] for j in jobs.list_jobs(env)] == ["2-abcdef", "1-abcdef", "0-abcdef"]
    assert [j.id[-8:] for j in jobs.list_jobs(env, "demo", limit=1)] == ["2-abcdef"]
    with pytest.raises(NotFoundError):
        jobs.get_job(env, "../../etc")


def test_no_secret_in_any_job_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_ENV, "secret")
    monkeypatch.setattr(kinds, "check_create", lambda _env, spec: spec)  # no host checks here
    job = jobs.start_job(
        env,
        "create",
        "new",
        {"registry_url": "http://10.0.0.1:5000", "registry_username": "u"},
        {"registry_password": SECRET},
    )
    cmdline = Path(f"/proc/{job.pid}/cmdline").read_bytes()
    assert SECRET.encode() not in cmdline
    done = wait_done(env, job.id)
    assert done.state == jobs.JobState.FAILED and "********" in done.error
    lines, _ = jobs.read_progress(env, job.id, 0)
    assert any("joining with ********" in str(ln) for ln in lines)  # it was said, and masked
    files = JobFiles.of(env.paths, job.id)
    for path in files.dir.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
    assert "registry_password" not in done.params


def test_read_progress_returns_only_whole_lines(env: Env) -> None:
    files = JobFiles.of(env.paths, "20261202T000000-abcdef").create()
    files.progress.write_bytes(b'{"type": "phase", "phase": "a"}\n{"type": "pha')
    lines, end = jobs.read_progress(env, files.dir.name, 0)
    assert lines == [{"type": "phase", "phase": "a"}] and end == 32
    with files.progress.open("ab") as fh:
        fh.write(b'se", "phase": "b"}\n')
    assert jobs.read_progress(env, files.dir.name, end) == ([{"type": "phase", "phase": "b"}], end + 32)


def test_autoscale_job_changes_the_record_like_the_cli(env: Env) -> None:
    bad = [
        ({"enable": "yes"}, "enable"),
        ({"enable": True, "min": 3, "max": 2}, "--max"),
        ({"enable": False, "min": 1}, "--min"),
        ({"enable": True, "min": 1, "max": 3, "service_address": "nope"}, "--service-address"),
    ]
    for params, field in bad:
        with pytest.raises(InputError) as exc:
            jobs.start_job(env, "autoscale", "demo", params)
        assert exc.value.field == field, (params, str(exc.value))
    job = jobs.start_job(
        env, "autoscale", "demo", {"enable": True, "min": 1, "max": 3, "service_address": "10.1.0.1:8086"}
    )
    done = wait_done(env, job.id)
    assert (done.state, done.exit_code) == (jobs.JobState.SUCCEEDED, 0), done.error
    assert settings.load_settings(env.paths, "demo").enabled
    messages = [ln["message"] for ln in jobs.read_progress(env, job.id, 0)[0] if ln["type"] == "message"]
    assert messages == ["cluster-autoscaler deployed", "autoscaling enabled: workers 1..3"]
    # While autoscaled, a manual scale is refused before a worker starts, as by the CLI.
    with pytest.raises(InputError, match="autoscaled"):
        jobs.start_job(env, "scale", "demo", {"size": 3})


def test_job_outlives_the_process_that_started_it(env: Env) -> None:
    """A console that exits (or restarts) right after starting a job loses nothing."""
    script = (
        "import sys\n"
        "from koral_ansible import jobs\n"
        "from koral_ansible.operations.context import Env\n"
        "job = jobs.start_job(Env.open(sys.argv[1], quiet=True), 'scale', 'demo', {'size': 3})\n"
        "print(job.id)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(env.paths.home)], capture_output=True, text=True, check=True
    )
    job_id = proc.stdout.strip()
    done = wait_done(env, job_id)  # the starter is gone; the record on disk says the rest
    assert (done.state, done.exit_code) == (jobs.JobState.SUCCEEDED, 0), done.error
    assert jobs.job_view(env, job_id).hosts.keys() == {"n1", "n2", "n3"}
