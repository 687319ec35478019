"""Row 6: job-list queries on a projection holding >= 100,000 jobs.

The store is built by applying real records (each job's full life: scheduled, claimed,
running, then succeeded / failed, or scheduled -> missed; plus the next 2 scheduled per command)
to a RocksDB ``ProjectionStore``, as a pod does. Then, with random command ids:
``jobs(command_id=c)`` (what ``Scheduler.list_jobs(c)`` runs on a live pod), filtered by status,
a page of scheduled jobs across all commands, a time-range page of one command, a lookup by
id; and the first two on a reader opened as a RocksDB secondary (what the CLI does while a pod
runs).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import Context, Row, summary_ms

NAME = "query"
TITLE = "6. Query: list_jobs and filtered pages on a large projection"
PARTITIONS = 12


def sizes(quick: bool) -> tuple[int, int, int]:
    """(commands, finished jobs per command, queries per kind)."""
    return (30, 100, 50) if quick else (1000, 100, 2000)


def _records(commands: int, finished: int) -> Iterator[Any]:
    from schedulerx.domain.events import JobChanged, encode, key_of, new_event_id
    from schedulerx.domain.job import Job, JobStatus, job_id
    from schedulerx.domain.partitioning import partition_for
    from schedulerx.ports.event_log import Record

    base = datetime(2026, 1, 1, tzinfo=UTC)
    offsets = [0] * PARTITIONS
    for c in range(commands):
        cid = f"q-{c}"
        p = partition_for(cid, PARTITIONS)
        for j in range(finished + 2):
            t = base + timedelta(minutes=j)
            job = Job(id=job_id(cid, t), command_id=cid, scheduled_at=t, status=JobStatus.SCHEDULED)
            life = [job]
            if j < finished:
                if j % 50 == 7:
                    life.append(
                        job.to(
                            JobStatus.MISSED,
                            error="late by 40s (misfire_grace 30s)",
                            finished_at=t + timedelta(seconds=40),
                        )
                    )
                else:
                    claimed = job.to(JobStatus.CLAIMED, owner="pod-a")
                    run = claimed.to(JobStatus.RUNNING, started_at=t)
                    end = t + timedelta(seconds=1)
                    final = (
                        run.to(JobStatus.FAILED, finished_at=end, error="RuntimeError: x")
                        if j % 12 == 5
                        else run.to(JobStatus.SUCCEEDED, finished_at=end)
                    )
                    life += [claimed, run, final]
            for state in life:
                e = JobChanged(event_id=new_event_id(), pod="pod-a", ts=t, job=state)
                yield Record(p, offsets[p], key_of(e), encode(e), int(t.timestamp() * 1000))
                offsets[p] += 1


def _time(fn: Callable[[], object], n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return summary_ms(samples)


def run(ctx: Context) -> Row:
    """Build the store, then time each query kind."""
    from projections import ProjectionStore
    from schedulerx.domain.job import JobStatus

    commands, finished, n = sizes(ctx.quick)
    path = ctx.dir(NAME) / "store"
    store = ProjectionStore(path, PARTITIONS)
    t0 = time.perf_counter()
    chunk: list[Any] = []
    applied = 0
    for record in _records(commands, finished):
        chunk.append(record)
        if len(chunk) == 5000:
            store.apply(chunk)
            applied += len(chunk)
            chunk = []
    if chunk:
        store.apply(chunk)
        applied += len(chunk)
    build_s = time.perf_counter() - t0
    total_jobs = commands * (finished + 2)
    rng = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)

    def cid() -> str:
        return f"q-{rng.randrange(commands)}"

    def since() -> datetime:
        return base + timedelta(minutes=rng.randrange(finished))

    kinds: list[tuple[str, Callable[[Any], Callable[[], object]]]] = [
        ("jobs(command_id=c)  [list_jobs(c)]", lambda s: lambda: s.jobs(command_id=cid())),
        (
            "jobs(command_id=c, status=failed)",
            lambda s: lambda: s.jobs(command_id=cid(), status=JobStatus.FAILED),
        ),
        (
            "jobs(status=scheduled, limit=50)",
            lambda s: lambda: s.jobs(status=JobStatus.SCHEDULED, limit=50),
        ),
        (
            "jobs(command_id=c, since, until=+20 min, limit=20)",
            lambda s: (
                lambda: (
                    lambda t: s.jobs(
                        command_id=cid(), since=t, until=t + timedelta(minutes=20), limit=20
                    )
                )(since())
            ),
        ),
        ("job(id)", lambda s: lambda: s.job(f"{cid()}@2026-01-01T00:{rng.randrange(60):02d}:00Z")),
    ]
    rows: list[dict[str, Any]] = []
    sizes_seen = {"jobs(command_id=c)": len(store.jobs(command_id="q-0"))}
    for label, make in kinds:
        rows.append({"store": "pod (primary)", "query": label, **_time(make(store), n)})
    store.close()
    reader = ProjectionStore.open_reader(path)
    try:
        for label, make in kinds[:3]:
            rows.append(
                {"store": "CLI reader (secondary)", "query": label, **_time(make(reader), n)}
            )
    finally:
        reader.close()
    judged = [r for r in rows if r["store"] == "pod (primary)"][:3]
    worst = max(judged, key=lambda r: r["p99"])
    return {
        "title": TITLE,
        "tables": {"queries": rows},
        "targets": [
            {
                "target": "query p99 <= 1 ms (list_jobs(c), status filter, page of 50)",
                "value": f"worst p99 {worst['p99']:.3f} ms ({worst['query']})",
                "met": worst["p99"] <= 1.0,
            }
        ],
        "notes": [
            f"{total_jobs:,} jobs of {commands:,} commands ({finished} finished + 2 scheduled "
            f"each; list_jobs(c) returns {sizes_seen['jobs(command_id=c)']} jobs), built from "
            f"{applied:,} records in {build_s:.1f} s ({applied / build_s:,.0f} records/s "
            "through ProjectionStore.apply in chunks of 5,000).",
            f"{n:,} queries per kind, random command ids; times include decoding the jobs.",
        ],
        "raw": {"rows": rows, "jobs": total_jobs, "build_s": build_s},
    }
