"""Prometheus metrics of one pod, in a registry of its own (never the global one).

Counters are read from the pod's ``PodStats`` at scrape time by a custom collector, so the
engine keeps plain counters and knows nothing of Prometheus. The fire-lag histogram is the
one exception: it is fed by an observer that ``PodStats.lag`` calls on every start (samples
kept in ``PodStats`` are bounded and would lose counts). Every metric is documented in
``docs/operations.md``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from projections import ProjectionError
from schedulerx.engine.pod import Pod
from schedulerx.engine.stats import MISS_CLASSES
from schedulerx.ports.event_log import LogError, LogReader

log: Final = logging.getLogger("schedulerx.ops")

FIRE_LAG_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds, from 1 ms (the APScheduler bar is p50 2 ms) to 10 s (something is wrong)."""

FINAL_STATUSES: Final = ("succeeded", "failed", "missed", "canceled")
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

_COUNTERS: Final = (
    # (metric name, PodStats counter, help)
    (
        "schedulerx_partition_assignments_total",
        "partition_assignments",
        "Times this pod was handed partitions (each after catching up on them).",
    ),
    (
        "schedulerx_partition_revocations_total",
        "partition_revocations",
        "Times partitions were taken from this pod (rebalance, fencing, lease lost).",
    ),
    (
        "schedulerx_catch_up_failures_total",
        "catch_up_failures",
        "Catch-ups of newly owned partitions that failed (retried; nothing acted on meanwhile).",
    ),
    (
        "schedulerx_fetcher_errors_total",
        "fetcher_errors",
        "Schedule fetches that failed or returned an invalid schedule (the last good one is kept).",
    ),
    (
        "schedulerx_poison_records_total",
        "poison_records",
        "Undecodable records on the log that the pod skipped.",
    ),
    (
        "schedulerx_jobs_owner_lost_total",
        "jobs_owner_lost",
        "Jobs a previous owner left claimed or running that this pod recorded as failed.",
    ),
    (
        "schedulerx_jobs_handed_over_total",
        "jobs_handed_over",
        "Runs a previous owner finished after a partition move, recorded here from its report.",
    ),
    (
        "schedulerx_run_reports_ignored_total",
        "reports_ignored",
        "Run reports that matched no open job of this pod's partitions (stale or recorded).",
    ),
    (
        "schedulerx_job_retries_total",
        "jobs_scheduled",
        "Failed runs put back to scheduled because the command allows retries.",
    ),
    (
        "schedulerx_jobs_expired_total",
        "jobs_expired",
        "Finished jobs deleted (tombstoned) beyond their command's history_limit.",
    ),
    (
        "schedulerx_jobs_unrecorded_total",
        "jobs_unrecorded",
        "Cron times older than the backfill limit that got no job (the whole fleet was down).",
    ),
)


