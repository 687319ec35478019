"""Schedule-change requests: what the CLI and other systems send; a pod turns them into events.

A request is plain JSON (documented in docs/events.md) so any Kafka client or script can send
one. The pod that owns the command validates it and appends the resulting fact (a schedule
event, a manual job) or a ``schedule.rejected`` event with the reason. The state topic thus
holds only validated facts written by schedulerx.
"""

from __future__ import annotations

import uuid
from typing import Final

import msgspec


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
    """Makes redelivery harmless: a trigger's job id is derived from it."""
    source: str = "external"


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Request)


class BadRequest(ValueError):
    """Bytes that are not a valid request; the message is one line."""


def encode_request(request: Request) -> bytes:
    """JSON bytes of ``request`` (a fresh ``request_id`` is filled in when empty)."""
    if not request.request_id:
        request = msgspec.structs.replace(request, request_id=uuid.uuid4().hex)
    return _encoder.encode(request)


def decode_request(data: bytes) -> Request:
    """The request in ``data``; raises BadRequest with a one-line reason."""
    try:
        request = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest(str(exc).splitlines()[0]) from None
    if not request.command_id:
        raise BadRequest("command_id must not be empty")
    return request
