"""Planning decisions for one command: pure functions of (state, now) returning new job states.

The planner keeps the next 2 future jobs of every active command, cancels scheduled jobs that
no longer match the schedule, and applies the misfire policy to jobs found due late. It never
reads a clock and performs no I/O; the engine writes what it returns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schedulerx.domain.cron import Cron, CronError
from schedulerx.domain.job import Job, JobStatus, job_id
from schedulerx.domain.schedule import Policy

LOOKAHEAD = 2
"""How many future jobs every active command keeps in ``scheduled`` (or ``claimed``) state."""
MAX_BACKFILL = 10_000
"""At most this many past cron times are backfilled in one plan (the newest ones)."""
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class CommandView:
    """What the planner knows of one command."""

    command_id: str
    cron: str | None
    """None: no schedule (never set or removed)."""
    params: tuple[str, ...]
    timezone: str
    paused: bool
    registered: bool
    """False when this pod has no code for the command (e.g. during a rolling deploy)."""
    policy: Policy
    open_jobs: tuple[Job, ...]
    """The command's jobs that are not terminal."""
    horizon: datetime | None = None
    """Planned up to here: the later of the newest planned job's time and when the current
    schedule took effect. Cron times in (horizon, now] that have no job yet (the pods were
    down) are backfilled, so each becomes a job that runs or is ``missed`` with a reason."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write: changed or new jobs, and when the command needs planning again."""

    changes: tuple[Job, ...]
    to_claim: tuple[Job, ...]
    """Scheduled jobs due within the claim lead: the engine claims and arms them."""
    wake_at: datetime | None
    """The next time planning this command can change anything (None: only on an event)."""
    unrecorded: int = 0
    """Past cron times beyond MAX_BACKFILL that got no job (the engine logs and counts them)."""


def _cron(view: CommandView) -> Cron | None:
    if view.cron is None or view.paused:
        return None
    try:
        return Cron.parse(view.cron, view.timezone)
    except CronError:
        return None  # invalid schedules are rejected before they reach the log


def _future_times(cron: Cron | None, now: datetime) -> list[datetime]:
    out: list[datetime] = []
    if cron is None:
        return out
    t = now
    for _ in range(LOOKAHEAD):
        t = cron.next_after(t)
        out.append(t)
    return out


def _fires_at(cron: Cron, t: datetime) -> bool:
    return cron.next_after(t - _TICK) == t


StatusOf = Callable[[str], JobStatus | None]


def slot_id(command_id: str, t: datetime, status_of: StatusOf) -> str | None:
    """The id to plan for ``command_id`` at ``t``, or None when the slot is taken.

    The first job of a slot is ``<id>@<t>``. When that job was canceled (the schedule was
    paused, or its params changed) and the slot is wanted again, the next generation is
    ``<id>@<t>~r2`` and so on: ids stay deterministic and a canceled job never moves again.
    Any job of the slot that is not canceled (open, run, missed) takes the slot.
    """
    base = job_id(command_id, t)
    for generation in range(1, 1000):
        jid = base if generation == 1 else f"{base}~r{generation}"
        status = status_of(jid)
        if status is None:
            return jid
        if status is not JobStatus.CANCELED:
            return None
    return None


def plan(
    view: CommandView,
    now: datetime,
    lead: timedelta,
    status_of: StatusOf,
) -> Plan:
    """Decide the next changes for ``view`` at ``now``.

    ``lead`` is how far ahead of its due time a job is handed back for claiming.
    ``status_of`` tells the status of a known job id (None: unknown), so a finished slot is
    never planned again and a canceled one gets a new generation (``slot_id``).
    """
    changes: list[Job] = []
    cron = _cron(view)
    wanted = _future_times(cron, now)
    reason = _cancel_reason(view)

    due: list[Job] = []
    for job in view.open_jobs:
        if job.status is not JobStatus.SCHEDULED:
            continue
        planned = job.trigger == "schedule" and job.attempt == 1
        stale = cron is None or job.params != view.params or not _fires_at(cron, job.scheduled_at)
        if planned and job.scheduled_at > now and stale:
            changes.append(job.to(JobStatus.CANCELED, error=reason, finished_at=now))
        elif job.due <= now + lead:
            due.append(job)

    def status(jid: str) -> JobStatus | None:
        staged = next((c.status for c in reversed(changes) if c.id == jid), None)
        return staged or status_of(jid)

    unrecorded = 0
    times: list[datetime] = []
    if view.registered and cron is not None:
        if view.horizon is not None:
            past, unrecorded = _backfill(cron, view.horizon, now)
            times.extend(past)
        times.extend(wanted)
    for t in times:
        jid = slot_id(view.command_id, t, status)
        if jid is None:
            continue
        job = Job(
            id=jid,
            command_id=view.command_id,
            scheduled_at=t,
            status=JobStatus.SCHEDULED,
            params=view.params,
        )
        changes.append(job)
        if t <= now + lead:
            due.append(job)

    runnable = _misfire(view, due, now, changes)
    return Plan(
        changes=tuple(changes),
        to_claim=tuple(runnable) if view.registered else (),
        wake_at=_wake_at(view, wanted, lead, now),
        unrecorded=unrecorded,
    )


