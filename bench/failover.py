"""Row 4: failover after ``kill -9`` of a pod, and hand-over on SIGTERM, on Kafka.

Each trial starts a fresh group of 3 pods running 30 commands every second with a configured
group session timeout, waits until the partitions are spread, then stops the first pod
(kill -9 or SIGTERM). The victim's commands are those of the partitions its log says it owns
at that moment; measured from the signal: the first start of one of them on another pod, and
the moment every one of them has started again elsewhere (ledger). After the first kill -9
trial a replacement pod joins the 2 survivors: the time until it owns partitions is reported
as the scale-out join time.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from bench.common import Context, Row, read_ledger, wait_until
from bench.systems import bench_env, owned_partitions, start_system, stop_all

NAME = "failover"
TITLE = "4. Failover (kill -9) and hand-over (SIGTERM) on Kafka"
COMMANDS = 30


def sizes(quick: bool) -> tuple[int, int]:
    """(session timeout in ms, trials of each kind)."""
    return (3000, 1) if quick else (6000, 2)


def _trial(ctx: Context, kind: str, index: int, session_ms: int, join: bool) -> dict[str, Any]:
    from schedulerx.domain.partitioning import partition_for

    session_s = session_ms / 1000
    workdir = ctx.dir(f"{NAME}/{index}-{kind.replace(' ', '')}")
    ledger = workdir / "ledger"
    env = bench_env(ledger, COMMANDS)
    pods = start_system(ctx, "kafka", workdir, env, pods=3, session_timeout_ms=session_ms)
    kafka = pods[0].kafka
    assert kafka is not None
    victim, others = pods[0], pods[1:]
    row: dict[str, Any] = {"kind": kind, "session timeout s": session_s}
    try:
        time.sleep(3)
        parts = owned_partitions([victim])[victim.name]
        mine = {
            f"b{i}" for i in range(COMMANDS) if partition_for(f"b{i}", kafka.partitions) in parts
        }
        row["victim partitions"] = len(parts)
        row["its commands"] = len(mine)
        names = {p.name for p in others}
        t0 = time.time()
        if kind == "kill -9":
            victim.kill()
        else:
            victim.proc.send_signal(signal.SIGTERM)
        row.update(_back(ledger, mine, names, t0, session_s + 30))
        if kind == "SIGTERM":
            victim.stop()
        if join:
            newcomer = ctx.pod("pod-new", workdir, env, kafka)
            pods.append(newcomer)
            j0 = time.time()
            try:
                newcomer.wait_log("owns partitions", timeout=90)
                row["replacement owns partitions after s"] = round(time.time() - j0, 2)
            except TimeoutError:
                row["replacement owns partitions after s"] = "> 90"
    finally:
        stop_all(pods)
    verdict = ctx.check_ledger(NAME, f"trial {index} ({kind})", read_ledger(ledger))
    row["duplicates"] = verdict["duplicates"]
    return row


def _back(ledger: Path, mine: set[str], names: set[str], t0: float, limit: float) -> dict[str, Any]:
    """Seconds from ``t0`` to the first start of one of ``mine`` by ``names``, and to the
    moment each of them had started again there."""

    def after() -> list[Any]:
        return [
            r for r in read_ledger(ledger) if r.command_id in mine and r.at > t0 and r.pod in names
        ]

    out: dict[str, Any] = {"first start elsewhere s": None, "all its commands back s": None}
    if not mine:
        return out
    try:
        wait_until("a start elsewhere", lambda: bool(after()), limit, every=0.05)
        out["first start elsewhere s"] = round(min(r.at for r in after()) - t0, 3)
        wait_until(
            "every command back", lambda: {r.command_id for r in after()} >= mine, limit, every=0.1
        )
        firsts = [min(r.at for r in after() if r.command_id == c) for c in mine]
        out["all its commands back s"] = round(max(firsts) - t0, 3)
    except TimeoutError:
        pass
    return out


def run(ctx: Context) -> Row:
    """Alternate kill -9 and SIGTERM trials, each on a fresh 3-pod group."""
    session_ms, trials = sizes(ctx.quick)
    session_s = session_ms / 1000
    rows = [
        _trial(ctx, kind, i, session_ms, join=(i == 0))
        for i, kind in enumerate(["kill -9", "SIGTERM"] * trials)
    ]

    def worst(kind: str) -> float:
        vals = [r["first start elsewhere s"] for r in rows if r["kind"] == kind]
        return max((v if v is not None else float("inf")) for v in vals)

    kill, term = worst("kill -9"), worst("SIGTERM")
    targets = [
        {
            "target": f"failover after kill -9 <= session timeout + 1 s ({session_s + 1:g} s)",
            "value": f"{kill:.2f} s (worst of {trials})",
            "met": kill <= session_s + 1,
        },
        {
            "target": "SIGTERM hand-over <= 2 s",
            "value": f"{term:.2f} s (worst of {trials})",
            "met": term <= 2,
        },
    ]
    return {
        "title": TITLE,
        "tables": {"trials": rows},
        "targets": targets,
        "notes": [
            f"{COMMANDS} commands every second on 12 partitions, 3 pods, "
            f"SCHEDULERX_SESSION_TIMEOUT_MS={session_ms}.",
            "Cron granularity is 1 s: a start can only happen on a scheduled second (or a "
            "coalesced late run right after takeover), so figures include up to ~1 s of it.",
            "replacement owns partitions after s: a new pod joining the 2 survivors of the "
            "first kill -9 trial, from its launch to its first owned partitions.",
        ],
        "raw": {"rows": rows},
    }
