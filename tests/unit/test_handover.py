"""A run that outlives its pod's ownership of the partition is recorded as it really ended.

Pure bookkeeping first (Orphans, Foreign), then real pods (loop, timers, executor, real
clock) on the in-memory log acting as a shared one (``exclusive=False``), with partitions
taken away and given back as a rebalance would, and reports sent as the other side would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from projections import MemoryView
from schedulerx import JobStatus, Policy, StaticScheduleFetcher, current_job
from schedulerx.api.command import FunctionCommand, Registration
from schedulerx.domain.events import JobChanged, encode, job_key, new_event_id
from schedulerx.domain.job import Job, job_id
from schedulerx.domain.partitioning import partition_for
from schedulerx.domain.requests import Request, RunReport, decode_request, encode_request
from schedulerx.engine.config import PodConfig
from schedulerx.engine.handover import Foreign, Orphans
from schedulerx.engine.pod import Pod
from schedulerx.engine.runner import Outcome
from schedulerx.testing.memory_log import MemoryLog

S = JobStatus
T = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
YEARLY = "0 0 1 1 *"  # nothing of its own fires while a test runs


def running(owner: str = "pod-a", at: datetime = T, attempt: int = 1) -> Job:
    return Job(
        id=job_id("backup", at),
        command_id="backup",
        scheduled_at=at,
        status=S.RUNNING,
        owner=owner,
        started_at=at,
        attempt=attempt,
    )


# -- bookkeeping -----------------------------------------------------------------------------


def test_an_adopted_run_is_reported_running_each_interval_then_its_outcome_at_once() -> None:
    orphans = Orphans("pod-a", interval_s=1.0)
    job = running()
    orphans.adopt(job)
    first, _ = orphans.due(0.0, {job.id: job})
    assert [(r.status, r.job_id, r.pod, r.attempt) for r in first] == [
        ("running", job.id, "pod-a", 1)
    ]
    assert orphans.due(0.5, {job.id: job}) == ([], [])
    assert [r.status for r in orphans.due(1.0, {job.id: job})[0]] == ["running"]
    orphans.outcome(Outcome("succeeded", job, T + timedelta(seconds=9)))
    [done], _ = orphans.due(1.1, {job.id: job})
    assert (done.status, done.finished_at, done.started_at) == (
        "succeeded",
        T + timedelta(seconds=9),
        T,
    )


@pytest.mark.parametrize(
    "recorded",
    [
        running().to(S.SUCCEEDED, finished_at=T),  # the new owner recorded it
        running().to(S.FAILED, finished_at=T, error="owner lost (pod-a, running)"),
        running().to(S.SCHEDULED, attempt=2, owner=None),  # recovered as a retry
    ],
)
def test_reports_stop_once_the_projection_shows_the_run_settled(recorded: Job) -> None:
    orphans = Orphans("pod-a")
    orphans.adopt(running())
    assert orphans.due(0.0, {recorded.id: recorded}) == ([], [])
    assert len(orphans) == 0


def test_an_outcome_nobody_records_is_given_up_after_a_bound() -> None:
    orphans = Orphans("pod-a", interval_s=1.0, give_up_s=10.0)
    job = running()
    orphans.adopt(job)
    orphans.outcome(Outcome("failed", job, T, "boom"))
    sent = 0
    for tick in range(12):
        reports, given_up = orphans.due(float(tick), {job.id: job})
        sent += len(reports)
        if given_up:
            assert given_up == [job] and tick == 10
            break
    assert sent == 10 and len(orphans) == 0


def test_a_reclaimed_run_hands_back_what_is_left_to_record() -> None:
    orphans = Orphans("pod-a")
    job = running()
    orphans.adopt(job)
    started = Outcome("running", job, T)
    finished = Outcome("succeeded", job, T + timedelta(seconds=1))
    orphans.outcome(started)
    orphans.outcome(finished)
    assert orphans.reclaim(job.id) == [started, finished]
    assert job.id not in orphans


def test_foreign_runs_expire_a_lease_after_the_last_report() -> None:
    foreign = Foreign(lease_s=5.0)
    foreign.watch("a", 0.0)
    foreign.watch("b", 0.0)
    assert foreign.alive() == []  # left behind, not yet shown running: maybe dead
    foreign.heard("a", 4.0)
    assert foreign.alive() == ["a"]
    assert foreign.expired(4.9) == []
    assert foreign.expired(5.0) == ["b"]
    assert foreign.expired(8.9) == []
    assert foreign.expired(9.0) == ["a"]
    assert foreign.ids() == []


def test_a_report_rides_in_a_request_and_must_name_a_job_of_its_command() -> None:
    report = RunReport(job_id=running().id, attempt=1, pod="pod-a", status="running", started_at=T)
    raw = encode_request(Request(command_id="backup", report=report))
    assert decode_request(raw).report == report
    with pytest.raises(ValueError, match="not of command"):
        decode_request(encode_request(Request(command_id="other", report=report)))


# -- pods ------------------------------------------------------------------------------------


def _pod(log: MemoryLog, pod_id: str, execute: Callable[[], None] | None = None) -> Pod:
    def run(_params: Sequence[str]) -> None:
        if execute is not None:
            execute()

    regs = {"backup": Registration(FunctionCommand("backup", run), Policy())}
    fetcher = StaticScheduleFetcher({"backup": (YEARLY, [])})
    cfg = PodConfig(pod_id=pod_id, refresh_interval=timedelta(seconds=0.5))
    return Pod(log, MemoryView, regs, fetcher, cfg)


def _put(log: MemoryLog, job: Job) -> None:
    event = JobChanged(event_id=new_event_id(), pod=job.owner or "", ts=T, job=job)
    log.append(partition_for(job.command_id, log.partitions), [(job_key(job.id), encode(event))])


def _wait(what: str, check: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _report(job: Job, status: str, **kw: object) -> bytes:
    report = RunReport(
        job_id=job.id,
        attempt=job.attempt,
        pod=job.owner or "",
        status=status,  # type: ignore[arg-type]
        started_at=job.started_at or job.scheduled_at,
        **kw,  # type: ignore[arg-type]
    )
    return encode_request(Request(command_id=job.command_id, report=report))


@pytest.mark.slow
def test_a_new_owner_records_a_reported_run_as_it_ended_and_a_silent_one_as_owner_lost() -> None:
    log = MemoryLog(4, exclusive=False)
    now = datetime.now(UTC).replace(microsecond=0)
    reported = running("old-pod", now - timedelta(seconds=3))
    silent = running("old-pod", now - timedelta(seconds=2))
    for job in (reported, silent):
        _put(log, job)
    pod = _pod(log, "new-pod")
    started = time.time()
    pod.start()
    try:
        for _ in range(7):  # 7 s of reports: longer than the 5 s lease
            log.submit("backup", _report(reported, "running"))
            time.sleep(1)
        finished = datetime.now(UTC)
        log.submit("backup", _report(reported, "succeeded", finished_at=finished))
        _wait("the reported run recorded", lambda: pod.store.job(reported.id).status.terminal)
        _wait("the silent run recorded", lambda: pod.store.job(silent.id).status.terminal)
    finally:
        pod.stop()
        assert pod.join(30)
    done = pod.store.job(reported.id)
    assert (done.status, done.owner, done.error) == (S.SUCCEEDED, "old-pod", None)
    assert done.finished_at is not None and abs((done.finished_at - finished).total_seconds()) < 1
    lost = pod.store.job(silent.id)
    assert lost.status is S.FAILED and lost.error == "owner lost (old-pod, running)"
    assert lost.finished_at is not None
    assert lost.finished_at.timestamp() - started >= 4.5  # one lease of silence first
    assert pod.stats.snapshot()["jobs_handed_over"] == 1


def _run_then_take_its_partition(log: MemoryLog, pod: Pod, began: threading.Event) -> int:
    """Trigger ``backup`` on ``pod``, wait until it runs, take its partition away; returns it."""
    asked = datetime.now(UTC).replace(microsecond=0)
    trigger = Request(command_id="backup", trigger=True, request_id="run", requested_at=asked)
    log.submit("backup", encode_request(trigger))
    assert began.wait(10)
    p = partition_for("backup", log.partitions)
    log.revoke({p})
    _wait("the partition dropped", lambda: p not in pod.owned())
    return p


@pytest.mark.slow
def test_a_run_of_a_partition_taken_away_is_reported_until_the_new_owner_records_it() -> None:
    log = MemoryLog(4, exclusive=False)
    began, release = threading.Event(), threading.Event()

    def work() -> None:
        began.set()
        assert release.wait(20)

    pod = _pod(log, "old-pod", work)
    pod.start()
    try:
        _run_then_take_its_partition(log, pod, began)
        time.sleep(2.2)
        release.set()
        reports = lambda: [  # noqa: E731
            r for r in (decode_request(b).report for b in log.submitted) if r is not None
        ]
        _wait("the outcome reported", lambda: any(r.status == "succeeded" for r in reports()))
        assert {r.status for r in reports()} == {"running", "succeeded"}
        assert len([r for r in reports() if r.status == "running"]) >= 2  # about once a second
        [jid] = {r.job_id for r in reports()}
        final = next(r for r in reports() if r.status == "succeeded")
        assert (final.pod, final.attempt, final.error) == ("old-pod", 1, None)
        # Sent again until recorded; then no more.
        _wait(
            "the outcome sent again",
            lambda: len([r for r in reports() if r.status == "succeeded"]) >= 2,
        )
        recorded = pod.store.job(jid)
        assert recorded is not None
        if recorded.status is S.CLAIMED:  # its `running` write was cut off by the move
            recorded = recorded.to(S.RUNNING, started_at=final.started_at)
            _put(log, recorded)
        _put(log, recorded.to(S.SUCCEEDED, finished_at=final.finished_at))  # the new owner
        _wait("the record seen", lambda: pod.store.job(jid).status is S.SUCCEEDED)
        time.sleep(0.3)
        count = len(reports())
        time.sleep(2.5)
        assert len(reports()) == count
    finally:
        release.set()
        pod.stop()
        assert pod.join(30)


@pytest.mark.slow
def test_a_partition_given_back_while_its_run_goes_on_records_the_run_itself() -> None:
    log = MemoryLog(4, exclusive=False)
    began, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def work() -> None:
        ran.append(current_job().id)
        began.set()
        assert release.wait(20)

    pod = _pod(log, "pod-a", work)
    pod.start()
    try:
        p = _run_then_take_its_partition(log, pod, began)
        log.give_back({p})
        _wait("the partition back", lambda: p in pod.owned())
        release.set()
        [jid] = ran
        _wait("the run recorded", lambda: pod.store.job(jid).status.terminal)
    finally:
        release.set()
        pod.stop()
        assert pod.join(30)
    job = pod.store.job(jid)
    assert (job.status, job.owner, job.error) == (S.SUCCEEDED, "pod-a", None)
    assert pod.stats.snapshot().get("jobs_owner_lost", 0) == 0
