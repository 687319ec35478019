"""Turning outside input into events: schedule-change requests and fetcher results.

Pure decisions (no I/O): each function returns the events to write, a rejection included, so
bad input is on record with its reason and never changes state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from schedulerx.domain.cron import Cron, CronError
from schedulerx.domain.events import (
    AnyEvent,
    JobChanged,
    ScheduleRejected,
    ScheduleRemoved,
    ScheduleSet,
    new_event_id,
)
from schedulerx.domain.job import Job, JobStatus, job_id
from schedulerx.domain.requests import Request, safe_request_id
from schedulerx.domain.schedule import Schedule


def from_request(
    request: Request,
    current: ScheduleSet | None,
    registered: bool,
    pod: str,
    now: datetime,
) -> list[AnyEvent]:
    """The events a validated request produces (or one ``schedule.rejected``)."""
    cid = request.command_id

    def reject(reason: str) -> list[AnyEvent]:
        return [
            ScheduleRejected(
                event_id=new_event_id(),
                pod=pod,
                ts=now,
                command_id=cid,
                reason=reason,
                request=request.request_id,
            )
        ]

    if request.trigger:
        if current is None and not registered:
            return reject(f"unknown command {cid!r}: no schedule and not registered")
        params = (
            request.params if request.params is not None else (current.params if current else ())
        )
        at = request.requested_at or now
        job = Job(
            id=job_id(cid, at, suffix=f"~manual-{safe_request_id(request.request_id)}"),
            command_id=cid,
            scheduled_at=at,
            status=JobStatus.SCHEDULED,
            params=params,
            trigger="manual",
        )
        return [JobChanged(event_id=new_event_id(), pod=pod, ts=now, job=job)]
    if request.remove:
        if current is None:
            return reject(f"command {cid!r} has no schedule to remove")
        return [
            ScheduleRemoved(
                event_id=new_event_id(), pod=pod, ts=now, command_id=cid, source=request.source
            )
        ]
    cron = request.cron if request.cron is not None else (current.cron if current else None)
    if cron is None:
        return reject(f"command {cid!r} has no schedule; a request must give 'cron'")
    timezone = request.timezone or (current.timezone if current else "UTC")
    try:
        Cron.parse(cron, timezone)
    except CronError as exc:
        return reject(str(exc))
    new = ScheduleSet(
        event_id=new_event_id(),
        pod=pod,
        ts=now,
        command_id=cid,
        cron=cron,
        params=request.params
        if request.params is not None
        else (current.params if current else ()),
        timezone=timezone,
        paused=request.paused
        if request.paused is not None
        else (current.paused if current else False),
        source=request.source,
    )
    if current is not None and same_schedule(current, new) and current.paused == new.paused:
        return []
    return [new]


def from_fetch(
    command_id: str,
    fetched: Schedule | None,
    current: ScheduleSet | None,
    pod: str,
    now: datetime,
    bad_seen: Callable[[str], bool],
) -> list[AnyEvent]:
    """Events for a fetcher's answer: a changed schedule, a removal, or a rejection.

    ``bad_seen(text)`` is True when this same bad value was already rejected (so a fetcher
    that keeps returning a bad cron is recorded once, not on every refresh).
    """
    if fetched is None:
        if current is not None and current.source == "fetcher":
            return [
                ScheduleRemoved(event_id=new_event_id(), pod=pod, ts=now, command_id=command_id)
            ]
        return []
    new = ScheduleSet(
        event_id=new_event_id(),
        pod=pod,
        ts=now,
        command_id=command_id,
        cron=fetched.cron,
        params=fetched.params,
        timezone=fetched.timezone,
        paused=current.paused if current else False,
        source="fetcher",
    )
    if current is not None and same_schedule(current, new):
        return []
    try:
        Cron.parse(fetched.cron, fetched.timezone)
    except CronError as exc:
        if bad_seen(f"{fetched.cron}|{fetched.timezone}"):
            return []
        return [
            ScheduleRejected(
                event_id=new_event_id(),
                pod=pod,
                ts=now,
                command_id=command_id,
                reason=f"fetcher: {exc}",
            )
        ]
    return [new]


def same_schedule(a: ScheduleSet, b: ScheduleSet) -> bool:
    """True when both name the same cron, params and time zone."""
    return (a.cron, a.params, a.timezone) == (b.cron, b.params, b.timezone)
