"""Schedule-change requests: what the CLI and other systems send; a pod turns them into events.

A request is plain JSON (documented in docs/events.md) so any Kafka client or script can send
one. The pod that owns the command validates it and appends the resulting fact (a schedule
event, a manual job) or a ``schedule.rejected`` event with the reason. The state topic thus
holds only validated facts written by schedulerx.

Pure: nothing here reads the clock or draws random ids. A sender stamps its request with an
id and a time before encoding it (``schedulerx.api.admin.stamped``); a request that arrives
without them gets a derived id (``decode_request``) and the pod's time (intake).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal

import msgspec

from schedulerx.domain.job import UtcDatetime, command_of

_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class RunReport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """A pod's word on a run it has going for a partition it no longer owns.

    A rebalance can move a partition while one of its jobs runs. The old owner can no longer
    write the partition (it is fenced), so it sends this through the requests inbox to the
    new owner, which records it: ``running`` while the run goes on (about once a second:
    the run is alive), then the outcome. Internal to schedulerx (docs/adr/0008).
    """

    job_id: str
    attempt: int
    pod: str
    """The pod running it: the job's ``owner``."""
    status: Literal["running", "succeeded", "failed"]
    started_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    error: str | None = None


class Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """One change to one command. Fields left out keep their current value.

    - set a schedule: ``{"command_id": "backup", "cron": "0 3 * * *", "params": ["--full"]}``
    - pause/resume: ``{"command_id": "backup", "paused": true}``
    - remove: ``{"command_id": "backup", "remove": true}``
    - run once now: ``{"command_id": "backup", "trigger": true}``
    """

    command_id: str
    cron: str | None = None
    params: tuple[str, ...] | None = None
    timezone: str | None = None
    paused: bool | None = None
    remove: bool = False
    trigger: bool = False
    request_id: str = ""
    """Makes redelivery harmless: a trigger's job id is derived from it and ``requested_at``.
    Letters, digits and ``_.:-``, at most 64; the pod derives one when it is missing."""
    requested_at: UtcDatetime | None = None
    """When it was asked for (a trigger's scheduled time); the pod's time when missing."""
    source: str = "external"
    report: RunReport | None = None
    """Set only by a pod that runs a job of a partition it lost (see RunReport)."""


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Request)


def safe_request_id(request_id: str) -> str:
    """``request_id`` with every character outside ``[A-Za-z0-9_.:-]`` replaced by ``-``
    (so it can stand in a job id without breaking ``command_of``)."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "-", request_id)[:64] or "none"


class BadRequest(ValueError):
    """Bytes that are not a valid request; the message is one line."""


def encode_request(request: Request) -> bytes:
    """JSON bytes of ``request`` exactly as given: equal requests give equal bytes.

    Nothing is filled in. An empty ``request_id`` is sent as ``""`` and a missing
    ``requested_at`` as ``null``, which the pod reads as "derive one" (from the bytes' hash,
    so identical unstamped requests share one) and "the pod's time".
    Stamp the request first (``schedulerx.api.admin.stamped``) to make each send distinct.
    """
    return _encoder.encode(request)


def decode_request(data: bytes) -> Request:
    """The request in ``data``; raises BadRequest with a one-line reason."""
    try:
        request = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest(str(exc).splitlines()[0]) from None
    if not request.command_id:
        raise BadRequest("command_id must not be empty")
    if request.report is not None and command_of(request.report.job_id) != request.command_id:
        raise BadRequest(
            f"report on job {request.report.job_id[:80]!r} is not of command "
            f"{request.command_id[:80]!r}"
        )
    if request.request_id and not _REQUEST_ID.fullmatch(request.request_id):
        raise BadRequest(
            f"request_id {request.request_id[:70]!r} must be 1-64 of letters, digits and _.:-"
        )
    if not request.request_id:
        digest = hashlib.sha256(data).hexdigest()[:20]
        request = msgspec.structs.replace(request, request_id=f"h-{digest}")
    return request
