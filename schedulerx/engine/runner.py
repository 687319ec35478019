"""Runs jobs on an executor pool and reports their outcomes to the loop through a queue.

The runner never writes to the log: outcomes go to ``outcomes`` and the loop thread records
them. A job that outlives its command's timeout is reported ``failed: timeout``; Python cannot
kill a thread, so it keeps its pool slot until it returns and its late outcome is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schedulerx.domain.job import Job
from schedulerx.engine.context import reset_current_job, set_current_job
from schedulerx.ports.clock import Clock
from schedulerx.ports.command import Registration

log = logging.getLogger("schedulerx.engine")

Kind = Literal["running", "succeeded", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """Something that happened to a job on this pod."""

    kind: Kind
    job: Job
    at: datetime
    error: str | None = None


class Runner:
    """The executor pool and the set of jobs running on this pod."""

    def __init__(self, workers: int, clock: Clock):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="schedulerx-job")
        self._clock = clock
        self.outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[str, Job] = {}
        self._timed_out: dict[str, Job] = {}
        """Reported failed (timeout) but their thread has not returned yet."""

    def running_of(self, command_id: str) -> list[str]:
        """Ids of this command's jobs executing on this pod now."""
        with self._lock:
            # A timed-out run whose thread still executes still counts: overlap=skip must not
            # start another run beside it.
            jobs = [*self._running.values(), *self._timed_out.values()]
            return [j.id for j in jobs if j.command_id == command_id]

    def running_jobs(self) -> list[Job]:
        """The jobs executing on this pod now (timed-out ones excluded: already reported)."""
        with self._lock:
            return list(self._running.values())

    def running_count(self) -> int:
        """How many jobs execute on this pod now."""
        with self._lock:
            return len(self._running)

    def submit(self, job: Job, registration: Registration) -> None:
        """Start ``job`` on the pool (it is already claimed by this pod)."""
        with self._lock:
            self._running[job.id] = job
        self._pool.submit(self._run, job, registration)

    def expire(self, job_id: str, reason: str) -> bool:
        """Report a still-running job as failed (timeout); True if it was running."""
        with self._lock:
            job = self._running.pop(job_id, None)
            if job is None:
                return False
            self._timed_out[job_id] = job
        self.outcomes.put(Outcome("failed", job, self._clock.now(), reason))
        return True

    def _run(self, job: Job, registration: Registration) -> None:
        self.outcomes.put(Outcome("running", job, self._clock.now()))
        token = set_current_job(job)
        error: str | None = None
        try:
            registration.command.execute(job.params)
        except BaseException as exc:  # a command's failure must never kill the pod
            error = _describe(exc)
            log.debug("job %s raised:\n%s", job.id, traceback.format_exc())
        finally:
            reset_current_job(token)
        with self._lock:
            if job.id in self._timed_out:
                del self._timed_out[job.id]
                log.warning("job %s finished after its timeout; outcome dropped", job.id)
                return
            self._running.pop(job.id, None)
        kind: Kind = "succeeded" if error is None else "failed"
        self.outcomes.put(Outcome(kind, job, self._clock.now(), error))

    def shutdown(self) -> None:
        """Stop taking jobs; does not wait for running ones (the loop waits, with a grace)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]
