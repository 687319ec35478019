"""The schedulerx demo: three commands on second-level schedules, on the embedded log.

Run it with ``./dev demo`` (or ``python examples/demo.py [--seconds N] [--data-dir DIR]``). It
starts a pod, prints a line when each job starts and when it finishes, prints the job list
(completed runs plus the next 2 scheduled per command) every few seconds, then stops
gracefully and prints the final job list. ``schedulerx run examples/demo.py`` runs the same
scheduler as a long-lived pod.

Output contract (``tests/integration/test_demo.py`` relies on it): every line is written
whole, so lines from the worker threads never interleave; a job's lines are
``  started   <job id>`` and then ``  finished  <job id>  ok: ...`` or
``  finished  <job id>  failed: ...``; the last table, after ``-- final job list``, lists
every job with its status and ends with a blank line.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from schedulerx import Scheduler, StaticScheduleFetcher, current_job
from schedulerx.api.wiring import BackendConfig
from schedulerx.domain.job import Job

fetcher = StaticScheduleFetcher(
    {
        "hello": ("*/2 * * * * *", ["world"]),  # every 2 seconds
        "report": ("*/5 * * * * *", ["--short"]),  # every 5 seconds
        "flaky": ("*/3 * * * * *", []),  # every 3 seconds, fails now and then
    }
)
scheduler = Scheduler(fetcher, refresh_interval=timedelta(seconds=5))

_out = threading.Lock()


def say(text: str) -> None:
    """Write ``text`` and a newline in one go, so lines of different threads never mix."""
    with _out:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def shown(body: Callable[[Sequence[str]], str]) -> Callable[[Sequence[str]], None]:
    """Wrap a command body: a ``started`` line before it, a ``finished`` line after it.

    The body returns what it did (shown after ``ok:``); an exception is shown after
    ``failed:`` and raised on, so the job is recorded ``failed``.
    """

    def execute(params: Sequence[str]) -> None:
        job_id = current_job().id
        say(f"  started   {job_id}")
        try:
            result = body(params)
        except Exception as exc:
            say(f"  finished  {job_id}  failed: {exc}")
            raise
        say(f"  finished  {job_id}  ok: {result}")

    return execute


@scheduler.command("hello")
@shown
def hello(params: Sequence[str]) -> str:
    return f"hello {' '.join(params)}"


@scheduler.command("report", timeout=timedelta(seconds=3))
@shown
def report(params: Sequence[str]) -> str:
    time.sleep(0.3)  # pretend to work
    return f"report {' '.join(params)} done"


@scheduler.command("flaky")
@shown
def flaky(params: Sequence[str]) -> str:
    if random.random() < 0.4:
        raise RuntimeError("upstream returned 503")
    return "flaky ok"


def job_table(jobs: Sequence[Job]) -> str:
    """``jobs`` as a table: id, status, start time, error."""
    from schedulerx.cli.common import iso, table

    rows = [(j.id, j.status, iso(j.started_at), j.error or "") for j in jobs]
    return table(["job", "status", "started", "error"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to run")
    parser.add_argument("--data-dir", help="where the embedded log lives (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="schedulerx-demo-")
    scheduler.configure(BackendConfig(data_dir=Path(data_dir)))
    say(f"schedulerx demo: 3 commands on the embedded log in {data_dir}")
    scheduler.start()
    try:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            jobs = scheduler.list_jobs()
            say(f"\n-- job list (last 14 of {len(jobs)}) --\n{job_table(jobs[-14:])}\n")
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.stop()
    jobs = scheduler.list_jobs()
    say(f"\n-- final job list ({len(jobs)} jobs) --\n{job_table(jobs)}\n")
    counts: dict[str, int] = {}
    for j in jobs:
        counts[str(j.status)] = counts.get(str(j.status), 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    say(f"stopped. {len(jobs)} jobs: {summary}")
    say("next 2 scheduled per command:")
    for cid in scheduler.commands:
        nxt = [j.id for j in scheduler.list_jobs(cid, "scheduled")]
        say(f"  {cid}: {', '.join(nxt)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
