"""The core's behaviour, one suite, every backend: a real Pod on each event log.

Each test runs a real Pod (loop thread, timer heap, executor pool, real clock, second-level
crons) for a few seconds and judges by what the commands recorded themselves and by the job
states the pod projected. The same tests run on the in-memory fake (with the in-memory view),
on the embedded log and on Kafka (a topic and group of their own on the session broker), both
with the RocksDB projection a real pod uses. The window of a test starts once the pod owns and
has caught up on every partition, so a Kafka group forming is not counted against it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from projections import MemoryView, ProjectionStore
from schedulerx import JobStatus, Policy, StaticScheduleFetcher, current_job
from schedulerx.api.command import FunctionCommand, Registration
from schedulerx.api.fetchers import (
    FetchResult,
    FileScheduleFetcher,
    LogScheduleFetcher,
    ScheduleFetcher,
)
from schedulerx.domain.requests import Request, encode_request
from schedulerx.domain.schedule import Overlap
from schedulerx.engine.config import PodConfig
from schedulerx.engine.pod import Pod
from schedulerx.ports.event_log import EventLog
from schedulerx.ports.store import JobStore
from schedulerx.testing.memory_log import MemoryLog
from tests.support.kafka import fresh_kafka_log

pytestmark = pytest.mark.slow
EVERY_SECOND = "*/1 * * * * *"
PARTITIONS = 4
READY_S = 30.0
"""How long a pod may take to own and catch up on every partition (a Kafka group forming)."""


class Backend:
    """A fresh event log and the projection a pod on it keeps."""

    def __init__(self, log: EventLog, store: Callable[[], JobStore]):
        self.log = log
        self.store = store


@pytest.fixture(params=["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The backend named by the param, with PARTITIONS partitions; closed after the test."""
    log: EventLog
    if request.param == "memory":
        yield Backend(MemoryLog(PARTITIONS), MemoryView)
        return
    if request.param == "embedded":
        from schedulerx.backends.embedded import EmbeddedLog

        log = EmbeddedLog(tmp_path / "data", PARTITIONS)
    else:
        log = fresh_kafka_log(request.getfixturevalue("kafka_bootstrap"), "pods", PARTITIONS)
    stores: list[ProjectionStore] = []

    def open_store() -> JobStore:
        stores.append(ProjectionStore(tmp_path / "projection", PARTITIONS))
        return stores[-1]

    try:
        yield Backend(log, open_store)
    finally:
        for store in stores:
            store.close()
        log.close()


def start_ready(pod: Pod) -> None:
    """Start ``pod`` and wait until it owns and has caught up on every partition."""
    pod.start()
    deadline = time.monotonic() + READY_S
    while pod.owned() != frozenset(range(PARTITIONS)):
        assert time.monotonic() < deadline, f"pod owns {sorted(pod.owned())} after {READY_S:g}s"
        time.sleep(0.05)


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
    backend: Backend,
    commands: dict[str, tuple[Callable[[Sequence[str]], object], Policy]],
    fetcher: ScheduleFetcher,
    seconds: float,
    **config: object,
) -> Pod:
    """Run one pod with ``commands`` for ``seconds`` once it is ready, then stop it."""
    regs = {
        cid: Registration(FunctionCommand(cid, fn), policy)
        for cid, (fn, policy) in commands.items()
    }
    cfg = PodConfig(pod_id="p1", refresh_interval=timedelta(seconds=0.5), **config)  # type: ignore[arg-type]
    pod = Pod(backend.log, backend.store, regs, fetcher, cfg)
    start_ready(pod)
    time.sleep(seconds)
    pod.stop()
    assert pod.join(30)
    return pod


def test_retries_run_again_with_backoff_until_success(backend: Backend) -> None:
    ledger = Ledger()
    fails: set[str] = set()

    def flaky(_params: Sequence[str]) -> None:
        ledger.record()
        jid = current_job().id
        if jid not in fails:
            fails.add(jid)
            raise RuntimeError("first attempt fails")

    policy = Policy(retries=1, retry_backoff=timedelta(milliseconds=100))
    pod = run_pod(
        backend, {"f": (flaky, policy)}, StaticScheduleFetcher({"f": ("*/2 * * * * *", [])}), 4.5
    )
    done = [j for j in pod.store.jobs(command_id="f") if j.status is JobStatus.SUCCEEDED]
    assert done
    assert all(j.attempt == 2 for j in done)
    for job in done:
        assert [a for jid, a in ledger.runs if jid == job.id] == [1, 2]


