"""The RocksDB key layout of the projection store, and its value codecs.

One keyspace, one leading byte per row kind; strings inside keys are length-prefixed
(``>I`` byte count) so one command id is never a prefix of another's rows, and times are
big-endian so byte order is time order and a time range is one range scan::

    m<name>                          meta: format version, partition count, cumulative stats
    o<partition >I>                  next offset to apply (>Q)
    j<job id>                        job (msgpack Job)
    c<command><time><job id>         jobs of a command, by time         (value: msgpack Job)
    k<command><status><time><job id> jobs of a command in a status      (value: msgpack Job)
    s<status><time><job id>          jobs in a status, by time          (value: msgpack Job)
    t<time><job id>                  all jobs, by time                  (value: msgpack Job)
    S<command id>                    schedule state (msgpack ScheduleState)

``<time>`` is ``scheduled_at`` in epoch microseconds + 2**63 as ``>Q`` (order-preserving for
any aware datetime). The index rows carry the whole job as their value, so a query is one
range scan with no point lookups. Every key sorts below ``b"\\xff"`` (see ``END``).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from projections.model import ApplyStats, ScheduleState
from schedulerx.domain.job import Job, JobStatus

META_FORMAT: Final = b"mformat"
META_PARTITIONS: Final = b"mpartitions"
META_STATS: Final = b"mstats"
END: Final = b"\xff"
"""An upper bound above every key: ``[b"", END)`` is the whole store."""

_OFFSET: Final = b"o"
_JOB: Final = b"j"
_BY_COMMAND: Final = b"c"
_BY_COMMAND_STATUS: Final = b"k"
_BY_STATUS: Final = b"s"
_BY_TIME: Final = b"t"
SCHEDULE: Final = b"S"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
_BIAS: Final = 1 << 63
_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")

_job_encoder: Final = msgspec.msgpack.Encoder()
_job_decoder: Final = msgspec.msgpack.Decoder(Job)
_schedule_decoder: Final = msgspec.msgpack.Decoder(ScheduleState)
_stats_decoder: Final = msgspec.msgpack.Decoder(ApplyStats)


def encode_value(value: Job | ScheduleState | ApplyStats) -> bytes:
    """msgpack bytes of a stored value."""
    return _job_encoder.encode(value)


def decode_job(raw: bytes) -> Job:
    """The job in a job or index row value."""
    return _job_decoder.decode(raw)


def decode_schedule(raw: bytes) -> ScheduleState:
    """The schedule state in a ``S`` row value."""
    return _schedule_decoder.decode(raw)


def decode_stats(raw: bytes) -> ApplyStats:
    """The stats in the ``mstats`` row value."""
    return _stats_decoder.decode(raw)


def pack_int(n: int) -> bytes:
    """``n`` (0 <= n < 2**64) as 8 big-endian bytes."""
    return _U64.pack(n)


def unpack_int(raw: bytes) -> int:
    """The integer in ``pack_int``'s bytes."""
    value: int = _U64.unpack(raw)[0]
    return value


def offset_key(partition: int) -> bytes:
    """The row holding ``partition``'s next offset."""
    return _OFFSET + _U32.pack(partition)


def job_row(job_id: str) -> bytes:
    """The primary row of job ``job_id``."""
    return _JOB + job_id.encode()


def schedule_row(command_id: str) -> bytes:
    """The schedule-state row of ``command_id``."""
    return SCHEDULE + command_id.encode()


def time_bytes(at: datetime) -> bytes:
    """``at`` (aware) as 8 order-preserving bytes."""
    return _U64.pack((at - _EPOCH) // _MICRO + _BIAS)


def _part(text: str) -> bytes:
    raw = text.encode()
    return _U32.pack(len(raw)) + raw


def index_prefix(command_id: str | None, status: JobStatus | None) -> bytes:
    """The prefix of the one index that answers a query on these filters."""
    if command_id is not None and status is not None:
        return _BY_COMMAND_STATUS + _part(command_id) + _part(status.value)
    if command_id is not None:
        return _BY_COMMAND + _part(command_id)
    if status is not None:
        return _BY_STATUS + _part(status.value)
    return _BY_TIME


def index_rows(job: Job) -> tuple[bytes, bytes, bytes, bytes]:
    """The four index keys of ``job`` (one per index)."""
    suffix = time_bytes(job.scheduled_at) + job.id.encode()
    command = _part(job.command_id)
    status = _part(job.status.value)
    return (
        _BY_COMMAND + command + suffix,
        _BY_COMMAND_STATUS + command + status + suffix,
        _BY_STATUS + status + suffix,
        _BY_TIME + suffix,
    )


def successor(prefix: bytes) -> bytes:
    """The smallest key above every key that starts with ``prefix`` (``END`` if none)."""
    raw = bytearray(prefix)
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return END
    raw[-1] += 1
    return bytes(raw)


def scan_range(
    prefix: bytes, since: datetime | None, until: datetime | None
) -> tuple[bytes, bytes]:
    """``[lower, upper)`` keys of the index rows under ``prefix`` with since <= time < until."""
    lower = prefix if since is None else prefix + time_bytes(since)
    upper = successor(prefix) if until is None else prefix + time_bytes(until)
    return lower, upper
