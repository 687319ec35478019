"""What the HTTP endpoints serve, from a running pod or from the log (``schedulerx dashboard``).

Both sources answer the same questions in the same JSON shapes; the HTTP layer
(``schedulerx.ops.http``) only routes and encodes. A source raises ``Unavailable`` when it
cannot answer right now (pod not started, log unreadable): the endpoint says 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol, TypeVar

from projections import MemoryView, ProjectionError, catch_up
from schedulerx.api.jsonform import iso, job_json
from schedulerx.api.wiring import BackendConfig, open_log
from schedulerx.domain.job import Job, JobStatus
from schedulerx.domain.partitioning import partition_for
from schedulerx.engine.pod import Pod
from schedulerx.ops.metrics import PodMetrics
from schedulerx.ports.event_log import LogError
from schedulerx.ports.store import ScheduleRow

log: Final = logging.getLogger("schedulerx.ops")
JSON = dict[str, object]
T = TypeVar("T")


class Unavailable(RuntimeError):
    """The source cannot answer now (one line: why)."""


class Source(Protocol):
    """What ``OpsServer`` serves."""

    def live(self) -> bool:
        """Liveness: True while the thing behind the server works."""
        ...

    def ready(self) -> bool:
        """Readiness: True when it can do its job (a pod: owns caught-up partitions)."""
        ...

    def metrics(self) -> bytes | None:
        """Prometheus text exposition; None when this source has no metrics."""
        ...

    def status(self) -> JSON:
        """``kind`` (pod|dashboard), ``name``, ``live``, ``ready``, ``partitions``, ``now``."""
        ...

    def jobs(
        self, command_id: str | None, status: JobStatus | None, limit: int | None
    ) -> list[JSON]:
        """Jobs as ``schedulerx jobs --json`` prints them (the newest ``limit``)."""
        ...

    def schedules(self) -> list[JSON]:
        """Every command's schedule (``schedule_json``)."""
        ...

    def pods(self) -> list[JSON]:
        """Pods and the partitions they own, as far as this source knows."""
        ...


def schedule_json(row: ScheduleRow, partitions: int) -> JSON:
    """A schedule row as JSON, with the partition its command lives on."""
    return {
        "command_id": row.command_id,
        "cron": row.cron,
        "params": list(row.params),
        "timezone": row.timezone,
        "paused": row.paused,
        "removed": row.removed,
        "source": row.source,
        "since": iso(row.since) or None,
        "partition": partition_for(row.command_id, partitions) if partitions else None,
    }


def _newest(found: list[Job], limit: int | None) -> list[JSON]:
    picked = found if limit is None else found[-limit:]
    return [job_json(j) for j in picked]


def _now() -> str:
    return iso(datetime.now(UTC).replace(microsecond=0))


class PodSource:
    """A running pod: its projection, its ownership, its metrics."""

    def __init__(self, pod: Pod) -> None:
        self._pod = pod
        self._metrics = PodMetrics(pod)

    def live(self) -> bool:
        return self._pod.running

    def ready(self) -> bool:
        return self._pod.ready

    def metrics(self) -> bytes | None:
        return self._metrics.render()

    def status(self) -> JSON:
        pod = self._pod
        return {
            "kind": "pod",
            "name": pod.config.pod_id,
            "live": pod.running,
            "ready": pod.ready,
            "partitions": pod.log.partitions,
            "now": _now(),
        }

    def jobs(
        self, command_id: str | None, status: JobStatus | None, limit: int | None
    ) -> list[JSON]:
        found = self._read(lambda: self._pod.store.jobs(command_id=command_id, status=status))
        return _newest(found, limit)

    def schedules(self) -> list[JSON]:
        n = self._pod.log.partitions
        return [schedule_json(row, n) for row in self._read(lambda: self._pod.store.schedules())]

    def pods(self) -> list[JSON]:
        pod = self._pod
        return [
            {
                "pod_id": pod.config.pod_id,
                "partitions": sorted(pod.owned()),
                "ready": pod.ready,
                "live": pod.running,
                "seen": "this pod",
            }
        ]

    def _read(self, query: Callable[[], T]) -> T:
        if not self._pod.running:
            raise Unavailable("the pod is not running")
        try:
            return query()
        except (RuntimeError, ProjectionError, LogError) as exc:
            raise Unavailable(str(exc).splitlines()[0] if str(exc) else "store closed") from None

    def close(self) -> None:
        """Release the metrics' log reader."""
        self._metrics.close()


