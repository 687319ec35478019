"""Row 7: resident memory of a pod with 1k, 10k and 100k registered commands, beside
APScheduler holding the same number of jobs.

The pod (embedded log, the default backend) runs ``bench.app`` with N commands on a daily
cron that does not fire during the measurement; RSS is read once it has planned them all
(its projection, read as the CLI reads it, holds 2 x N jobs ``scheduled``) and has settled
for 2 s. APScheduler gets N jobs with the same cron in its in-memory store; RSS is read 2 s
after it printed ready. A process of each with 1 command gives the fixed cost.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Context, Row, wait_until
from bench.systems import Planned, bench_env, start_system, stop_all

NAME = "memory"
TITLE = "7. Resident memory per registered command"
CRON = "0 0 3 * * *"


def sizes(quick: bool) -> list[int]:
    """Command counts (1 first: the fixed cost)."""
    return [1, 100, 1000] if quick else [1, 1_000, 10_000, 100_000]


def _rss(ctx: Context, system: str, n: int) -> dict[str, Any]:
    workdir = ctx.dir(f"{NAME}/{system}-{n}")
    env = bench_env(workdir / "ledger", n, CRON)
    t0 = time.time()
    procs = start_system(ctx, system, workdir, env, timeout=600)
    try:
        if system != "apscheduler":
            planned = Planned(procs)
            try:
                wait_until(
                    f"{n} commands planned",
                    lambda: len(planned.ids()) >= 2 * n,
                    timeout=900,
                    every=2.0,
                )
            finally:
                planned.close()
        ready = time.time() - t0
        time.sleep(2)
        rss = procs[0].rss_mb()
    finally:
        stop_all(procs)
    return {"system": system, "commands": n, "RSS MiB": rss, "ready after s": ready}


def run(ctx: Context) -> Row:
    """RSS of each system at each size, and the marginal MiB per 10k commands."""
    counts = sizes(ctx.quick)
    rows = [_rss(ctx, system, n) for n in counts for system in ("embedded", "apscheduler")]
    by = {(r["system"], r["commands"]): r["RSS MiB"] for r in rows}
    for r in rows:
        fixed = by[(r["system"], 1)]
        r["per 10k commands MiB"] = (
            (r["RSS MiB"] - fixed) / (r["commands"] - 1) * 10_000 if r["commands"] > 1 else None
        )
    big = counts[-1]
    slope = next(
        r["per 10k commands MiB"]
        for r in rows
        if r["system"] == "embedded" and r["commands"] == big
    )
    at10k = by.get(("embedded", 10_000))
    aps_slope = next(
        r["per 10k commands MiB"]
        for r in rows
        if r["system"] == "apscheduler" and r["commands"] == big
    )
    targets = [
        {
            "target": "<= 50 MB resident per 10k commands (marginal, schedulerx pod)",
            "value": f"{slope:.1f} MiB per 10k (from 1 to {big:,} commands; "
            f"APScheduler {aps_slope:.1f})",
            "met": slope <= 50,
        }
    ]
    if at10k is not None:
        targets.append(
            {
                "target": "<= 50 MB resident for a pod with 10k commands (whole process)",
                "value": f"{at10k:.1f} MiB (APScheduler {by[('apscheduler', 10_000)]:.1f})",
                "met": at10k <= 50,
            }
        )
    return {
        "title": TITLE,
        "tables": {"memory": rows},
        "targets": targets,
        "notes": [
            "per 10k commands = (RSS(N) - RSS(1)) / (N - 1) x 10,000: the marginal cost.",
            "The schedulerx pod holds, per command: its registration, the book entry with "
            "the schedule and its 2 scheduled jobs, the fetcher's schedule, and RocksDB's "
            "block cache / memtables (shared).",
        ],
        "raw": {"rows": rows},
    }