class PodMetrics:
    """The metrics of ``pod``: a ``CollectorRegistry`` and its text exposition.

    Create it before ``pod.start()`` so that no start goes unobserved. ``render`` is safe to
    call from any thread, any number of times at once.
    """

    def __init__(self, pod: Pod, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry()
        self._lag = ProjectionLag(pod)
        fire_lag = Histogram(
            "schedulerx_fire_lag_seconds",
            "Seconds from a job's due time to its start (claim committed, timer fired, "
            "executor began).",
            buckets=FIRE_LAG_BUCKETS,
            registry=self.registry,
        )
        pod.stats.observe_lag(fire_lag.observe)
        self.registry.register(_PodCollector(pod, self._lag))
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def render(self) -> bytes:
        """The Prometheus text exposition (``CONTENT_TYPE``) of every metric, now."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Release the log reader the projection-lag gauge keeps."""
        self._lag.close()


class ProjectionLag:
    """Records of the owned partitions that the pod's projection has not applied yet.

    For each owned partition: the log's end offset minus the store's next offset to apply.
    The end offsets come from one log reader, opened at the first scrape and kept; the
    value is computed at most once a second whatever the scrape rate. On Kafka the end is the
    last stable offset, which counts the commit marker of the last transaction: a caught-up
    partition may read 1 there. None when it cannot be known (no store yet, reader error).
    """

    def __init__(self, pod: Pod, min_interval_s: float = 1.0) -> None:
        self._pod = pod
        self._min_interval = min_interval_s
        self._reader: LogReader | None = None
        self._lock = threading.Lock()
        self._value: float | None = None
        self._at = float("-inf")
        self._closed = False

    def value(self) -> float | None:
        """The lag summed over owned partitions (0 when none is owned), or None."""
        with self._lock:
            if self._closed:
                return None
            if time.monotonic() - self._at < self._min_interval:
                return self._value
            self._value = self._measure()
            self._at = time.monotonic()
            return self._value

    def _measure(self) -> float | None:
        owned = self._pod.owned()
        if not owned:
            return 0.0
        try:
            store = self._pod.store
            if self._reader is None:
                self._reader = self._pod.log.reader()
            reader = self._reader
            return float(sum(max(0, reader.bounds(p)[1] - store.next_offset(p)) for p in owned))
        except (LogError, ProjectionError, RuntimeError, OSError) as exc:
            log.debug("projection lag unknown: %s", exc)
            self._drop_reader()
            return None

    def _drop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except Exception as exc:  # a broken reader must not break the scrape
                log.debug("closing the lag reader failed: %s", exc)

    def close(self) -> None:
        """Close the reader; later ``value`` calls return None."""
        with self._lock:
            self._closed = True
            self._drop_reader()


class _PodCollector:
    """Reads ``PodStats`` and the pod's state at scrape time."""

    def __init__(self, pod: Pod, lag: ProjectionLag) -> None:
        self._pod = pod
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        pod = self._pod
        counts = pod.stats.snapshot()
        info = GaugeMetricFamily(
            "schedulerx_pod_info", "Constant 1, labelled with this pod's id.", labels=["pod_id"]
        )
        info.add_metric([pod.config.pod_id], 1)
        yield info
        up = pod.running
        yield GaugeMetricFamily(
            "schedulerx_up", "1 while the pod's loop runs, else 0.", value=1 if up else 0
        )
        yield GaugeMetricFamily(
            "schedulerx_ready",
            "1 when the pod is a member, owns partitions and has caught up on all of them.",
            value=1 if pod.ready else 0,
        )
        yield GaugeMetricFamily(
            "schedulerx_owned_partitions",
            "Partitions this pod owns and has caught up on.",
            value=len(pod.owned()),
        )
        lag = self._lag.value()
        if lag is not None:
            yield GaugeMetricFamily(
                "schedulerx_projection_lag_records",
                "Log offsets of owned partitions not yet applied to the pod's projection.",
                value=lag,
            )
        jobs = CounterMetricFamily(
            "schedulerx_jobs_total",
            "Jobs that reached a final status on this pod, by status.",
            labels=["status"],
        )
        for status in FINAL_STATUSES:
            jobs.add_metric([status], counts.get(f"jobs_{status}", 0))
        yield jobs
        missed = CounterMetricFamily(
            "schedulerx_missed_jobs_total",
            "Jobs recorded as missed on this pod, by reason class.",
            labels=["reason"],
        )
        for reason in MISS_CLASSES:
            missed.add_metric([reason], counts.get(f"missed_{reason}", 0))
        yield missed
        rejected = CounterMetricFamily(
            "schedulerx_requests_rejected_total",
            "Schedule-change requests not applied: malformed (undecodable, not on the log), "
            "invalid (recorded as schedule.rejected) or misrouted (another pod's partition).",
            labels=["reason"],
        )
        rejected.add_metric(["malformed"], counts.get("requests_rejected", 0))
        rejected.add_metric(["invalid"], counts.get("requests_schedule.rejected", 0))
        rejected.add_metric(["misrouted"], counts.get("requests_misrouted", 0))
        yield rejected
        for name, counter, doc in _COUNTERS:
            yield CounterMetricFamily(name, doc, value=counts.get(counter, 0))
