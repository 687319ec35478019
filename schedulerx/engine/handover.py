"""Runs that outlive their pod's ownership of the partition, on both sides of the move.

A rebalance can move a partition while one of its jobs runs (a pod joined the group). The old
owner lets the run finish; it can no longer write the partition, so it reports the run through
the requests inbox (``RunReport``): ``running`` about once a second, then the outcome, sent
again until its own projection shows the new owner recorded it. The new owner leaves such a
job as it is while reports keep coming, records what they say, and records ``failed: owner
lost`` only when they stop for a lease (the old owner died or restarted). docs/adr/0008.

Pure bookkeeping: no I/O, no clock (callers pass monotonic seconds); the pod does the rest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from schedulerx.domain.job import Job, JobStatus
from schedulerx.domain.requests import RunReport
from schedulerx.engine.runner import Outcome


@dataclass(slots=True)
class _Orphan:
    job: Job
    started: Outcome | None = None
    outcome: Outcome | None = None
    next_send: float = 0.0
    give_up_at: float | None = None


@dataclass(slots=True)
class Orphans:
    """Runs of this pod whose partition went elsewhere, and the reports they still owe."""

    pod_id: str
    interval_s: float = 1.0
    """Between two reports on one run."""
    give_up_s: float = 60.0
    """How long an outcome is sent again before the pod gives up (logged by the caller)."""
    _runs: dict[str, _Orphan] = field(default_factory=dict)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._runs

    def __len__(self) -> int:
        return len(self._runs)

    def adopt(self, job: Job) -> None:
        """``job`` runs here, but its partition is no longer owned: report it from now on."""
        self._runs.setdefault(job.id, _Orphan(job))

    def ids(self) -> list[str]:
        """Ids of the adopted runs."""
        return list(self._runs)

    def reclaim(self, job_id: str) -> list[Outcome]:
        """The partition came back: stop reporting; returns what is still to record here."""
        orphan = self._runs.pop(job_id, None)
        if orphan is None:
            return []
        return [o for o in (orphan.started, orphan.outcome) if o is not None]

    def outcome(self, o: Outcome) -> None:
        """What the runner said about an adopted run (started, finished)."""
        orphan = self._runs.get(o.job.id)
        if orphan is None:
            return
        if o.kind == "running":
            orphan.started = o
        else:
            orphan.outcome = o
            orphan.next_send = 0.0  # an outcome goes out at once

    def due(self, now: float, recorded: dict[str, Job | None]) -> tuple[list[RunReport], list[Job]]:
        """Reports to send now, and the runs given up on.

        ``recorded``: each adopted job id -> the job as this pod's projection shows it. A run
        whose job is recorded finished, in a later attempt, or by another owner needs no more
        reports and is forgotten.
        """
        reports: list[RunReport] = []
        given_up: list[Job] = []
        for job_id, orphan in list(self._runs.items()):
            if _settled(orphan.job, recorded.get(job_id)):
                del self._runs[job_id]
                continue
            if orphan.outcome is not None:
                if orphan.give_up_at is None:
                    orphan.give_up_at = now + self.give_up_s
                elif now >= orphan.give_up_at:
                    del self._runs[job_id]
                    given_up.append(orphan.job)
                    continue
            if now < orphan.next_send:
                continue
            orphan.next_send = now + self.interval_s
            reports.append(self._report(orphan))
        return reports, given_up

    def _report(self, orphan: _Orphan) -> RunReport:
        job, o = orphan.job, orphan.outcome
        started = orphan.started.at if orphan.started else job.started_at or job.due
        if o is None:
            return RunReport(
                job_id=job.id,
                attempt=job.attempt,
                pod=self.pod_id,
                status="running",
                started_at=started,
            )
        return RunReport(
            job_id=job.id,
            attempt=job.attempt,
            pod=self.pod_id,
            status="succeeded" if o.kind == "succeeded" else "failed",
            started_at=started,
            finished_at=o.at,
            error=o.error,
        )


def _settled(ours: Job, recorded: Job | None) -> bool:
    if recorded is None:
        return False
    return (
        recorded.status.terminal
        or recorded.attempt != ours.attempt
        or (recorded.owner is not None and recorded.owner != ours.owner)
        or recorded.status is JobStatus.SCHEDULED
    )


class Foreign:
    """Jobs another pod left running (or claimed and due) on partitions this pod took over:
    left alone while their runner reports on them, given up when it falls silent.

    Thread-safe: the timer thread asks ``alive`` while the loop thread changes the rest.
    """

    def __init__(self, lease_s: float = 5.0):
        self.lease_s = lease_s
        """How long without a report before the run counts as dead (owner lost)."""
        self._until: dict[str, float] = {}
        self._heard: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, job_id: object) -> bool:
        with self._lock:
            return job_id in self._until

    def ids(self) -> list[str]:
        """Ids of the jobs waited on."""
        with self._lock:
            return list(self._until)

    def alive(self) -> list[str]:
        """Ids of the jobs waited on that a report has shown running (not merely left)."""
        with self._lock:
            return [jid for jid in self._until if jid in self._heard]

    def watch(self, job_id: str, now: float) -> None:
        """Start waiting for reports on ``job_id`` (a lease from ``now``)."""
        with self._lock:
            self._until.setdefault(job_id, now + self.lease_s)

    def heard(self, job_id: str, now: float) -> None:
        """A report came: the run is alive; the lease starts again."""
        with self._lock:
            if job_id in self._until:
                self._until[job_id] = now + self.lease_s
                self._heard.add(job_id)

    def forget(self, job_id: str) -> None:
        """Recorded (or gone with its partition): stop waiting."""
        with self._lock:
            self._until.pop(job_id, None)
            self._heard.discard(job_id)

    def expired(self, now: float) -> list[str]:
        """Job ids whose lease ran out; they are forgotten."""
        with self._lock:
            gone = [jid for jid, until in self._until.items() if now >= until]
            for jid in gone:
                del self._until[jid]
                self._heard.discard(jid)
            return gone
