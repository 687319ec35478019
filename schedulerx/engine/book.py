"""The pod's in-memory view of the commands it owns: schedules and open (non-terminal) jobs.

Only the loop thread touches a Book. It is seeded from the projection when a partition is
assigned and kept current by applying the pod's own writes and the records it polls; applying
the same state twice is a no-op, and illegal transitions are ignored (the projection counts
them).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from schedulerx.domain.events import AnyEvent, JobChanged, ScheduleRemoved, ScheduleSet
from schedulerx.domain.job import Job, JobStatus, allowed

_RECENT = 16
"""Terminal job ids remembered per command, so the planner never re-plans a finished id."""


@dataclass(slots=True)
class CommandEntry:
    """One command's schedule and open jobs."""

    command_id: str
    partition: int
    schedule: ScheduleSet | None = None
    jobs: dict[str, Job] = field(default_factory=dict)
    recent_done: OrderedDict[str, JobStatus] = field(default_factory=OrderedDict)
    wake_at: datetime | None = None
    horizon: datetime | None = None
    """The newest scheduled time of a planned job seen for this command."""

    def planned_until(self) -> datetime | None:
        """The planner's horizon: newest planned job, or when the schedule took effect."""
        since = self.schedule.ts if self.schedule is not None and self.schedule.event_id else None
        if self.horizon is None or since is None:
            return self.horizon
        return max(self.horizon, since)

    def status_of(self, jid: str) -> JobStatus | None:
        """The known status of job ``jid`` (None: unknown)."""
        job = self.jobs.get(jid)
        if job is not None:
            return job.status
        return self.recent_done.get(jid)


class Book:
    """Commands of the owned partitions."""

    def __init__(self) -> None:
        self.commands: dict[str, CommandEntry] = {}

    def entry(self, command_id: str, partition: int) -> CommandEntry:
        """The entry of ``command_id``, created if new."""
        found = self.commands.get(command_id)
        if found is None:
            found = self.commands[command_id] = CommandEntry(command_id, partition)
        return found

    def drop_partitions(self, partitions: frozenset[int]) -> list[CommandEntry]:
        """Forget every command of ``partitions``; returns the dropped entries."""
        gone = [e for e in self.commands.values() if e.partition in partitions]
        for e in gone:
            del self.commands[e.command_id]
        return gone

    def apply(self, event: AnyEvent, partition: int) -> bool:
        """Apply one event; True when it changed something."""
        if isinstance(event, JobChanged):
            return self.apply_job(event.job, partition)
        if isinstance(event, ScheduleSet):
            e = self.entry(event.command_id, partition)
            e.schedule = event
            return True
        if isinstance(event, ScheduleRemoved):
            e = self.entry(event.command_id, partition)
            e.schedule = None
            return True
        return False

    def apply_job(self, job: Job, partition: int) -> bool:
        """Apply a job's new state if the transition is legal (or the job is new)."""
        e = self.entry(job.command_id, partition)
        current = e.jobs.get(job.id)
        if current == job:
            return False
        status = e.status_of(job.id)
        if status is not None and not allowed(status, job.status):
            return False
        if job.trigger == "schedule" and (e.horizon is None or job.scheduled_at > e.horizon):
            e.horizon = job.scheduled_at
        if job.status.terminal:
            e.jobs.pop(job.id, None)
            e.recent_done[job.id] = job.status
            while len(e.recent_done) > _RECENT:
                e.recent_done.popitem(last=False)
        else:
            e.jobs[job.id] = job
        return True

    def forget_job(self, job_id: str, command_id: str) -> None:
        """A tombstone: the job is gone (only finished jobs get tombstones)."""
        e = self.commands.get(command_id)
        if e is not None:
            e.jobs.pop(job_id, None)
