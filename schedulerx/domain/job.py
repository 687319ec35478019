"""Jobs: one execution of a command at one scheduled time, and its state machine.

A job's id is deterministic (``<command_id>@<scheduled_at UTC to the second>``), so planning
the same job twice is harmless: both plans name the same record.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated

import msgspec

UtcDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
"""A datetime that must carry a UTC offset (a naive one is rejected when decoding)."""


class JobStatus(enum.StrEnum):
    """Where a job is in its life. Terminal: succeeded, failed, canceled, missed."""

    SCHEDULED = "scheduled"
    """Planned for a future (or due) time; nobody has committed to run it yet."""
    CLAIMED = "claimed"
    """An owner committed to start it; no other pod may start it."""
    RUNNING = "running"
    """``execute()`` was entered by ``owner``."""
    SUCCEEDED = "succeeded"
    """``execute()`` returned."""
    FAILED = "failed"
    """``execute()`` raised, timed out, or its owner was lost while it ran (see ``error``)."""
    CANCELED = "canceled"
    """Not run: its schedule changed, was paused or was removed before it was due."""
    MISSED = "missed"
    """Not run, for the reason in ``error`` (late past ``misfire_grace``, coalesced, overlap)."""

    @property
    def terminal(self) -> bool:
        """True for a status that never changes again."""
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.MISSED})

_ALLOWED: dict[JobStatus | None, frozenset[JobStatus]] = {
    None: frozenset({JobStatus.SCHEDULED}),
    # A scheduled job may be claimed, or end without running.
    JobStatus.SCHEDULED: frozenset({JobStatus.CLAIMED, JobStatus.CANCELED, JobStatus.MISSED}),
    # A claimed job starts, is released back (graceful stop before it was due), or ends unrun
    # (owner lost before start is reported as failed, overlap skip as missed).
    JobStatus.CLAIMED: frozenset(
        {JobStatus.RUNNING, JobStatus.SCHEDULED, JobStatus.FAILED, JobStatus.MISSED}
    ),
    # A running job ends; with retries it goes back to scheduled with attempt + 1.
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SCHEDULED}),
}


class IllegalTransition(ValueError):
    """A job state change that the state machine forbids (e.g. succeeded -> running)."""


def allowed(current: JobStatus | None, new: JobStatus) -> bool:
    """True when a job in ``current`` (None: unknown job) may move to ``new`` in one step."""
    return new in _ALLOWED.get(current, frozenset())


def _closure(edges: dict[JobStatus, frozenset[JobStatus]]) -> dict[JobStatus, frozenset[JobStatus]]:
    reach: dict[JobStatus, frozenset[JobStatus]] = {}
    for start in edges:
        seen: set[JobStatus] = set()
        todo = list(edges[start])
        while todo:
            status = todo.pop()
            if status not in seen:
                seen.add(status)
                todo.extend(edges.get(status, ()))
        reach[start] = frozenset(seen)
    return reach


_SAME_ATTEMPT = _closure(
    {
        status: targets - {JobStatus.SCHEDULED} if status is JobStatus.RUNNING else targets
        for status, targets in _ALLOWED.items()
        if status is not None
    }
)
"""What each status reaches by allowed steps without a retry (running -> scheduled is the one
step that raises ``attempt``)."""


def follows(current: Job, new: Job) -> bool:
    """True when ``new`` may come after ``current`` on the log.

    Either one allowed step, or a state that allowed steps reach: a reader behind a compaction
    sees that, since only the latest record of a job is kept. So: never out of a terminal
    status, never to a lower attempt; within one attempt only to a status reachable without
    a retry (running never goes back to claimed or scheduled, nor ends canceled); a higher
    attempt is reachable from any open status (a retry is running -> scheduled with attempt
    + 1). An identical state does not follow itself.
    """
    if current == new or current.status.terminal or new.attempt < current.attempt:
        return False
    if new.attempt > current.attempt:
        return True
    return new.status in _SAME_ATTEMPT[current.status]


class Job(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The full state of one job. Every job record on the log carries one of these."""

    id: str
    command_id: str
    scheduled_at: UtcDatetime
    """When it is (was) due: aware UTC, whole seconds for scheduled jobs."""
    status: JobStatus
    params: tuple[str, ...] = ()
    owner: str | None = None
    """The pod that claimed it (None while only scheduled)."""
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    error: str | None = None
    """Why it failed or was missed/canceled; None on success."""
    attempt: int = 1
    trigger: str = "schedule"
    """``schedule`` for cron-planned jobs, ``manual`` for ``schedulerx trigger``."""
    not_before: UtcDatetime | None = None
    """For a retry: the earliest time the next attempt may start."""

    def to(self, status: JobStatus, **changes: object) -> Job:
        """A copy in ``status`` with ``changes`` applied; raises IllegalTransition if forbidden."""
        if not allowed(self.status, status):
            raise IllegalTransition(f"job {self.id}: {self.status} -> {status} is not allowed")
        return msgspec.structs.replace(self, status=status, **changes)

    @property
    def due(self) -> datetime:
        """The earliest time this job may start (its scheduled time, or a retry's backoff)."""
        return self.not_before or self.scheduled_at


def job_id(command_id: str, scheduled_at: datetime, suffix: str = "") -> str:
    """The deterministic id of ``command_id``'s job at ``scheduled_at`` (aware datetime).

    ``backup`` at 10:15:00 UTC is ``backup@2026-12-04T10:15:00Z``; a manual trigger passes a
    ``suffix`` so it never collides with a planned job at the same second.
    """
    if scheduled_at.tzinfo is None:
        raise ValueError("scheduled_at must be timezone-aware")
    stamp = scheduled_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{command_id}@{stamp}{suffix}"


def command_of(job_id_: str) -> str:
    """The command id inside a job id (command ids may themselves contain ``@``)."""
    return job_id_.rsplit("@", 1)[0]
