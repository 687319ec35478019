"""The schedulerx app the benchmarks run as pods (``schedulerx run bench/app.py:make_scheduler``).

Each command writes one ledger line per run, first thing in ``execute()``::

    <job id> <pod id> <start unix time> <lag seconds>

where lag = ``time.time()`` at entry minus ``current_job().scheduled_at``. Lines are written
with one ``write(2)`` on an ``O_APPEND`` descriptor (atomic for lines this short, and in the
page cache once ``write`` returns, so a ``kill -9`` of the pod loses none); not fsync'ed, so
the ledger costs the command a few microseconds, not a disk flush.

Configured by environment: ``BENCH_LEDGER`` (required), ``BENCH_COMMANDS`` (count),
``BENCH_PREFIX`` (command id prefix, default ``b``), ``BENCH_CRON`` (6 fields, seconds
first), ``BENCH_GRACE`` (misfire grace, seconds), ``BENCH_WORKERS`` (executor threads).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import timedelta

from schedulerx import Scheduler, StaticScheduleFetcher, current_job

LEDGER = os.environ["BENCH_LEDGER"]
COUNT = int(os.environ.get("BENCH_COMMANDS", "10"))
PREFIX = os.environ.get("BENCH_PREFIX", "b")
CRON = os.environ.get("BENCH_CRON", "*/1 * * * * *")
GRACE = float(os.environ.get("BENCH_GRACE", "30"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "8"))

_fd: int | None = None


def record(pod: str) -> None:
    """Append this run's ledger line (called first thing in ``execute``)."""
    global _fd
    now = time.time()
    job = current_job()
    lag = now - job.scheduled_at.timestamp()
    if _fd is None:
        _fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{job.id} {pod} {now:.6f} {lag:.6f}\n".encode())


class BenchCommand:
    """Writes its ledger line and returns (the cheapest possible command)."""

    def __init__(self, command_id: str, pod: str):
        self.id = command_id
        self._pod = pod

    def execute(self, params: Sequence[str]) -> None:
        record(self._pod)


def make_scheduler() -> Scheduler:
    """The pod: ``BENCH_COMMANDS`` commands ``<prefix>0..`` on ``BENCH_CRON``."""
    ids = [f"{PREFIX}{i}" for i in range(COUNT)]
    scheduler = Scheduler(
        StaticScheduleFetcher({cid: (CRON, []) for cid in ids}),
        workers=WORKERS,
        stop_grace=timedelta(seconds=10),
    )
    pod = os.environ.get("SCHEDULERX_POD_ID") or scheduler.pod_id
    for cid in ids:
        scheduler.register(BenchCommand(cid, pod), misfire_grace=timedelta(seconds=GRACE))
    return scheduler
