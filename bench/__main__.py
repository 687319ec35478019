"""``python -m bench [--quick] [--only ROW[,ROW]] [--out docs/performance.md] [--kafka B]``.

Runs the rows (in this order: kafka_floor, fire_lag, throughput, herd, failover, replay, query,
memory; ``--only`` also takes their numbers 1-8 from the issue), with one Kafka broker for the
whole run (or the one ``--kafka`` names), then writes the report (with ``--only``, the
other rows of an existing report at ``--out`` are kept, marked as from their earlier run).
``--quick`` is a smoke mode: tiny sizes, and the rows run concurrently, so it finishes in
about a minute; its figures mean nothing. A quick run has a budget (``BENCH_QUICK_BUDGET_S``,
default 300 s): a row still running then is failed, every thread's stack and the log tails of
the processes still alive are printed, and everything started is stopped. Exit code 1 when a
row failed or any ledger showed a duplicate start.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import (
    failover,
    fire_lag,
    herd,
    kafka_floor,
    memory,
    query,
    replay,
    report,
    throughput,
)
from bench.common import Context

ROWS: dict[str, ModuleType] = {
    "kafka_floor": kafka_floor,
    "fire_lag": fire_lag,
    "throughput": throughput,
    "herd": herd,
    "failover": failover,
    "replay": replay,
    "query": query,
    "memory": memory,
}
NUMBERS = {
    "1": "fire_lag",
    "2": "throughput",
    "3": "herd",
    "4": "failover",
    "5": "replay",
    "6": "query",
    "7": "memory",
    "8": "kafka_floor",
}
NEEDS_KAFKA = {"kafka_floor", "fire_lag", "throughput", "herd", "failover", "replay"}


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, ~1 minute")
    p.add_argument("--only", help="comma-separated rows (names or numbers 1-8)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("docs/performance.md"),
        help="report path; .json and -fire-lag.png are written beside it",
    )
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="use this broker instead of starting one")
    args = p.parse_args(argv)
    if args.only:
        chosen = []
        for item in args.only.split(","):
            name = NUMBERS.get(item.strip(), item.strip())
            if name not in ROWS:
                p.error(f"unknown row {item!r}; rows: {', '.join(ROWS)} (or 1-8)")
            chosen.append(name)
        args.rows = [r for r in ROWS if r in chosen]
    else:
        args.rows = list(ROWS)
    return args


def _run_row(ctx: Context, name: str, results: dict[str, Any]) -> None:
    t0 = time.monotonic()
    _say(f"{name}: start")
    try:
        results[name] = ROWS[name].run(ctx)
        results[name]["seconds"] = time.monotonic() - t0
        _say(f"{name}: done in {time.monotonic() - t0:.0f} s")
    except Exception as exc:
        results[name] = {"title": ROWS[name].TITLE, "error": f"{type(exc).__name__}: {exc}"}
        _say(f"{name}: FAILED\n{traceback.format_exc()}")


def _run_concurrently(ctx: Context, rows: list[str], results: dict[str, Any]) -> None:
    """Quick mode: every row in a thread of its own, within the budget. A row still running
    when it is spent gets an error naming the budget; the stacks of every thread and the log
    tails of the processes still alive go to stderr (the caller's ``ctx.close`` stops them)."""
    budget = float(os.environ.get("BENCH_QUICK_BUDGET_S", "300"))
    live: dict[str, Any] = {}  # a late row's thread may still write here; results stays put
    threads = {
        name: threading.Thread(target=_run_row, args=(ctx, name, live), daemon=True)
        for name in rows
    }
    for t in threads.values():
        t.start()
    end = time.monotonic() + budget
    for t in threads.values():
        t.join(max(0.0, end - time.monotonic()))
    late = [name for name, t in threads.items() if t.is_alive()]
    results.update({name: live[name] for name in rows if name not in late})
    if not late:
        return
    _say(f"quick budget of {budget:g} s spent; still running: {', '.join(late)}; stacks:")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    for p in ctx.procs:
        if p.alive:
            _say(f"log tail of {p.name} (pid {p.pid}, still alive):\n{p.tail(15)}")
    for name in late:
        results[name] = {
            "title": ROWS[name].TITLE,
            "error": f"did not finish within the quick budget of {budget:g} s",
        }


def _earlier_rows(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """With ``--only``: the other rows of the report already at ``--out`` (same mode), so a
    partial re-run updates its rows and keeps the rest (marked with their run's date)."""
    previous = args.out.with_suffix(".json")
    if not args.only or not previous.exists():
        return {}
    old = json.loads(previous.read_text())
    if old.get("mode") != ("quick" if args.quick else "full"):
        return {}
    kept = {
        k: {**v, "from_run": v.get("from_run") or old["generated"]}
        for k, v in old["rows"].items()
        if k not in args.rows
    }
    ctx.ledgers[:0] = [c for c in old["ledger"]["checks"] if c["row"] in kept]
    ctx.incidents[:0] = [i for i in old.get("incidents", []) if i.startswith(tuple(kept))]
    return kept


def main(argv: list[str] | None = None) -> int:
    """Run the selected rows and write the report; 0 when all ran and no duplicate start."""
    args = parse(argv)
    # SIGTERM ends the run like Ctrl-C: the finally below stops every process it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ctx = Context(quick=args.quick, external_bootstrap=args.kafka)
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    try:
        if NEEDS_KAFKA & set(args.rows):
            _say(f"kafka broker: {ctx.bootstrap}")
        if args.quick:
            # Import everything before the threads do: concurrent first imports deadlock.
            import kafka  # noqa: F401
            import psutil  # type: ignore[import-untyped]  # noqa: F401

            import projections  # noqa: F401
            import schedulerx.api.wiring
            import schedulerx.backends.kafka
            import schedulerx.domain.partitioning
            import schedulerx.ports.event_log  # noqa: F401

            _run_concurrently(ctx, args.rows, results)
        else:
            for name in args.rows:
                _run_row(ctx, name, results)
    finally:
        ctx.close()
    elapsed = time.monotonic() - t0
    ordered = {name: results[name] for name in args.rows if name in results}
    kept = _earlier_rows(args, ctx)
    merged = {
        name: ordered.get(name) or kept[name] for name in ROWS if name in ordered or name in kept
    }
    paths = report.write(args.out, merged, ctx, {"quick": args.quick, "rows": args.rows}, elapsed)
    dupes = sum(v["duplicates"] for v in ctx.ledgers)
    failed = [n for n, r in ordered.items() if "error" in r]
    for r in ordered.values():
        for t in r.get("targets", []):
            _say(f"{'MET   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']}")
    _say(
        f"wrote {', '.join(str(p) for p in paths.values())} in {elapsed / 60:.1f} min; "
        f"duplicates={dupes}; failed rows={failed or 'none'}"
    )
    return 1 if failed or dupes else 0


if __name__ == "__main__":
    sys.exit(main())