def test_overlap_skip_records_missed_and_allow_overlaps(backend: Backend) -> None:
    def slow(_params: Sequence[str]) -> None:
        time.sleep(1.5)

    pod = run_pod(
        backend,
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


def test_graceful_stop_releases_claims_and_keeps_the_next_two(backend: Backend) -> None:
    ledger = Ledger()
    pod = run_pod(
        backend,
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


def test_stop_grace_exceeded_reports_failed_not_silent(backend: Backend) -> None:
    started = threading.Event()

    def stuck(_params: Sequence[str]) -> None:
        started.set()
        time.sleep(5)

    regs = {"s": Registration(FunctionCommand("s", stuck), Policy())}
    pod = Pod(
        backend.log,
        backend.store,
        regs,
        StaticScheduleFetcher({"s": (EVERY_SECOND, [])}),
        PodConfig(pod_id="p1", stop_grace=timedelta(seconds=0.5)),
    )
    start_ready(pod)
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


def test_fetcher_errors_keep_the_last_good_schedule_and_are_counted(backend: Backend) -> None:
    ledger = Ledger()
    fetcher = FailingAfterFirst()
    pod = run_pod(backend, {"a": (lambda _p: ledger.record(), Policy())}, fetcher, 3.5)
    assert fetcher.calls >= 3
    assert pod.stats.snapshot()["fetcher_errors"] >= 2
    assert len(ledger.runs) >= 3  # kept running on the last good schedule


def test_request_changes_the_schedule_within_one_iteration_and_unknown_ids_are_kept(
    backend: Backend,
) -> None:
    ledger = Ledger()
    for request in (
        Request(command_id="a", cron=EVERY_SECOND, source="cli"),
        Request(command_id="ghost", cron=EVERY_SECOND, source="cli"),  # no code for it here
        Request(command_id="a", cron="not a cron", source="cli"),
    ):
        backend.log.submit(request.command_id, encode_request(request))
    pod = run_pod(backend, {"a": (lambda _p: ledger.record(), Policy())}, LogScheduleFetcher(), 2.5)
    schedules = {s.command_id: s for s in pod.store.schedules()}
    assert schedules["a"].cron == EVERY_SECOND
    assert schedules["a"].last_rejection is not None
    assert "invalid cron" in schedules["a"].last_rejection
    assert schedules["ghost"].cron == EVERY_SECOND  # kept, not deleted
    assert pod.store.jobs(command_id="ghost") == []  # nothing planned without its code
    assert ledger.runs


def test_a_file_schedule_change_takes_effect_within_one_refresh(
    backend: Backend, tmp_path: Path
) -> None:
    schedules = tmp_path / "schedules.toml"
    schedules.write_text(f'[a]\ncron = "{EVERY_SECOND}"\n')
    runs: list[datetime] = []

    def record(_params: Sequence[str]) -> None:
        runs.append(current_job().scheduled_at)

    refresh = timedelta(seconds=0.5)
    regs = {"a": Registration(FunctionCommand("a", record), Policy())}
    cfg = PodConfig(pod_id="p1", refresh_interval=refresh)
    pod = Pod(backend.log, backend.store, regs, FileScheduleFetcher(schedules), cfg)
    start_ready(pod)
    time.sleep(2.5)
    schedules.write_text('[a]\ncron = "0 0 1 1 *"   # once a year from now on\n')
    changed = datetime.now(UTC)
    time.sleep(3.0)
    pod.stop()
    assert pod.join(30)

    assert runs, "nothing ran on the first schedule"
    # A second already claimed when the change was seen may still run; nothing later does.
    settled = changed + refresh + timedelta(seconds=1.5)
    assert [t for t in runs if t > settled] == []
    jobs = pod.store.jobs(command_id="a")
    scheduled = sorted(j.scheduled_at for j in jobs if j.status is JobStatus.SCHEDULED)
    assert len(scheduled) == 2
    assert all((t.month, t.day, t.hour, t.minute, t.second) == (1, 1, 0, 0, 0) for t in scheduled)
    canceled = [j for j in jobs if j.status is JobStatus.CANCELED]
    assert canceled, "the every-second jobs planned before the change were not canceled"
    assert all(j.scheduled_at > changed - timedelta(seconds=1) for j in canceled)
    ran = {j.scheduled_at for j in jobs if j.status is JobStatus.SUCCEEDED}
    assert ran == set(runs)