class LogViewSource:
    """The whole log, read-only, for ``schedulerx dashboard``: never takes the data-dir lock.

    An in-memory projection (``MemoryView``) is caught up from a log reader at most once per
    ``refresh_s``, on the first request after that, so a pod can start, stop or write on the
    same data dir or topic at any time. Queries and refreshes are serialised by one lock.
    """

    def __init__(self, backend: BackendConfig, refresh_s: float = 1.0) -> None:
        self._backend = backend
        self._refresh_s = refresh_s
        self._log = open_log(backend, create=False)
        self._reader = self._log.reader()
        self._view = MemoryView()
        self._lock = threading.Lock()
        self._fresh_at = float("-inf")
        self._error: str | None = None
        self._refresh()

    @property
    def name(self) -> str:
        """What this dashboard shows: the data dir or the Kafka topic."""
        b = self._backend
        return f"kafka {b.kafka} topic {b.topic}" if b.kafka else f"data dir {b.data_dir}"

    def _refresh(self) -> None:
        try:
            catch_up(self._view, self._reader)
            self._error = None
        except (LogError, OSError) as exc:
            self._error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("dashboard: cannot read the log: %s", self._error)
        self._fresh_at = time.monotonic()

    def _query(self, query: Callable[[MemoryView], T]) -> T:
        with self._lock:
            if time.monotonic() - self._fresh_at >= self._refresh_s:
                self._refresh()
            if self._error is not None:
                raise Unavailable(self._error)
            return query(self._view)

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        with self._lock:
            return self._error is None

    def metrics(self) -> bytes | None:
        return None

    def status(self) -> JSON:
        ready = self.ready()
        return {
            "kind": "dashboard",
            "name": self.name,
            "live": True,
            "ready": ready,
            "partitions": self._reader.partitions,
            "now": _now(),
        }

    def jobs(
        self, command_id: str | None, status: JobStatus | None, limit: int | None
    ) -> list[JSON]:
        return _newest(self._query(lambda v: v.jobs(command_id=command_id, status=status)), limit)

    def schedules(self) -> list[JSON]:
        n = self._reader.partitions
        return [schedule_json(row, n) for row in self._query(lambda v: v.schedules())]

    def pods(self) -> list[JSON]:
        return owners_seen(self._query(lambda v: v.jobs()), self._reader.partitions)

    def close(self) -> None:
        """Close the reader and the log."""
        with self._lock:
            self._reader.close()
            self._log.close()


_OWNED = (JobStatus.CLAIMED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED)


def owners_seen(jobs: Sequence[Job], partitions: int) -> list[JSON]:
    """Pods as the job list shows them: each partition goes to the owner of its most recent
    claimed, running or finished job. Not live membership (a pod that died still shows until
    another one takes its partitions over); ``last_seen`` says how recent the evidence is."""
    latest: dict[int, tuple[datetime, str]] = {}
    for job in jobs:
        if job.owner is None or job.status not in _OWNED:
            continue
        at = job.finished_at or job.started_at or job.scheduled_at
        p = partition_for(job.command_id, partitions)
        if p not in latest or at > latest[p][0]:
            latest[p] = (at, job.owner)
    by_pod: dict[str, tuple[list[int], datetime]] = {}
    for p, (at, owner) in sorted(latest.items()):
        parts, seen = by_pod.get(owner, ([], at))
        parts.append(p)
        by_pod[owner] = (parts, max(seen, at))
    return [
        {
            "pod_id": owner,
            "partitions": parts,
            "ready": None,
            "live": None,
            "seen": f"in jobs, last {iso(seen)}",
        }
        for owner, (parts, seen) in sorted(by_pod.items())
    ]
