"""The systems under test as processes: starting schedulerx (embedded, Kafka with N pods) or
APScheduler, waiting until a Kafka group has spread its partitions, measuring a steady window,
and reading what pods have planned from their projections (as the CLI does).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    JOINED,
    Context,
    Proc,
    Run,
    mean,
    next_second,
    read_ledger,
    sleep_until,
    wait_until,
    window_runs,
)

# -- systems under test --------------------------------------------------------------------

SYSTEMS = ("embedded", "kafka-1", "kafka-3", "apscheduler")
SPREAD_TIMEOUT_S = 60.0
"""How long a new group may take until every pod owns partitions (normally ~10 s)."""
SPREAD_ATTEMPTS = 3
"""Fresh groups tried when one does not spread in time (each failure is an incident)."""
"""schedulerx on the embedded log (1 pod), on Kafka with 1 and 3 pods, and APScheduler 3.x."""


def owned_partitions(procs: Sequence[Proc]) -> dict[str, set[int]]:
    """The partitions each pod owns now, by its log (``owns``/``released`` lines)."""
    out = {}
    for p in procs:
        owned: set[int] = set()
        for line in p.log_path.read_text(errors="replace").splitlines():
            for word, add in (("owns partitions [", True), ("released partitions [", False)):
                at = line.find(word)
                if at < 0:
                    continue
                inside = line[at + len(word) : line.find("]", at)]
                parts = {int(x) for x in inside.split(",") if x.strip()}
                owned = owned | parts if add else owned - parts
        out[p.name] = owned
    return out


def start_system(
    ctx: Context,
    system: str,
    workdir: Path,
    env: Mapping[str, str],
    *,
    pods: int | None = None,
    session_timeout_ms: int = 10_000,
    timeout: float = 120,
) -> list[Proc]:
    """Start ``system`` (one of SYSTEMS, or ``kafka`` with ``pods``) running ``bench.app``'s
    commands per ``env``; return once it runs: APScheduler printed ready, every pod joined and
    (Kafka, on a fresh topic; ``Proc.kafka`` names it) the partitions are spread over all
    pods. A group that does not spread in time is an incident, and a fresh one is tried."""
    if system == "apscheduler":
        p = ctx.aps("aps", workdir, env)
        p.wait_log("ready", timeout=timeout)
        return [p]
    if system == "embedded":
        p = ctx.pod("pod-0", workdir, env, None)
        p.wait_log(JOINED, timeout=timeout)
        return [p]
    count = pods if pods is not None else int(system.split("-")[1])
    for attempt in range(1, SPREAD_ATTEMPTS + 1):
        topic = ctx.kafka(session_timeout_ms=session_timeout_ms)
        topic.create()
        suffix = "" if attempt == 1 else f"-r{attempt}"
        procs = [ctx.pod(f"pod-{i}{suffix}", workdir, env, topic) for i in range(count)]
        try:
            for p in procs:
                p.wait_log(JOINED, timeout=timeout)
            if count > 1:
                wait_spread(procs, topic.partitions, SPREAD_TIMEOUT_S)
            return procs
        except TimeoutError as exc:
            owned = {k: sorted(v) for k, v in owned_partitions(procs).items()}
            ctx.incident(
                f"{workdir.relative_to(ctx.workdir)}: {count} pods, attempt {attempt}: "
                f"{exc}; partitions by pod: {owned}"
            )
            stop_all(procs)
            if attempt == SPREAD_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def wait_spread(procs: Sequence[Proc], partitions: int, timeout: float = 120) -> float:
    """Wait until every partition is owned and each of ``procs`` owns some (by their logs)."""
    return wait_until(
        "partitions spread over every pod",
        lambda: _spread(procs, partitions),
        timeout,
        every=0.3,
    )


def _spread(procs: Sequence[Proc], partitions: int) -> bool:
    for p in procs:
        p._dead()
    owned = owned_partitions(procs).values()
    return len(set().union(*owned)) == partitions and all(owned)


def stop_all(procs: Sequence[Proc], timeout: float = 30) -> None:
    """SIGTERM every process at once, then wait for each (SIGKILL after ``timeout``)."""
    for p in procs:
        if p.alive:
            p.proc.send_signal(signal.SIGTERM)
    for p in procs:
        p.stop(timeout)


def steady(
    procs: Sequence[Proc], ledger: Path, commands: int, window: float, warmup: float = 3.0
) -> dict[str, Any]:
    """Measure a running system for ``window`` whole seconds after ``warmup``: the lags of the
    runs scheduled in the window, completeness, CPU per 1,000 fires and the backlog.

    Returns ``start``/``end`` (Unix s), ``lags`` (seconds), ``expected``, ``ran`` (distinct jobs
    of the window in the ledger), ``cpu_per_1k`` (CPU seconds of the processes per 1,000
    fires), ``backlog_max`` (most jobs of one second still not started 0.5 s after their due
    time) and ``backlog_growing`` (that count was higher in the last third than the first).
    """
    start = next_second(time.time() + warmup)
    sleep_until(start)
    cpu0 = sum(p.cpu_seconds() for p in procs)
    sleep_until(start + window)
    cpu1 = sum(p.cpu_seconds() for p in procs)
    time.sleep(1.5)  # let runs of the last second that are late still land
    runs = window_runs(read_ledger(ledger), start, start + window)
    by_second: dict[int, list[Run]] = {}
    for r in runs:
        by_second.setdefault(round(r.scheduled), []).append(r)
    seconds = [int(start) + i for i in range(int(window))]
    backlog = [commands - sum(1 for r in by_second.get(s, []) if r.at <= s + 0.5) for s in seconds]
    third = max(1, len(backlog) // 3)
    distinct = len({r.job_id for r in runs})
    return {
        "start": start,
        "end": start + window,
        "lags": [r.lag for r in runs],
        "expected": commands * int(window),
        "ran": distinct,
        "cpu_per_1k": (cpu1 - cpu0) / distinct * 1000 if distinct else math.nan,
        "cpu_s": cpu1 - cpu0,
        "backlog_max": max(backlog, default=0),
        "backlog_growing": mean(backlog[-third:]) > mean(backlog[:third]) + 0.01 * commands,
    }


def bench_env(
    ledger: Path, commands: int, cron: str = "*/1 * * * * *", **extra: str
) -> dict[str, str]:
    """The environment of ``bench.app`` / ``bench.aps_app``."""
    return {
        "BENCH_LEDGER": str(ledger),
        "BENCH_COMMANDS": str(commands),
        "BENCH_CRON": cron,
        **extra,
    }


# -- what a pod has planned, read the way the CLI reads it ---------------------------------


class Planned:
    """Scheduled jobs in the projections of ``pods``, read as RocksDB secondaries (as
    ``schedulerx jobs`` does while pods run), so no log format is relied on."""

    def __init__(self, pods: Sequence[Proc]):
        self._pods = list(pods)
        self._readers: dict[str, Any] = {}

    def _reader(self, pod: Proc) -> Any:
        from projections import ProjectionError, ProjectionStore
        from schedulerx.api.wiring import BackendConfig

        if pod.name not in self._readers:
            assert pod.data_dir is not None
            k = pod.kafka
            backend = BackendConfig(
                data_dir=pod.data_dir,
                kafka=k.bootstrap if k else None,
                topic=k.topic if k else "schedulerx",
            )
            try:
                self._readers[pod.name] = ProjectionStore.open_reader(
                    backend.projection_dir("pod" if k is None else pod.name)
                )
            except ProjectionError:
                return None
        reader = self._readers[pod.name]
        reader.refresh()
        return reader

    def ids(self, since: Any = None, until: Any = None) -> set[str]:
        """Ids of the jobs in ``scheduled`` state with ``since <= scheduled_at < until``."""
        from schedulerx.domain.job import JobStatus

        out: set[str] = set()
        for pod in self._pods:
            reader = self._reader(pod)
            if reader is not None:
                jobs = reader.jobs(status=JobStatus.SCHEDULED, since=since, until=until)
                out |= {j.id for j in jobs}
        return out

    def close(self) -> None:
        """Close the readers."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
