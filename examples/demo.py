"""The schedulerx demo: three commands on second-level schedules, on the embedded log.

Run it with ``./dev demo`` (or ``python examples/demo.py [--seconds N]``) — it starts a pod,
shows jobs starting and finishing, prints the job list (completed runs plus the next 2
scheduled per command) every few seconds, then stops gracefully. ``schedulerx run
examples/demo.py`` runs the same scheduler as a long-lived pod.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from schedulerx import Scheduler, StaticScheduleFetcher, current_job
from schedulerx.api.wiring import BackendConfig

fetcher = StaticScheduleFetcher(
    {
        "hello": ("*/2 * * * * *", ["world"]),  # every 2 seconds
        "report": ("*/5 * * * * *", ["--short"]),  # every 5 seconds
        "flaky": ("*/3 * * * * *", []),  # every 3 seconds, fails now and then
    }
)
scheduler = Scheduler(fetcher, refresh_interval=timedelta(seconds=5))


@scheduler.command("hello")
def hello(params: Sequence[str]) -> None:
    print(f"  hello {' '.join(params)}  (job {current_job().id})", flush=True)


@scheduler.command("report", timeout=timedelta(seconds=3))
def report(params: Sequence[str]) -> None:
    time.sleep(0.3)  # pretend to work
    print(f"  report {' '.join(params)} done  (job {current_job().id})", flush=True)


@scheduler.command("flaky")
def flaky(params: Sequence[str]) -> None:
    if random.random() < 0.4:
        raise RuntimeError("upstream returned 503")
    print(f"  flaky ok  (job {current_job().id})", flush=True)


def show_jobs() -> None:
    from schedulerx.cli.common import iso, table

    jobs = scheduler.list_jobs()
    rows = [(j.id, j.status, iso(j.started_at), j.error or "") for j in jobs[-14:]]
    print(table(["job", "status", "started", "error"], rows), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to run")
    parser.add_argument("--data-dir", help="where the embedded log lives (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="schedulerx-demo-")
    scheduler.configure(BackendConfig(data_dir=Path(data_dir)))
    print(f"schedulerx demo: 3 commands on the embedded log in {data_dir}", flush=True)
    scheduler.start()
    try:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            print(f"\n-- job list (last 14 of {len(scheduler.list_jobs())}) --", flush=True)
            show_jobs()
            print(flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.stop()
    jobs = scheduler.list_jobs()
    counts: dict[str, int] = {}
    for j in jobs:
        counts[str(j.status)] = counts.get(str(j.status), 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"\nstopped. {len(jobs)} jobs: {summary}")
    print("next 2 scheduled per command:")
    for cid in scheduler.commands:
        nxt = [j.id for j in scheduler.list_jobs(cid, "scheduled")]
        print(f"  {cid}: {', '.join(nxt)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
