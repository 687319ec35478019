"""Every event on the log: frozen, tagged msgspec Structs and the one codec.

Schema rules (see docs/events.md): each event carries ``v`` (schema version), ``event_id``,
``pod`` (producer) and ``ts`` (producer time). New fields get defaults; tags never change;
unknown fields are ignored, so old readers keep working on newer events of a known tag.

Keys: ``cmd/<command_id>`` for the command's schedule record, ``job/<job_id>`` for job
state and ``rejected/<command_id>`` for the last refused change request. Each record carries
the full state of its key, so the record that compaction keeps is enough. A tombstone (value
``None``) under ``job/<id>`` deletes a finished job (retention).
"""

from __future__ import annotations

import uuid
from typing import Final

import msgspec

from schedulerx.domain.job import Job, UtcDatetime

SCHEMA_VERSION: Final = 1


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields common to every event."""

    v: int = SCHEMA_VERSION
    event_id: str
    pod: str
    ts: UtcDatetime
    """When the producer wrote it (aware UTC)."""


class ScheduleSet(Event, frozen=True, kw_only=True, tag="schedule.set"):
    """A command's schedule is now ``cron`` with ``params`` in ``timezone`` (full state)."""

    command_id: str
    cron: str
    params: tuple[str, ...] = ()
    timezone: str = "UTC"
    paused: bool = False
    source: str = "fetcher"
    """Who changed it: ``fetcher``, ``cli`` or ``external``."""


class ScheduleRemoved(Event, frozen=True, kw_only=True, tag="schedule.removed"):
    """The command has no schedule any more; its future jobs are canceled."""

    command_id: str
    source: str = "fetcher"


class ScheduleRejected(Event, frozen=True, kw_only=True, tag="schedule.rejected"):
    """A schedule change request was refused (bad cron, unknown field ...); nothing changed."""

    command_id: str
    reason: str
    request: str = ""


class JobTriggered(Event, frozen=True, kw_only=True, tag="job.triggered"):
    """Someone asked for one run of ``command_id`` now (``schedulerx trigger``)."""

    command_id: str
    params: tuple[str, ...] | None = None


class JobChanged(Event, frozen=True, kw_only=True, tag="job"):
    """A job moved to ``job.status``; ``job`` is its full new state."""

    job: Job


AnyEvent = ScheduleSet | ScheduleRemoved | ScheduleRejected | JobTriggered | JobChanged

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(AnyEvent)


class PoisonRecord(ValueError):
    """A record that cannot be decoded into a known event (garbage, unknown tag, bad field)."""


def encode(event: AnyEvent) -> bytes:
    """The event's JSON bytes (the record value on the log)."""
    return _encoder.encode(event)


def decode(value: bytes) -> AnyEvent:
    """The event in ``value``; raises PoisonRecord with a one-line reason if it is not one."""
    try:
        return _decoder.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PoisonRecord(str(exc).splitlines()[0]) from None


def new_event_id() -> str:
    """A fresh random event id."""
    return uuid.uuid4().hex


def schedule_key(command_id: str) -> bytes:
    """The record key of ``command_id``'s schedule."""
    return f"cmd/{command_id}".encode()


def job_key(job_id: str) -> bytes:
    """The record key of job ``job_id``."""
    return f"job/{job_id}".encode()


def key_of(event: AnyEvent) -> bytes:
    """The record key under which ``event`` is written."""
    if isinstance(event, JobChanged):
        return job_key(event.job.id)
    if isinstance(event, ScheduleRejected):
        # Its own key: under compaction a rejection must never shadow the schedule it left
        # unchanged; compaction keeps the last rejection per command.
        return f"rejected/{event.command_id}".encode()
    if isinstance(event, JobTriggered):
        # Requests are not state: a key of their own so compaction never shadows a schedule.
        return f"trigger/{event.command_id}/{event.event_id}".encode()
    return schedule_key(event.command_id)


def command_id_of(event: AnyEvent) -> str:
    """The command an event belongs to (decides its partition)."""
    if isinstance(event, JobChanged):
        return event.job.command_id
    return event.command_id
