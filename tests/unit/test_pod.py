"""The pod loop in one process: in-memory log and view, real clock, second-level crons.

Each test runs a real Pod (loop thread, timer heap, executor pool) for a few seconds and
judges by what the commands recorded themselves and by the job states on the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest

from projections import MemoryView
from schedulerx import JobStatus, Policy, StaticScheduleFetcher, current_job
from schedulerx.api.command import FunctionCommand, Registration
from schedulerx.api.fetchers import FetchResult, LogScheduleFetcher, ScheduleFetcher
from schedulerx.domain.requests import Request, encode_request
from schedulerx.domain.schedule import Overlap
from schedulerx.engine.config import PodConfig
from schedulerx.engine.pod import Pod
from schedulerx.testing.memory_log import MemoryLog

pytestmark = pytest.mark.slow
EVERY_SECOND = "*/1 * * * * *"


class Ledger:
    """What the commands saw: job id and attempt per run."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def record(self) -> None:
        job = current_job()
        with self._lock:
            self.runs.append((job.id, job.attempt))


def run_pod(
    commands: dict[str, tuple[Callable[[Sequence[str]], object], Policy]],
    fetcher: ScheduleFetcher,
    seconds: float,
    log: MemoryLog | None = None,
    **config: object,
) -> tuple[Pod, MemoryLog]:
    log = log or MemoryLog(4)
    regs = {
        cid: Registration(FunctionCommand(cid, fn), policy)
        for cid, (fn, policy) in commands.items()
    }
    cfg = PodConfig(pod_id="p1", refresh_interval=timedelta(seconds=0.5), **config)  # type: ignore[arg-type]
    pod = Pod(log, MemoryView, regs, fetcher, cfg)
    pod.start()
    time.sleep(seconds)
    pod.stop()
    assert pod.join(30)
    return pod, log


def test_retries_run_again_with_backoff_until_success() -> None:
    ledger = Ledger()
    fails: set[str] = set()

    def flaky(_params: Sequence[str]) -> None:
        ledger.record()
        jid = current_job().id
        if jid not in fails:
            fails.add(jid)
            raise RuntimeError("first attempt fails")

    policy = Policy(retries=1, retry_backoff=timedelta(milliseconds=100))
    pod, _ = run_pod(
        {"f": (flaky, policy)}, StaticScheduleFetcher({"f": ("*/2 * * * * *", [])}), 4.5
    )
    done = [j for j in pod.store.jobs(command_id="f") if j.status is JobStatus.SUCCEEDED]
    assert done
    assert all(j.attempt == 2 for j in done)
    for job in done:
        assert [a for jid, a in ledger.runs if jid == job.id] == [1, 2]


def test_overlap_skip_records_missed_and_allow_overlaps() -> None:
    def slow(_params: Sequence[str]) -> None:
        time.sleep(1.5)

    pod, _ = run_pod(
        {"skip": (slow, Policy()), "allow": (slow, Policy(overlap=Overlap.ALLOW))},
        StaticScheduleFetcher({"skip": (EVERY_SECOND, []), "allow": (EVERY_SECOND, [])}),
        4.5,
    )
    skipped = [j for j in pod.store.jobs(command_id="skip") if j.status is JobStatus.MISSED]
    assert skipped
    assert all((j.error or "").startswith("overlap: previous run") for j in skipped)
    allowed = pod.store.jobs(command_id="allow")
    assert not [j for j in allowed if j.status is JobStatus.MISSED]
    assert len([j for j in allowed if j.status is JobStatus.SUCCEEDED]) >= 2


def test_graceful_stop_releases_claims_and_keeps_the_next_two() -> None:
    ledger = Ledger()
    pod, _ = run_pod(
        {"a": (lambda _p: ledger.record(), Policy())},
        StaticScheduleFetcher({"a": (EVERY_SECOND, [])}),
        2.7,
    )
    jobs = pod.store.jobs(command_id="a")
    assert not [j for j in jobs if j.status in (JobStatus.CLAIMED, JobStatus.RUNNING)]
    assert len([j for j in jobs if j.status is JobStatus.SCHEDULED]) == 2
    assert {j.id for j in jobs if j.status is JobStatus.SUCCEEDED} == {
        jid for jid, _ in ledger.runs
    }


def test_stop_grace_exceeded_reports_failed_not_silent() -> None:
    started = threading.Event()

    def stuck(_params: Sequence[str]) -> None:
        started.set()
        time.sleep(5)

    log = MemoryLog(4)
    regs = {"s": Registration(FunctionCommand("s", stuck), Policy())}
    pod = Pod(
        log,
        MemoryView,
        regs,
        StaticScheduleFetcher({"s": (EVERY_SECOND, [])}),
        PodConfig(pod_id="p1", stop_grace=timedelta(seconds=0.5)),
    )
    pod.start()
    assert started.wait(5)
    pod.stop()
    assert pod.join(10)
    failed = [j for j in pod.store.jobs(command_id="s") if j.status is JobStatus.FAILED]
    assert len(failed) == 1
    assert "stop grace" in (failed[0].error or "")


class FailingAfterFirst:
    """A fetcher that answers once, then raises (e.g. its backend went away)."""

    def __init__(self) -> None:
        self.calls = 0

    def fetch_schedule(self, command_id: str) -> FetchResult:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("schedule service unreachable")
        return (EVERY_SECOND, ["p"])


def test_fetcher_errors_keep_the_last_good_schedule_and_are_counted() -> None:
    ledger = Ledger()
    fetcher = FailingAfterFirst()
    pod, _ = run_pod({"a": (lambda _p: ledger.record(), Policy())}, fetcher, 3.5)
    assert fetcher.calls >= 3
    assert pod.stats.snapshot()["fetcher_errors"] >= 2
    assert len(ledger.runs) >= 3  # kept running on the last good schedule


def test_request_changes_the_schedule_within_one_iteration_and_unknown_ids_are_kept() -> None:
    ledger = Ledger()
    log = MemoryLog(4)
    for request in (
        Request(command_id="a", cron=EVERY_SECOND, source="cli"),
        Request(command_id="ghost", cron=EVERY_SECOND, source="cli"),  # no code for it here
        Request(command_id="a", cron="not a cron", source="cli"),
    ):
        log.submit(request.command_id, encode_request(request))
    pod, _ = run_pod(
        {"a": (lambda _p: ledger.record(), Policy())}, LogScheduleFetcher(), 2.5, log=log
    )
    schedules = {s.command_id: s for s in pod.store.schedules()}
    assert schedules["a"].cron == EVERY_SECOND
    assert schedules["a"].last_rejection is not None
    assert "invalid cron" in schedules["a"].last_rejection
    assert schedules["ghost"].cron == EVERY_SECOND  # kept, not deleted
    assert pod.store.jobs(command_id="ghost") == []  # nothing planned without its code
    assert ledger.runs
