"""A small, careful CloudStack client on top of ``cs``: signed calls, lists, async jobs polled together.

- Transient failures (connection refused/reset, 502/503/504 from a proxy, read timeouts of
  read-only calls) are retried with exponential backoff. A mutating call that timed out may
  have been applied, so it is not blindly repeated: the caller is told to re-run, and the
  provider's reconcile step finds what exists.
- Async jobs are submitted first and then polled as a group, with backoff, until all finish
  or ``job_timeout`` passes (a clear message naming what is still pending).
- Messages carry the command and CloudStack's ``errortext``; never the request URL, the key,
  the signature or the secret.
- Every call is a POST: a cloud with ``enforce.post.requests.and.timestamps`` refuses
  state-changing commands sent by GET (HTTP 405), and POST keeps parameters such as user data
  out of URLs and proxy logs. ``cs`` signs with ``signatureVersion=3`` and an ``expires`` 10
  minutes ahead (that setting accepts at most 15).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from cs import CloudStack, CloudStackApiException, CloudStackException

from koral_ansible.errors import OperationError
from koral_ansible.providers.cloudstack.config import CloudConfig

_READ_PREFIXES = ("list", "query", "get")
_TRANSIENT_HTTP = (502, 503, 504)


class ApiCallError(OperationError):
    """CloudStack answered an error (errorcode/errortext kept for callers)."""

    def __init__(self, command: str, errorcode: int, errortext: str, cserrorcode: int | None = None) -> None:
        self.command = command
        self.errorcode = errorcode
        self.errortext = errortext
        self.cserrorcode = cserrorcode
        super().__init__(f"{command} failed: {errortext} (CloudStack errorcode {errorcode})")

    @property
    def not_found(self) -> bool:
        """The id named in the call does not exist (any more).

        CloudStack resolves UUIDs including removed rows, so a deleted object is not always the
        generic "entity does not exist" of ParamProcessWorker: DeleteNetworkCmd answers
        "Network ID=<n> doesn't exist", destroyVirtualMachine's job "unable to find a virtual
        machine with id <n>", deleteSSHKeyPair "A key pair with name ... does not exist ..." (431
        all; apache/cloudstack api/.../DeleteNetworkCmd.java, UserVmManagerImpl.destroyVm,
        ParamProcessWorker.translateUuidToInternalId).
        """
        text = self.errortext.lower()
        return self.errorcode == 431 and any(
            m in text for m in ("entity does not exist", "unable to find", "does not exist", "doesn't exist")
        )


@dataclass
class Job:
    """One submitted async job; ``label`` says what it is for (in messages)."""

    command: str
    jobid: str
    label: str
    id: str | None = None  # the id of the object a create command made
    status: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: ApiCallError | None = None


class JobsFailed(OperationError):
    def __init__(self, failed: list[Job]) -> None:
        self.jobs = failed
        parts = [f"{j.label}: {j.error.errortext if j.error else 'failed'}" for j in failed]
        super().__init__(f"{len(failed)} cloud job(s) failed: " + "; ".join(parts))


class CloudClient:
    def __init__(
        self,
        config: CloudConfig,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        report: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._clock = clock
        self._report = report
        self._cs = CloudStack(
            endpoint=config.endpoint,
            key=config.key,
            secret=config.secret,
            timeout=int(max(1, config.timeout)),
            method="post",
            verify=config.verify if config.verify is not True else None,
            dangerous_no_tls_verify=config.verify is False,
            retry=0,
        )
        self._inflight: builtins.list[Job] = []

    # ---- plain calls --------------------------------------------------------------------------
    def call(self, command: str, **params: Any) -> dict[str, Any]:
        """One API call; the unwrapped response object."""
        result = self._with_retries(command, lambda: getattr(self._cs, command)(**params))
        return result if isinstance(result, dict) else {}

    def list(self, command: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list command (all pages)."""
        result = self._with_retries(command, lambda: getattr(self._cs, command)(fetch_list=True, **params))
        return list(result) if isinstance(result, list) else []

    def _with_retries(self, command: str, fn: Callable[[], Any]) -> Any:
        read_only = command.startswith(_READ_PREFIXES)
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except CloudStackApiException as exc:
                raise _api_error(command, exc) from None
            except CloudStackException as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                transient = status in _TRANSIENT_HTTP
                problem = f"HTTP {status}" if status else "unexpected answer"
            except requests.exceptions.ConnectTimeout:
                transient, problem = True, "connection timed out"
            except requests.exceptions.ReadTimeout:
                if not read_only:
                    raise OperationError(
                        f"{command}: no answer from the cloud API at {self.config.where} within "
                        f"{self.config.timeout:g}s; the request may have been applied - re-run the command "
                        "to resume (existing resources are reused)"
                    ) from None
                transient, problem = True, "read timed out"
            except requests.exceptions.ConnectionError:
                transient, problem = True, "connection failed"
            except requests.exceptions.RequestException as exc:
                transient, problem = False, type(exc).__name__
            if not transient or attempt > self.config.retries:
                raise OperationError(
                    f"{command}: cloud API at {self.config.where} failed: {problem}"
                    + (f" (after {attempt} attempts)" if attempt > 1 else "")
                ) from None
            delay = min(self.config.retry_delay * 2 ** (attempt - 1), 30.0)
            self._report(f"{command}: {problem}, retrying in {delay:g}s")
            self._sleep(delay)

    # ---- async jobs ---------------------------------------------------------------------------
    def submit(self, command: str, label: str, **params: Any) -> Job:
        """Start an async job (first waiting for room when ``max_inflight_jobs`` is set)."""
        limit = self.config.max_inflight_jobs
        self._inflight = [j for j in self._inflight if j.status == 0]
        if limit > 0 and len(self._inflight) >= limit:
            self.wait(
                self._inflight[: len(self._inflight) - limit + 1],
                "earlier cloud jobs",
                raise_on_failure=False,
            )
            self._inflight = [j for j in self._inflight if j.status == 0]
        out = self.call(command, **params)
        jobid = out.get("jobid")
        if not jobid:
            raise OperationError(f"{command}: the cloud answered without a job id")
        job = Job(command, str(jobid), label, id=out.get("id"))
        self._inflight.append(job)
        return job

    def wait(self, jobs: Iterable[Job], what: str, raise_on_failure: bool = True) -> builtins.list[Job]:
        """Poll every job until all finished; backoff between rounds; one timeout for the group."""
        jobs = list(jobs)
        pending = [j for j in jobs if j.status == 0]
        deadline = self._clock() + self.config.job_timeout
        delay = self.config.poll_interval
        while pending:
            for job in list(pending):
                answer = self.call("queryAsyncJobResult", jobid=job.jobid)
                status = int(answer.get("jobstatus", 0))
                if status == 0:
                    continue
                job.status = status
                pending.remove(job)
                result = answer.get("jobresult") or {}
                if status == 1 and not answer.get("jobresultcode"):
                    job.result = result
                else:
                    job.error = ApiCallError(
                        job.command,
                        int(result.get("errorcode") or answer.get("jobresultcode") or 530),
                        str(result.get("errortext") or "job failed"),
                        result.get("cserrorcode"),
                    )
            if not pending:
                break
            if self._clock() + delay > deadline:
                names = ", ".join(j.label for j in pending[:5]) + (" ..." if len(pending) > 5 else "")
                raise OperationError(
                    f"timed out after {self.config.job_timeout:g}s waiting for {what} ({len(pending)} cloud "
                    f"job(s) still pending: {names}); re-run the command to resume"
                )
            self._sleep(delay)
            delay = min(delay * self.config.poll_backoff, self.config.poll_max)
        failed = [j for j in jobs if j.error is not None]
        if failed and raise_on_failure:
            raise JobsFailed(failed)
        return jobs

    def run(self, command: str, label: str, **params: Any) -> Job:
        """Submit one async job and wait for it."""
        job = self.submit(command, label, **params)
        self.wait([job], label)
        return job


def _api_error(command: str, exc: CloudStackApiException) -> ApiCallError:
    err = exc.error if isinstance(exc.error, dict) else {}
    code = int(err.get("errorcode") or getattr(getattr(exc, "response", None), "status_code", 0) or 530)
    text = str(err.get("errortext") or "error without text")
    return ApiCallError(command, code, text, err.get("cserrorcode"))
