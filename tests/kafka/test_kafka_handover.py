"""Runs that a rebalance moves away from their pod are recorded as they really ended.

Pods join a group while long runs go on: cooperative rebalancing moves partitions away from
the pod running them. The old owner lets each run finish and reports it through the requests
inbox; the new owner records it. Judged by the commands' own ledgers (a start line per run,
an end line when its work is over) and the job list another process reads from the topic.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.kafka.fleet import Fleet, wait_until
from tests.support.procs import read_runs

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_runs_going_on_when_pods_join_end_succeeded_not_owner_lost(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    ends = tmp_path / "ends"
    env = {"CRON": "*/4 * * * * *", "SLEEP": "2.5", "LEDGER_END": str(ends)}
    with Fleet(tmp_path, kafka_bootstrap, commands=8, partitions=8, env=env) as fleet:
        fleet.start("pod-a", http=True)
        fleet.wait_joined()
        wait_until("runs to start", lambda: len(fleet.runs()) >= 8, 30)
        for pod_id in ("pod-b", "pod-c"):  # each join moves partitions away while runs go on
            wait_until("a run in progress", lambda: _in_progress(fleet, ends), 10, every=0.05)
            fleet.start(pod_id, http=True)
            fleet.wait_joined([fleet.pods[pod_id]])
        time.sleep(9)  # a few more rounds on the settled group
        cutoff = time.time() - 3.0  # runs started before this have ended by now
        wait_until(
            "the moved runs to be recorded",
            lambda: _unrecorded(fleet, cutoff) == [],
            20,
        )
        handed_over = sum(fleet.metric(p, "schedulerx_jobs_handed_over_total") for p in fleet.pods)
        jobs = fleet.jobs()
        assert fleet.stop_all() == {"pod-a": 0, "pod-b": 0, "pod-c": 0}

    runs = fleet.runs()
    ids = [r.job_id for r in runs]
    assert len(ids) == len(set(ids)), "a job ran twice"
    ended = {r.job_id for r in read_runs(ends)}
    settled = [r for r in runs if r.at < cutoff]
    assert settled and all(r.job_id in ended for r in settled)
    lost = {jid: j for jid, j in jobs.items() if "owner lost" in str(j.get("error") or "")}
    assert lost == {}, "runs that finished were recorded as owner lost"
    assert {jobs[r.job_id]["status"] for r in settled} == {"succeeded"}
    for r in settled:
        assert jobs[r.job_id]["owner"] == r.pod  # the run's own pod, not the new owner
    assert handed_over >= 1, "no run crossed a partition move: the test proved nothing"


def _in_progress(fleet: Fleet, ends: Path) -> bool:
    ended = {r.job_id for r in read_runs(ends)}
    return any(r.job_id not in ended for r in fleet.runs())


def _unrecorded(fleet: Fleet, cutoff: float) -> list[str]:
    jobs = fleet.jobs()
    return [
        r.job_id
        for r in fleet.runs()
        if r.at < cutoff and jobs.get(r.job_id, {}).get("status") != "succeeded"
    ]
