"""The Python API as the README's quick start uses it, in this process, on the embedded log.

``Scheduler.start`` / ``list_jobs`` / ``stop`` with a real pod (threads, RocksDB projection,
data dir in tmp_path), judged by what the commands recorded themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schedulerx import JobStatus, Scheduler, StaticScheduleFetcher, current_job

pytestmark = pytest.mark.slow


def test_start_list_jobs_and_stop_in_process(data_dir: Path) -> None:
    ran: list[str] = []
    lock = threading.Lock()
    scheduler = Scheduler(
        StaticScheduleFetcher({"tick": ("*/1 * * * * *", ["x"]), "broken": ("*/2 * * * * *", [])}),
        data_dir=data_dir,
        pod_id="api-test",
    )

    @scheduler.command("tick")
    def tick(params: Sequence[str]) -> None:
        assert list(params) == ["x"]
        with lock:
            ran.append(current_job().id)

    @scheduler.command("broken")
    def broken(_params: Sequence[str]) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(ValueError, match="already registered"):
        scheduler.command("tick")(tick)
    scheduler.start()
    try:
        with pytest.raises(RuntimeError, match="before start"):
            scheduler.command("late")(tick)
        time.sleep(4.2)
        now = datetime.now(UTC)
        jobs = scheduler.list_jobs()
        for cid in ("tick", "broken"):
            # The next 2: scheduled, or already claimed when due within the claim lead.
            upcoming = [j for j in jobs if j.command_id == cid and j.scheduled_at > now]
            assert len(upcoming) == 2, upcoming
            assert {j.status for j in upcoming} <= {JobStatus.SCHEDULED, JobStatus.CLAIMED}
        with lock:
            seen = set(ran)
        done = {j.id for j in scheduler.list_jobs("tick", JobStatus.SUCCEEDED)}
        assert seen and seen <= done  # a run that just finished may still be writing
        assert all(j.owner == "api-test" for j in scheduler.list_jobs("tick", "succeeded"))
        failed = scheduler.list_jobs("broken", "failed")
        assert failed and {j.error for j in failed} == {"RuntimeError: disk full"}
        with pytest.raises(ValueError, match="bogus"):
            scheduler.list_jobs(status="bogus")
    finally:
        scheduler.stop()
    assert scheduler.pod is None
    # Stopped: the list comes from the log, and holds everything the pod recorded.
    after = {j.id: j.status for j in scheduler.list_jobs()}
    assert {jid for jid, s in after.items() if s is JobStatus.SUCCEEDED} == set(ran)
    assert not [jid for jid, s in after.items() if s in (JobStatus.CLAIMED, JobStatus.RUNNING)]