def _backfill(cron: Cron, horizon: datetime, now: datetime) -> tuple[list[datetime], int]:
    """Cron times in (horizon, now]: the newest MAX_BACKFILL, and how many older were cut."""
    times: deque[datetime] = deque(maxlen=MAX_BACKFILL)
    total = 0
    for t in cron.times_between(horizon, now):
        times.append(t)
        total += 1
    return list(times), total - len(times)


def _cancel_reason(view: CommandView) -> str:
    if view.cron is None:
        return "schedule removed"
    if view.paused:
        return "schedule paused"
    return "schedule changed"


def _misfire(view: CommandView, due: list[Job], now: datetime, changes: list[Job]) -> list[Job]:
    """Split due jobs into those to run and those ``missed``; appends the misses to changes."""
    grace = view.policy.misfire_grace
    runnable: list[Job] = []
    for job in sorted(due, key=lambda j: (j.due, j.id)):
        late = now - job.due
        if late > grace:
            why = f"late by {_secs(late)} (misfire_grace {_secs(grace)})"
            if not view.registered:
                why = f"command {view.command_id!r} is not registered on the owning pod; {why}"
            changes.append(job.to(JobStatus.MISSED, error=why, finished_at=now))
        elif view.registered:
            runnable.append(job)
    if not view.policy.coalesce:
        return runnable
    # Coalescing: of the planned jobs already past due, only the newest runs.
    late_planned = [j for j in runnable if j.due <= now and j.trigger == "schedule"]
    for job in late_planned[:-1]:
        newest = late_planned[-1].id
        changes.append(job.to(JobStatus.MISSED, error=f"coalesced into {newest}", finished_at=now))
        runnable.remove(job)
    return runnable


def _wake_at(
    view: CommandView, wanted: list[datetime], lead: timedelta, now: datetime
) -> datetime | None:
    candidates: list[datetime] = []
    if wanted:
        # When the first wanted time passes, a new one becomes "next 2".
        candidates.append(wanted[0])
    for job in view.open_jobs:
        if job.status is JobStatus.SCHEDULED:
            if view.registered:
                due = job.due - lead
                candidates.append(due if due > now else now)
            # A due job not yet claimable (unregistered) becomes missed after the grace.
            candidates.append(job.due + view.policy.misfire_grace + timedelta(milliseconds=1))
    future = [c for c in candidates if c >= now]
    return min(future) if future else None


def _secs(delta: timedelta) -> str:
    return f"{delta.total_seconds():.3f}s"


def recover(jobs: Iterable[Job], now: datetime, policy_of: Callable[[str], Policy]) -> list[Job]:
    """New states for jobs left claimed/running by an owner that is gone.

    A running job ends ``failed: owner lost`` (or is rescheduled when its command opted into
    retries). A claimed job already due may have started: ``failed: owner lost`` too — it is
    reported, never repeated. A claimed job not yet due cannot have started: it goes back to
    ``scheduled`` so the new owner runs it.
    """
    out: list[Job] = []
    for job in jobs:
        if job.status is JobStatus.RUNNING or (job.status is JobStatus.CLAIMED and job.due <= now):
            policy = policy_of(job.command_id)
            prior = f"owner lost ({job.owner}, {job.status})"
            if job.status is JobStatus.RUNNING and job.attempt <= policy.retries:
                out.append(
                    job.to(
                        JobStatus.SCHEDULED,
                        attempt=job.attempt + 1,
                        error=prior,
                        not_before=now + backoff(policy, job.attempt),
                        owner=None,
                    )
                )
            else:
                out.append(job.to(JobStatus.FAILED, error=prior, finished_at=now))
        elif job.status is JobStatus.CLAIMED:
            out.append(job.to(JobStatus.SCHEDULED, owner=None))
    return out


def backoff(policy: Policy, attempt: int) -> timedelta:
    """Delay before attempt ``attempt + 1``: ``retry_backoff * 2**(attempt-1)``."""
    factor: int = 2 ** max(0, attempt - 1)
    return policy.retry_backoff * factor
