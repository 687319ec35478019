"""Changing schedules from outside a pod, exactly as another system would: by a request.

With a pod running, the request goes to it (``EventLog.submit``) and the pod validates and
records it. With none running on an embedded data dir, the caller takes the pod's place for
the moment: it validates the request with the pod's own rules and appends the result.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from schedulerx.api.query import caught_up_store
from schedulerx.api.wiring import BackendConfig, open_log
from schedulerx.domain.events import AnyEvent, ScheduleRejected, ScheduleSet, encode, key_of
from schedulerx.domain.partitioning import partition_for
from schedulerx.domain.requests import Request, decode_request, encode_request
from schedulerx.engine.intake import from_request
from schedulerx.ports.event_log import LogLocked

CLI_POD = "schedulerx-cli"


class RequestRejected(ValueError):
    """The request was refused; the message is the recorded reason."""


def stamped(request: Request, now: datetime | None = None) -> Request:
    """``request`` as it is sent: a fresh ``request_id`` (32 hex digits, random) when it has
    none, and ``requested_at`` = ``now`` (default: this machine's clock) when it has none.

    Fields already set are kept, so a caller that gives both makes redelivery harmless. This
    is the edge where the clock and the random ids are read; the domain's
    ``encode_request`` stays pure.
    """
    if not request.request_id:
        request = msgspec.structs.replace(request, request_id=uuid.uuid4().hex)
    if request.requested_at is None:
        at = datetime.now(UTC) if now is None else now
        request = msgspec.structs.replace(request, requested_at=at)
    return request


def submit(backend: BackendConfig, request: Request) -> str:
    """Send ``request``, ``stamped`` first; returns what happened in one line.

    Raises RequestRejected when the request is refused here (no pod running).
    """
    raw = encode_request(stamped(request))
    request = decode_request(raw)  # as the pod will read it
    log_ = open_log(backend)
    try:
        if backend.kafka is None:
            try:
                session = log_.join(CLI_POD)
            except LogLocked:
                log_.submit(request.command_id, raw)
                return "submitted to the running pod"
            try:
                with caught_up_store(backend.projection_dir("pod"), log_) as store:
                    row = store.schedule(request.command_id)
                    current = None
                    if row is not None and row.cron is not None and not row.removed:
                        current = ScheduleSet(
                            event_id="",
                            pod="",
                            ts=datetime.now(UTC),
                            command_id=row.command_id,
                            cron=row.cron,
                            params=row.params,
                            timezone=row.timezone,
                            paused=row.paused,
                        )
                    events = from_request(request, current, False, CLI_POD, datetime.now(UTC))
                    p = partition_for(request.command_id, log_.partitions)
                    if events:
                        session.append(p, [(key_of(e), encode(e)) for e in events])
                    return _describe(events)
            finally:
                session.close()
        log_.submit(request.command_id, raw)
        return "submitted to the owning pod"
    finally:
        log_.close()


def _describe(events: list[AnyEvent]) -> str:
    if not events:
        return "no change"
    for e in events:
        if isinstance(e, ScheduleRejected):
            raise RequestRejected(e.reason)
    # The event types as docs/events.md names them (schedule.set, job, ...).
    return "recorded: " + ", ".join(str(e.__struct_config__.tag) for e in events)
