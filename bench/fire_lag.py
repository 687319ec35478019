"""Row 1: fire lag (scheduled second -> ``execute()`` entered) at 10, 100 and 500 fires/s.

N commands at ``*/1 * * * * *`` give N fires/s. Each system (schedulerx embedded with 1 pod,
Kafka with 1 and 3 pods, APScheduler 3.x ``BackgroundScheduler``) runs the same commands at the
same rates, one after another in the same run; the lag is measured inside the command
(``time.time()`` minus the scheduled second, ``bench.app`` / ``bench.aps_app``) over a steady
window after a warm-up. CPU seconds per 1,000 fires come from the processes' ``cpu_times``.
"""

from __future__ import annotations

import math
from typing import Any

from bench.common import Context, Row, percentile, ratio, read_ledger, summary_ms
from bench.systems import SYSTEMS, bench_env, start_system, steady, stop_all

NAME = "fire_lag"
TITLE = "1. Fire lag: scheduled time -> execute() entered"


def sizes(quick: bool) -> tuple[list[int], float]:
    """(rates in fires/s, window in seconds)."""
    return ([10], 2.0) if quick else ([10, 100, 500], 12.0)


def run(ctx: Context) -> Row:
    """Every system at every rate; lag percentiles, completeness and CPU per 1,000 fires."""
    rates, window = sizes(ctx.quick)
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    ctx.samples[NAME] = {}
    for rate in rates:
        for system in SYSTEMS:
            label = f"{system} @ {rate}/s"
            workdir = ctx.dir(f"fire_lag/{system}-{rate}")
            ledger = workdir / "ledger"
            try:
                procs = start_system(ctx, system, workdir, bench_env(ledger, rate))
            except Exception as exc:
                ctx.incident(f"{NAME}: {label}: not measured: {exc}")
                rows.append({"system": system, "fires/s": rate, "runs": "not measured"})
                continue
            try:
                m = steady(procs, ledger, rate, window)
            finally:
                stop_all(procs)
            ctx.check_ledger(NAME, label, read_ledger(ledger))
            lag = summary_ms(m["lags"])
            ctx.samples[NAME][label] = m["lags"]
            rows.append(
                {
                    "system": system,
                    "fires/s": rate,
                    "runs": f"{m['ran']}/{m['expected']}",
                    "p50 ms": lag["p50"],
                    "p99 ms": lag["p99"],
                    "p99.9 ms": lag["p99.9"],
                    "max ms": lag["max"],
                    "CPU s / 1k fires": m["cpu_per_1k"],
                }
            )
            raw[label] = {
                **lag,
                "expected": m["expected"],
                "ran": m["ran"],
                "cpu_per_1k": m["cpu_per_1k"],
                "quantiles_ms": [
                    percentile(sorted(x * 1000 for x in m["lags"]), q) for q in range(101)
                ],
            }
    aps = {r["fires/s"]: r for r in rows if r["system"] == "apscheduler"}
    for r in rows:
        base = aps.get(r["fires/s"])
        r["p99 / APS p99"] = (
            ratio(r.get("p99 ms", math.nan), base.get("p99 ms", math.nan)) if base else math.nan
        )
    probe = 100 if 100 in rates else rates[-1]
    targets = []
    for system in ("embedded", "kafka-1", "kafka-3"):
        mine = next(r for r in rows if r["system"] == system and r["fires/s"] == probe)
        bar = aps[probe].get("p99 ms", math.nan) if probe in aps else math.nan
        if "p99 ms" not in mine:
            targets.append(
                {
                    "target": f"fire lag p99 at {probe} fires/s <= APScheduler's ({system})",
                    "value": "not measured",
                    "met": False,
                }
            )
            continue
        targets.append(
            {
                "target": f"fire lag p99 at {probe} fires/s <= APScheduler's ({system})",
                "value": f"{mine['p99 ms']:.1f} ms vs {bar:.1f} ms "
                f"(x{ratio(mine['p99 ms'], bar):.2f})",
                "met": bool(mine["p99 ms"] <= bar),
            }
        )
    return {
        "title": TITLE,
        "tables": {"fire lag": rows},
        "targets": targets,
        "notes": [
            f"Window: {window:g} s of scheduled seconds after a 3 s warm-up, per system and "
            "rate; runs = distinct jobs of the window found in the ledger / expected.",
            "CPU s / 1k fires: user+system CPU of the pod (or APScheduler) processes over the "
            "window divided by the fires; the Kafka broker's CPU is not included.",
            "Both schedulers log at INFO to a file (the default of `schedulerx run`; "
            "APScheduler configured the same); executor pools at their defaults "
            "(schedulerx 8 workers, APScheduler 10).",
        ],
        "raw": raw,
    }
