"""The event-log port: what the engine and projections need from a partitioned log.

Two adapters implement it: the embedded log (``schedulerx.backends.embedded``, the default)
and Kafka (``schedulerx.backends.kafka``). One contract suite (tests/contract) runs on both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Record:
    """One committed record. ``value`` None is a tombstone."""

    partition: int
    offset: int
    key: bytes
    value: bytes | None
    timestamp_ms: int


Item = tuple[bytes, bytes | None]
"""A record to append: (key, value); value None writes a tombstone."""


class LogError(RuntimeError):
    """The log cannot be used (unreachable, corrupt beyond repair, disk full); one-line message."""


class LogLocked(LogError):
    """Another pod already writes this log (embedded: the data dir is in use)."""


class NotOwner(LogError):
    """This session does not (any longer) own the partition: fenced, revoked or lease lost."""


@dataclass(frozen=True, slots=True)
class Poll:
    """What changed since the previous ``LogSession.poll``."""

    records: list[Record] = field(default_factory=list)
    """New committed records, in offset order per partition: of owned partitions, and of
    every partition once ``LogSession.follow`` was called. May repeat records the pod wrote
    itself or already read (callers filter by offset)."""
    assigned: frozenset[int] = frozenset()
    """Partitions newly owned: catch up to their end and recover before acting on them."""
    revoked: frozenset[int] = frozenset()
    """Partitions no longer owned: stop planning, claiming and starting for them at once.

    After a graceful revocation (a rebalance, not a loss) the session still accepts appends
    to them until the next ``poll``: time to release unstarted claims for the next owner."""
    requests: list[bytes] = field(default_factory=list)
    """Schedule-change requests (JSON, see ``EventLog.submit``) for owned partitions.

    Delivered at least once: a request returned here is only forgotten by the log after the
    next ``poll`` returns, so a pod that dies before acting on it sees it again on restart.
    """


class LogReader(Protocol):
    """Reads committed records of any partition; never blocks a writer; many may exist."""

    @property
    def partitions(self) -> int:
        """How many partitions the log has."""
        ...

    def bounds(self, partition: int) -> tuple[int, int]:
        """(first offset still stored, next offset to be written) of committed records."""
        ...

    def read(self, partition: int, offset: int, max_records: int = 1000) -> list[Record]:
        """Committed records with offset >= ``offset``, in order, at most ``max_records``.

        Offsets may have gaps (compaction, transaction markers). Empty only at the end:
        records known to exist from ``offset`` on that cannot be read (broker away, fetches
        stalled) raise LogError, so a caller never takes a stall for the end of the log.
        """
        ...

    def close(self) -> None:
        """Release the reader's resources."""
        ...


class LogSession(Protocol):
    """A pod's membership: the partitions it owns and the only way it writes state."""

    @property
    def pod_id(self) -> str:
        """This pod's id (the ``owner`` of the jobs it claims)."""
        ...

    def poll(self, timeout_s: float) -> Poll:
        """New records and ownership changes; waits up to ``timeout_s`` when there are none."""
        ...

    def owned(self) -> frozenset[int]:
        """The partitions this session owns right now (lease-checked: empty once it is lost)."""
        ...

    def follow(self, positions: Mapping[int, int]) -> None:
        """From now on ``poll`` also returns the committed records of every partition, owned
        or not, from these offsets — so a pod's projection shows the whole fleet's jobs."""
        ...

    def append(self, partition: int, items: Sequence[Item]) -> list[int]:
        """Append ``items`` to ``partition`` atomically; durable when this returns, and visible
        to readers at once (embedded) or a moment later (Kafka: once the commit marker is in).

        Returns their offsets. Raises NotOwner if the partition is not owned (nothing of the
        batch becomes visible), LogError if the log cannot take it (nothing is lost silently:
        the caller still holds the batch).
        """
        ...

    def append_many(self, batches: Mapping[int, Sequence[Item]]) -> dict[int, list[int] | LogError]:
        """``append`` for several partitions, each batch atomic on its own and independent of
        the others (a backend may write them concurrently). Every partition of ``batches``
        gets its result: the offsets, or the NotOwner / LogError ``append`` would raise."""
        ...

    def close(self) -> None:
        """Leave: hand partitions over promptly."""
        ...


class EventLog(Protocol):
    """A partitioned, offset-addressed, compacted log of events."""

    @property
    def partitions(self) -> int:
        """How many partitions the log has."""
        ...

    @property
    def exclusive(self) -> bool:
        """True when at most one pod can use the log at a time (embedded): a job another pod
        left running is then certainly orphaned. False when pods share it (Kafka)."""
        ...

    def reader(self) -> LogReader:
        """A reader of committed records (for projections, replay, the CLI)."""
        ...

    def join(self, pod_id: str) -> LogSession:
        """Join as a pod. Raises LogLocked if this backend allows one pod and one already runs."""
        ...

    def submit(self, command_id: str, request: bytes) -> None:
        """Hand a schedule-change request (JSON, docs/events.md) to the owning pod.

        This is how the CLI and other systems change state: a pod validates the request and
        appends the resulting event (or a rejection) to the command's partition.
        """
        ...

    def close(self) -> None:
        """Release the log's resources."""
        ...


def append_each(
    session: LogSession, batches: Mapping[int, Sequence[Item]]
) -> dict[int, list[int] | LogError]:
    """``LogSession.append_many`` done one ``append`` after another (for logs that gain
    nothing from overlapping them)."""
    results: dict[int, list[int] | LogError] = {}
    for partition, items in batches.items():
        try:
            results[partition] = session.append(partition, items)
        except LogError as exc:
            results[partition] = exc
    return results
