"""The same commands on APScheduler 3.x, the bar the benchmarks compare with.

``python -m bench.aps_app``: a ``BackgroundScheduler`` with the in-memory job store and its
default thread pool (10 workers), ``BENCH_COMMANDS`` jobs on ``BENCH_CRON`` (6 fields,
seconds first, turned into a ``CronTrigger``), each writing the same ledger line as
``bench.app`` (``<job id> <pod> <start> <lag>``) with lag = ``time.time()`` at entry minus the
run time APScheduler scheduled it for. APScheduler does not pass the scheduled run time to the
job function, so a thin executor subclass hands it over through a thread-local just before
APScheduler's own ``run_job`` calls the function (microseconds before entry; coalescing on, so
one run time per submission). Logs at INFO like ``schedulerx run``. Prints ``ready`` once
every job is added and the scheduler runs; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent  # type: ignore[import-untyped]
from apscheduler.executors.base import run_job  # type: ignore[import-untyped]
from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

LEDGER = os.environ["BENCH_LEDGER"]
COUNT = int(os.environ.get("BENCH_COMMANDS", "10"))
PREFIX = os.environ.get("BENCH_PREFIX", "b")
CRON = os.environ.get("BENCH_CRON", "*/1 * * * * *")
GRACE = float(os.environ.get("BENCH_GRACE", "30"))
POD = os.environ.get("BENCH_POD", "aps")

_local = threading.local()
_fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


class StampingExecutor(ThreadPoolExecutor):  # type: ignore[misc]
    """APScheduler's thread pool, telling the job function its scheduled run time."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def run() -> Any:
            _local.pending = list(run_times)
            return run_job(job, job._jobstore_alias, run_times, self._logger.name)

        def done(f: Any) -> None:
            exc = f.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, f.result())

        self._pool.submit(run).add_done_callback(done)


def command(command_id: str) -> None:
    """The job: one ledger line, the same work as ``bench.app``'s command."""
    now = time.time()
    scheduled: datetime = _local.pending.pop(0)
    lag = now - scheduled.timestamp()
    stamp = scheduled.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    os.write(_fd, f"{command_id}@{stamp} {POD} {now:.6f} {lag:.6f}\n".encode())


def trigger(cron: str) -> CronTrigger:
    """A CronTrigger (UTC) from a 6-field, seconds-first cron expression."""
    second, minute, hour, day, month, dow = cron.split()
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=dow,
        timezone=UTC,
    )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    missed = [0]

    def on_missed(event: JobExecutionEvent) -> None:
        missed[0] += 1

    scheduler = BackgroundScheduler(
        executors={"default": StampingExecutor()},
        job_defaults={"coalesce": True, "misfire_grace_time": int(GRACE)},
        timezone=UTC,
    )
    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    for i in range(COUNT):
        cid = f"{PREFIX}{i}"
        scheduler.add_job(command, trigger(CRON), args=[cid], id=cid)
    scheduler.start()
    print("ready", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    scheduler.shutdown(wait=True)
    print(f"missed {missed[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
