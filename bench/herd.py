"""Row 3: thundering herd: 10,000 commands due in the same second.

Every command gets the cron ``S M H * * *`` of one second chosen far enough ahead for the pods
to start and plan them (the margin; when the pods had not planned all of them by then, the
report says so). Measured from the ledger: time from the due second until the last of them
started, how many never started (missed: default misfire grace, 30 s), duplicates. Run on the
embedded log (1 pod) and on Kafka with 1 and 3 pods.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import Context, Row, next_second, read_ledger, sleep_until, summary_ms
from bench.systems import Planned, bench_env, start_system, stop_all

NAME = "herd"
TITLE = "3. Thundering herd: many commands due in the same second"


def sizes(quick: bool) -> tuple[int, dict[str, float]]:
    """(commands, margin in seconds from launch to the due second per system)."""
    if quick:
        return 200, {"kafka-1": 10.0}
    return 10_000, {"embedded": 20.0, "kafka-1": 25.0, "kafka-3": 40.0}


def _one(ctx: Context, system: str, n: int, margin: float) -> dict[str, Any]:
    due = next_second(time.time() + margin)
    at = datetime.fromtimestamp(due, UTC)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    cron = f"{at.second} {at.minute} {at.hour} * * *"
    workdir = ctx.dir(f"{NAME}/{system}")
    ledger = workdir / "ledger"
    launched = time.time()
    procs = start_system(ctx, system, workdir, bench_env(ledger, n, cron))
    planned_at = None
    planned = Planned(procs)
    try:
        while time.time() < due - 0.5:
            if len(planned.ids(at, at + timedelta(seconds=1))) >= n:
                planned_at = time.time()
                break
            time.sleep(0.5)
        planned.close()
        deadline = due + 60
        while time.time() < deadline:
            runs = [r for r in read_ledger(ledger) if r.job_id.endswith(f"@{stamp}")]
            if len({r.job_id for r in runs}) >= n:
                break
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        planned.close()
        stop_all(procs)
    all_runs = read_ledger(ledger)
    verdict = ctx.check_ledger(NAME, system, all_runs)
    runs = [r for r in all_runs if r.job_id.endswith(f"@{stamp}")]
    started = {r.job_id for r in runs}
    lags = summary_ms([r.lag for r in runs])
    last = max((r.at for r in runs), default=float("nan"))
    return {
        "system": system,
        "commands": n,
        "planned s before due": round(due - planned_at, 2) if planned_at else "not by due",
        "launch -> planned s": round(planned_at - launched, 2) if planned_at else None,
        "started": len(started),
        "missed": n - len(started),
        "duplicates": verdict["duplicates"],
        "first start ms": min(r.lag for r in runs) * 1000 if runs else None,
        "p50 lag ms": lags["p50"],
        "all started after s": round(last - due, 3),
    }


def run(ctx: Context) -> Row:
    """The herd on each system."""
    n, margins = sizes(ctx.quick)
    rows = []
    for system, margin in margins.items():
        sleep_until(next_second(time.time()))
        rows.append(_one(ctx, system, n, margin))
    targets = [
        {
            "target": f"herd of {n:,} all started in <= 10 s, 0 missed, 0 duplicates "
            f"({r['system']})",
            "value": f"{r['all started after s']} s, {r['missed']} missed, "
            f"{r['duplicates']} duplicates",
            "met": bool(
                r["all started after s"] <= 10 and r["missed"] == 0 and r["duplicates"] == 0
            ),
        }
        for r in rows
    ]
    return {
        "title": TITLE,
        "tables": {"herd": rows},
        "targets": targets,
        "notes": [
            "Commands write the ledger line and return; 8 executor threads per pod.",
            "planned s before due: how long before the due second every job of the herd was "
            "on the log as scheduled (from launch; planning is not part of the herd time).",
        ],
        "raw": {"rows": rows},
    }
