"""The projection rules, pure: (current view, record) -> outcome. No I/O, no logging, no clock.

Both views (``MemoryView`` and the RocksDB ``ProjectionStore``) run exactly these rules, so
whatever the property tests prove about one holds for the other.

Rules:

- ``job`` (JobChanged): a job the view does not know is accepted in *any* status, because on a
  compacted log the first record seen for a job is its latest. A known job moves only forward
  along the state machine (``schedulerx.domain.job.follows``: one step, or a later state the
  steps reach, which a reader behind a compaction sees); re-applying the identical state is a
  no-op; anything else is an illegal transition: skipped, the view keeps the current job.
- ``schedule.set`` replaces the command's schedule; ``schedule.removed`` marks it removed
  (``cron`` None, ``removed`` True); ``schedule.rejected`` records the latest rejection reason
  and leaves the schedule alone; ``job.triggered`` changes nothing.
- Tombstones: ``job/<id>`` deletes the job, ``cmd/<id>`` drops the command's schedule (a known
  last rejection is kept); tombstones under any other key are ignored.
- A value that does not decode, a job record whose key is not ``job/<its id>``, or a job with a
  naive ``scheduled_at`` is poison: skipped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

import msgspec

from projections.model import ScheduleState
from schedulerx.domain.events import (
    AnyEvent,
    JobChanged,
    JobTriggered,
    PoisonRecord,
    ScheduleRejected,
    ScheduleRemoved,
    ScheduleSet,
    decode,
    job_key,
)
from schedulerx.domain.job import Job, follows
from schedulerx.ports.event_log import Record

_JOB_PREFIX = b"job/"
_CMD_PREFIX = b"cmd/"


class ViewState(Protocol):
    """What the rules need to read from a view: the current job and schedule rows."""

    def job(self, job_id: str) -> Job | None:
        """The job's current state, None if the view does not have it."""
        ...

    def schedule(self, command_id: str) -> ScheduleState | None:
        """The command's current schedule state, None if the view does not have it."""
        ...


@dataclass(frozen=True, slots=True)
class PutJob:
    """Store ``job`` as its id's current state (replacing any previous one)."""

    job: Job


@dataclass(frozen=True, slots=True)
class DeleteJob:
    """Forget job ``job_id`` (and its index rows)."""

    job_id: str


@dataclass(frozen=True, slots=True)
class PutSchedule:
    """Store ``state`` as its command's schedule state."""

    state: ScheduleState


@dataclass(frozen=True, slots=True)
class DeleteSchedule:
    """Forget command ``command_id``'s schedule state."""

    command_id: str


Change = PutJob | DeleteJob | PutSchedule | DeleteSchedule


class Verdict(enum.Enum):
    """What a record did to the view."""

    CHANGED = "changed"
    """Valid; ``Outcome.change`` holds the one row change."""
    UNCHANGED = "unchanged"
    """Valid, but the view already says so (repeat, trigger request, tombstone of nothing)."""
    ILLEGAL = "illegal"
    """A job change the state machine forbids; skipped."""
    POISON = "poison"
    """Not a usable event; skipped."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one record: a verdict, at most one row change, and why it was skipped."""

    verdict: Verdict
    change: Change | None = None
    reason: str = ""


_UNCHANGED = Outcome(Verdict.UNCHANGED)


def apply_record(view: ViewState, record: Record) -> Outcome:
    """The outcome of ``record`` on ``view`` (which is not modified)."""
    if record.value is None:
        return _apply_tombstone(view, record.key)
    try:
        event = decode(record.value)
    except PoisonRecord as exc:
        return Outcome(Verdict.POISON, reason=str(exc))
    if isinstance(event, JobChanged) and record.key != job_key(event.job.id):
        return Outcome(Verdict.POISON, reason=f"key {record.key!r} does not match job id")
    return apply_event(view, event)


def apply_event(view: ViewState, event: AnyEvent) -> Outcome:
    """The outcome of ``event`` on ``view`` (which is not modified)."""
    if isinstance(event, JobChanged):
        return _apply_job(view, event.job)
    if isinstance(event, JobTriggered):
        return _UNCHANGED
    current = view.schedule(event.command_id)
    if isinstance(event, ScheduleSet):
        new = ScheduleState(
            command_id=event.command_id,
            cron=event.cron,
            params=event.params,
            timezone=event.timezone,
            paused=event.paused,
            last_rejection=current.last_rejection if current else None,
            source=event.source,
            since=event.ts,
        )
    elif isinstance(event, ScheduleRemoved):
        new = ScheduleState(
            command_id=event.command_id,
            removed=True,
            last_rejection=current.last_rejection if current else None,
        )
    else:
        assert isinstance(event, ScheduleRejected)
        base = current or ScheduleState(command_id=event.command_id)
        new = msgspec.structs.replace(base, last_rejection=event.reason)
    if new == current:
        return _UNCHANGED
    return Outcome(Verdict.CHANGED, PutSchedule(new))


def _apply_job(view: ViewState, job: Job) -> Outcome:
    if job.scheduled_at.tzinfo is None:
        return Outcome(Verdict.POISON, reason=f"job {job.id}: scheduled_at is not timezone-aware")
    current = view.job(job.id)
    if current is None or follows(current, job):
        return Outcome(Verdict.CHANGED, PutJob(job))
    if current == job:
        return _UNCHANGED
    return Outcome(
        Verdict.ILLEGAL,
        reason=f"job {job.id}: {current.status} -> {job.status} is not allowed "
        f"(attempt {current.attempt} -> {job.attempt})",
    )


def _apply_tombstone(view: ViewState, key: bytes) -> Outcome:
    if key.startswith(_JOB_PREFIX):
        job_id = _text(key[len(_JOB_PREFIX) :])
        if job_id is None or view.job(job_id) is None:
            return _UNCHANGED
        return Outcome(Verdict.CHANGED, DeleteJob(job_id))
    if key.startswith(_CMD_PREFIX):
        command_id = _text(key[len(_CMD_PREFIX) :])
        current = None if command_id is None else view.schedule(command_id)
        if command_id is None or current is None:
            return _UNCHANGED
        if current.last_rejection is None:
            return Outcome(Verdict.CHANGED, DeleteSchedule(command_id))
        kept = ScheduleState(command_id=command_id, last_rejection=current.last_rejection)
        return _UNCHANGED if kept == current else Outcome(Verdict.CHANGED, PutSchedule(kept))
    return _UNCHANGED


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
