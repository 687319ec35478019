"""A test app whose commands write their own ledger: ``<job id> <pod id> <time>`` per run.

The ledger is the evidence the guarantee tests judge by (not the scheduler's opinion): it is
appended with O_APPEND and fsync'ed before ``execute`` returns; ``<time>`` is the wall clock
(Unix seconds) when the run started. Configured by environment:

- ``LEDGER``: the ledger file (required)
- ``LEDGER_END``: optional second ledger, same line format, appended when a run's work is
  over (after SLEEP, before a planned failure is raised; ``<time>`` is then the end time).
  A run with a start line in ``LEDGER`` and none here never finished (killed). Kept apart
  so ``LEDGER`` stays one line per start.
- ``COMMANDS``: how many commands ``c0 .. cN-1`` (default 3)
- ``CRON``: their schedule (default every second, ``*/1 * * * * *``)
- ``SLEEP``: seconds each run takes (default 0)
- ``MISFIRE_GRACE``: seconds (default 30)
- ``TIMEOUT``: per-command timeout in seconds (default none)
- ``FAIL_EVERY``: fail runs whose second is a multiple of this (default never)
- ``FETCHER``: ``static`` (default: every command on ``CRON``, re-applied each refresh) or
  ``log`` (``LogScheduleFetcher``: schedules are whatever ``schedulerx schedule set`` or other
  systems' requests put on the log; set them before starting pods)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import timedelta

from schedulerx import (
    LogScheduleFetcher,
    ScheduleFetcher,
    Scheduler,
    StaticScheduleFetcher,
    current_job,
)

LEDGER = os.environ["LEDGER"]
LEDGER_END = os.environ.get("LEDGER_END")
COUNT = int(os.environ.get("COMMANDS", "3"))
CRON = os.environ.get("CRON", "*/1 * * * * *")
SLEEP = float(os.environ.get("SLEEP", "0"))
GRACE = float(os.environ.get("MISFIRE_GRACE", "30"))
TIMEOUT = os.environ.get("TIMEOUT")
FAIL_EVERY = int(os.environ.get("FAIL_EVERY", "0"))
FETCHER = os.environ.get("FETCHER", "static")


def _record(pod: str, ledger: str = LEDGER) -> None:
    job = current_job()
    line = f"{job.id} {pod} {time.time():.3f}\n".encode()
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


class LedgerCommand:
    """Writes the ledger line, sleeps SLEEP seconds, writes the LEDGER_END line (if set),
    then maybe fails."""

    def __init__(self, command_id: str, pod: str):
        self.id = command_id
        self._pod = pod

    def execute(self, params: Sequence[str]) -> None:
        _record(self._pod)
        if SLEEP:
            time.sleep(SLEEP)
        if LEDGER_END:
            _record(self._pod, LEDGER_END)
        if FAIL_EVERY and current_job().scheduled_at.second % FAIL_EVERY == 0:
            raise RuntimeError("planned failure")


def make_scheduler() -> Scheduler:
    ids = [f"c{i}" for i in range(COUNT)]
    if FETCHER not in ("static", "log"):
        raise ValueError(f"FETCHER must be 'static' or 'log', got {FETCHER!r}")
    fetcher: ScheduleFetcher = (
        LogScheduleFetcher()
        if FETCHER == "log"
        else StaticScheduleFetcher({cid: (CRON, []) for cid in ids})
    )
    scheduler = Scheduler(
        fetcher,
        refresh_interval=timedelta(seconds=2),
        stop_grace=timedelta(seconds=10),
    )
    pod = os.environ.get("SCHEDULERX_POD_ID") or scheduler.pod_id
    for cid in ids:
        scheduler.register(
            LedgerCommand(cid, pod),
            misfire_grace=timedelta(seconds=GRACE),
            timeout=timedelta(seconds=float(TIMEOUT)) if TIMEOUT else None,
        )
    return scheduler
