"""Staged writes of one loop iteration, flushed as one atomic append per partition.

The loop stages events; ``flush`` appends each partition's batch and only then reports the
committed events back (so the book and the timers never run ahead of the log). A batch that
the log refuses stays staged and is retried; one whose partition is no longer owned is
dropped, because the new owner decides for itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from schedulerx.domain.events import AnyEvent, JobChanged, encode, key_of
from schedulerx.domain.job import Job
from schedulerx.ports.event_log import Item, LogError, LogSession, NotOwner

log = logging.getLogger("schedulerx.engine")
_BACKOFF_S = 1.0


@dataclass(slots=True)
class Staged:
    """One record to write and the event it carries (None for a tombstone)."""

    item: Item
    event: AnyEvent | None


@dataclass(slots=True)
class Writes:
    """Pending records per partition and the latest staged state of each job."""

    batches: dict[int, list[Staged]] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    retry_at: dict[int, float] = field(default_factory=dict)
    """Monotonic time before which a partition whose append failed is not tried again."""

    def event(self, partition: int, event: AnyEvent) -> None:
        """Stage ``event`` for ``partition``."""
        self.batches.setdefault(partition, []).append(Staged((key_of(event), encode(event)), event))
        if isinstance(event, JobChanged):
            self.jobs[event.job.id] = event.job

    def tombstone(self, partition: int, key: bytes) -> None:
        """Stage a tombstone for ``key``."""
        self.batches.setdefault(partition, []).append(Staged((key, None), None))

    def latest(self, job_id: str) -> Job | None:
        """The job's staged state, if this iteration changed it."""
        return self.jobs.get(job_id)

    def flush(
        self,
        session: LogSession,
        committed: Callable[[int, list[Staged], list[int]], None],
        lost: Callable[[int], None],
    ) -> bool:
        """Append every batch (``LogSession.append_many``: the partitions may be written
        concurrently). ``committed(partition, staged, offsets)`` after each success,
        ``lost(partition)`` when the partition is not owned any more. Returns False when the
        log refused a batch (it stays staged for the next flush)."""
        now = time.monotonic()
        # A partition whose append failed waits out its backoff: one partition whose broker
        # or transaction coordinator is gone must not hold up those that can be written.
        ready = {p: b for p, b in self.batches.items() if self.retry_at.get(p, 0.0) <= now}
        ok = len(ready) == len(self.batches)
        if ready:
            results = session.append_many({p: [s.item for s in b] for p, b in ready.items()})
        else:
            results = {}
        for partition, staged in ready.items():
            result = results[partition]
            if isinstance(result, NotOwner):
                log.warning("partition %d lost before %d writes committed", partition, len(staged))
                del self.batches[partition]
                self.retry_at.pop(partition, None)
                lost(partition)
            elif isinstance(result, LogError):
                log.error("write to partition %d failed, will retry: %s", partition, result)
                ok = False
                self.retry_at[partition] = time.monotonic() + _BACKOFF_S
            else:
                del self.batches[partition]
                self.retry_at.pop(partition, None)
                committed(partition, staged, result)
        if not self.batches:
            self.jobs.clear()
        return ok
