"""Projections: the job list and schedules built from log records, in memory and in RocksDB."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import (
    MemoryView,
    Projection,
    ProjectionError,
    ProjectionStore,
    ScheduleState,
    StoreLocked,
    catch_up,
)
from schedulerx.backends.embedded import EmbeddedLog, EmbeddedReader
from schedulerx.domain.events import (
    AnyEvent,
    JobChanged,
    JobTriggered,
    ScheduleRejected,
    ScheduleRemoved,
    ScheduleSet,
    command_id_of,
    decode,
    encode,
    job_key,
    key_of,
    new_event_id,
    schedule_key,
)
from schedulerx.domain.job import Job, JobStatus, allowed, follows, job_id
from schedulerx.domain.partitioning import partition_for
from schedulerx.ports.event_log import LogSession, Record

PARTITIONS = 3
T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = JobStatus


# --- building records -----------------------------------------------------------------------


class Log:
    """Records as the log holds them (offsets per partition, keys from key_of); a LogReader."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        self.partitions = partitions
        self.records: list[Record] = []
        self.start = [0] * partitions
        self._next = [0] * partitions
        self._clock_ms = 1_000

    def append(self, event: AnyEvent) -> Record:
        return self.put(command_id_of(event), key_of(event), encode(event))

    def tombstone(self, key: bytes, command_id: str) -> Record:
        return self.put(command_id, key, None)

    def put(self, command_id: str, key: bytes, value: bytes | None) -> Record:
        p = partition_for(command_id, self.partitions)
        record = Record(p, self._next[p], key, value, self._clock_ms)
        self._next[p] += 1
        self._clock_ms += 1_000
        self.records.append(record)
        return record

    def drop_before(self, partition: int, offset: int) -> None:
        """Move the log start (retention deleted older records)."""
        self.start[partition] = offset
        self.records = [r for r in self.records if r.partition != partition or r.offset >= offset]

    def bounds(self, partition: int) -> tuple[int, int]:
        return self.start[partition], self._next[partition]

    def read(self, partition: int, offset: int, max_records: int = 1000) -> list[Record]:
        found = [r for r in self.records if r.partition == partition and r.offset >= offset]
        return found[:max_records]

    def close(self) -> None:
        pass


def compact(records: Sequence[Record]) -> list[Record]:
    """Kafka-style compaction: the latest record per key, tombstones and offsets kept."""
    latest: dict[tuple[int, bytes], Record] = {}
    for record in records:
        latest[(record.partition, record.key)] = record
    return sorted(latest.values(), key=lambda r: (r.partition, r.offset))


def planned(command_id: str, minute: int, **fields: object) -> Job:
    at = T0 + timedelta(minutes=minute)
    return Job(
        id=job_id(command_id, at),
        command_id=command_id,
        scheduled_at=at,
        status=S.SCHEDULED,
        **fields,  # type: ignore[arg-type]
    )


def changed(job: Job) -> JobChanged:
    return JobChanged(event_id=new_event_id(), pod="p1", ts=T0, job=job)


def schedule_set(command_id: str, cron: str = "*/5 * * * *", **fields: object) -> ScheduleSet:
    return ScheduleSet(
        event_id=new_event_id(),
        pod="p1",
        ts=T0,
        command_id=command_id,
        cron=cron,
        **fields,  # type: ignore[arg-type]
    )


def advance(job: Job, status: JobStatus, pod: str = "p1") -> Job:
    """``job`` moved to ``status`` with the fields a pod would set."""
    later = job.scheduled_at + timedelta(seconds=1)
    if status is S.CLAIMED:
        return job.to(status, owner=pod)
    if status is S.RUNNING:
        return job.to(status, started_at=later)
    if status is S.SCHEDULED:  # released, or retried after running
        return job.to(status, owner=None, started_at=None, attempt=job.attempt + 1)
    error = None if status is S.SUCCEEDED else f"{status} by {pod}"
    return job.to(status, finished_at=later, error=error)


def lifecycle(job: Job, *statuses: JobStatus) -> list[Job]:
    """``job`` and each state it passes through on the way along ``statuses``."""
    states = [job]
    for status in statuses:
        states.append(advance(states[-1], status))
    return states


RUN_OK = (S.CLAIMED, S.RUNNING, S.SUCCEEDED)


def snapshot(view: Projection) -> tuple[list[Job], list[ScheduleState]]:
    return view.jobs(), view.schedules()


@pytest.fixture(params=["memory", "rocksdb"])
def view(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Projection]:
    if request.param == "memory":
        yield MemoryView()
        return
    store = ProjectionStore(tmp_path / "projection", PARTITIONS)
    yield store
    store.close()


# --- rules and queries (both views) ---------------------------------------------------------


def test_jobs_query_by_command_status_and_time(view: Projection) -> None:
    log = Log()
    backup = [planned("backup", m) for m in (30, 0, 10, 20)]
    for job in backup:
        log.append(changed(job))
    report = planned("report", 10)
    log.append(changed(report))
    claimed = advance(backup[2], S.CLAIMED)
    running = advance(claimed, S.RUNNING)
    done = advance(running, S.SUCCEEDED)
    for job in (claimed, running, done):
        log.append(changed(job))
    view.apply(log.records)

    by_time = sorted([*backup, report], key=lambda j: (j.scheduled_at, j.id))
    by_time[by_time.index(backup[2])] = done
    assert view.jobs() == by_time
    assert [j.id for j in view.jobs(command_id="backup")] == [
        planned("backup", m).id for m in (0, 10, 20, 30)
    ]
    assert view.jobs(command_id="back") == []
    assert view.jobs(status=S.SUCCEEDED) == [done]
    assert view.jobs(status=S.CLAIMED) == []
    assert view.jobs(command_id="backup", status=S.SCHEDULED) == [
        planned("backup", m) for m in (0, 20, 30)
    ]
    t10, t30 = T0 + timedelta(minutes=10), T0 + timedelta(minutes=30)
    assert [j.id for j in view.jobs(since=t10, until=t30)] == [
        planned("backup", 10).id,
        report.id,
        planned("backup", 20).id,
    ]
    assert view.jobs(command_id="backup", since=t30) == [backup[0]]
    assert view.jobs(command_id="backup", limit=2) == [backup[1], done]
    assert view.jobs(limit=0) == []
    assert view.job(done.id) == done
    assert view.job("nope@2026-01-01T00:00:00Z") is None
    assert view.stats.applied == len(log.records)


def test_query_rejects_naive_time_and_negative_limit(view: Projection) -> None:
    with pytest.raises(ValueError, match="since must be a timezone-aware datetime"):
        view.jobs(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="limit must be >= 0"):
        view.jobs(limit=-1)


def test_unknown_job_is_accepted_in_any_status(view: Projection) -> None:
    # On a compacted log the first record of a finished job is its final state.
    log = Log()
    job = planned("backup", 0)
    final = lifecycle(job, S.CLAIMED, S.RUNNING, S.FAILED)[-1]
    log.append(changed(final))
    view.apply(log.records)
    assert view.job(job.id) == final
    assert view.stats.illegal_transitions == 0


def test_illegal_transition_is_skipped_counted_and_logged(
    view: Projection, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log()
    job = planned("backup", 0)
    states = lifecycle(job, *RUN_OK)
    done = states[-1]
    for state in states:
        log.append(changed(state))
    log.append(changed(done))  # identical re-application: a no-op, not illegal
    zombie = log.append(changed(advance(advance(job, S.CLAIMED, "p2"), S.RUNNING, "p2")))
    later = log.append(changed(planned("backup", 5)))
    with caplog.at_level(logging.WARNING, logger="schedulerx.projections"):
        stats = view.apply(log.records)
    assert view.job(job.id) == done
    assert view.job(later.key.decode().removeprefix("job/")) == planned("backup", 5)
    assert (stats.applied, stats.illegal_transitions, stats.poison_records) == (6, 1, 0)
    assert view.stats == stats
    [message] = [r.getMessage() for r in caplog.records]
    assert f"partition {zombie.partition} offset {zombie.offset}" in message
    assert "succeeded -> running" in message
    assert view.next_offset(later.partition) == later.offset + 1


def test_poison_records_are_skipped_and_the_rest_applies(
    view: Projection, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log()
    job = planned("backup", 0)
    bad = [
        log.put("backup", job_key(job.id), b"\xff not json"),
        log.put("backup", schedule_key("backup"), b'{"type": "from.the.future", "v": 9}'),
        log.put("backup", schedule_key("backup"), b'{"type": "job", "job": {"id": 3}}'),
        log.put("backup", job_key("other@2026-01-01T00:00:00Z"), encode(changed(job))),
    ]
    good = log.append(changed(job))
    with caplog.at_level(logging.WARNING, logger="schedulerx.projections"):
        stats = view.apply(log.records)
    assert (stats.poison_records, stats.applied) == (4, 1)
    assert view.jobs() == [job]
    assert view.next_offset(good.partition) == good.offset + 1
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    for record, message in zip(bad, messages, strict=True):
        assert f"poison record at partition {record.partition} offset {record.offset}" in message


def test_tombstones_delete_jobs_and_schedules(view: Projection) -> None:
    log = Log()
    job = planned("backup", 0)
    keep = planned("backup", 5)
    trigger = JobTriggered(event_id=new_event_id(), pod="cli", ts=T0, command_id="backup")
    for state in [*lifecycle(job, *RUN_OK), keep]:
        log.append(changed(state))
    log.append(schedule_set("backup"))
    log.append(trigger)
    log.tombstone(job_key(job.id), "backup")
    log.tombstone(key_of(trigger), "backup")  # ignored
    log.tombstone(job_key("never@2026-01-01T00:00:00Z"), "never")  # nothing to delete
    view.apply(log.records)
    assert view.job(job.id) is None
    assert view.jobs() == [keep]
    assert view.jobs(command_id="backup") == [keep]
    assert view.jobs(status=S.SUCCEEDED) == []
    assert view.jobs(command_id="backup", status=S.SUCCEEDED) == []
    assert view.schedule("backup") is not None

    log.tombstone(schedule_key("backup"), "backup")
    view.apply(log.records)
    assert view.schedule("backup") is None
    assert view.schedules() == []
    assert view.stats.applied == len(log.records)


def test_schedule_set_removed_rejected_and_triggered(view: Projection) -> None:
    log = Log()
    log.append(schedule_set("backup", "0 3 * * *", params=("--full",), timezone="Europe/Berlin"))
    log.append(schedule_set("report", paused=True))
    rejected = ScheduleRejected(
        event_id=new_event_id(), pod="p1", ts=T0, command_id="backup", reason="bad cron"
    )
    log.append(rejected)
    log.append(JobTriggered(event_id=new_event_id(), pod="cli", ts=T0, command_id="backup"))
    view.apply(log.records)
    backup = ScheduleState(
        command_id="backup",
        cron="0 3 * * *",
        params=("--full",),
        timezone="Europe/Berlin",
        last_rejection="bad cron",
        since=T0,
    )
    report = ScheduleState(command_id="report", cron="*/5 * * * *", paused=True, since=T0)
    assert view.schedules() == [backup, report]
    assert backup.active
    assert not report.active
    assert view.jobs() == []

    log.append(ScheduleRemoved(event_id=new_event_id(), pod="p1", ts=T0, command_id="backup"))
    view.apply(log.records)
    removed = view.schedule("backup")
    assert removed == ScheduleState(command_id="backup", removed=True, last_rejection="bad cron")
    assert not removed.active
    log.append(schedule_set("backup", "0 4 * * *"))
    view.apply(log.records)
    assert view.schedule("backup") == ScheduleState(
        command_id="backup", cron="0 4 * * *", last_rejection="bad cron", since=T0
    )


def test_offsets_track_each_partition_and_skip_applied_records(view: Projection) -> None:
    job = planned("backup", 0)
    first = Record(1, 4, job_key(job.id), encode(changed(job)), 0)
    claimed = advance(job, S.CLAIMED)
    second = Record(1, 9, job_key(job.id), encode(changed(claimed)), 0)  # gap: compaction
    assert view.next_offset(1) == 0
    view.apply([first, second])
    assert (view.next_offset(0), view.next_offset(1), view.next_offset(2)) == (0, 10, 0)
    stats = view.apply([first, second])  # already applied: ignored, not counted
    assert stats.records == 0
    assert view.job(job.id) == claimed
    assert view.stats.applied == 2


def test_catch_up_applies_new_records_and_reports_progress(view: Projection) -> None:
    log = Log()
    for minute in range(12):
        log.append(changed(planned(f"cmd{minute % 4}", minute)))
    seen: list[tuple[int, int]] = []
    assert catch_up(view, log, chunk=2, progress=lambda d, t: seen.append((d, t))) == 12
    assert len(view.jobs()) == 12
    assert seen[-1] == (12, 12)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    log.append(changed(advance(planned("cmd0", 0), S.CLAIMED)))
    assert catch_up(view, log) == 1
    assert view.job(planned("cmd0", 0).id).status is S.CLAIMED  # type: ignore[union-attr]
    assert catch_up(view, log) == 0


def test_catch_up_rebuilds_a_store_older_than_the_log_start(view: Projection) -> None:
    log = Log()
    gone = planned("backup", 0)
    first, *rest = lifecycle(gone, *RUN_OK)
    p = log.append(changed(first)).partition
    catch_up(view, log)
    for state in rest:
        log.append(changed(state))
    log.tombstone(job_key(gone.id), "backup")
    kept = log.append(changed(planned("backup", 5)))
    other = log.append(changed(planned("report", 0)))
    log.drop_before(p, kept.offset)  # the tombstone the view never saw is gone
    catch_up(view, log, [p])
    assert view.job(gone.id) is None
    assert view.jobs() == [planned("report", 0), planned("backup", 5)]
    assert view.next_offset(other.partition) == other.offset + 1


def test_catch_up_rebuilds_a_store_ahead_of_the_log(view: Projection) -> None:
    old = Log()
    for minute in range(5):
        old.append(changed(planned("backup", minute)))
    catch_up(view, old)
    new = Log()
    new.append(changed(planned("backup", 50)))
    catch_up(view, new)
    assert view.jobs() == [planned("backup", 50)]


def test_catch_up_until_ms_gives_the_view_as_of_a_time() -> None:
    log = Log()
    job = planned("backup", 0)
    log.append(changed(job))
    as_of = log.append(changed(advance(job, S.CLAIMED))).timestamp_ms
    log.append(changed(advance(advance(job, S.CLAIMED), S.RUNNING)))
    log.append(changed(planned("backup", 5)))
    view = MemoryView()
    assert catch_up(view, log, until_ms=as_of) == 2
    assert view.jobs() == [advance(job, S.CLAIMED)]


# --- the RocksDB store ------------------------------------------------------------------------


def test_reopened_store_resumes_where_it_stopped(tmp_path: Path) -> None:
    log = Log()
    for minute in range(6):
        log.append(changed(planned(f"cmd{minute % 3}", minute)))
    with ProjectionStore(tmp_path, PARTITIONS) as store:
        catch_up(store, log)
        before = snapshot(store), [store.next_offset(p) for p in range(PARTITIONS)], store.stats
    log.append(changed(advance(planned("cmd0", 0), S.CLAIMED)))
    with ProjectionStore(tmp_path, PARTITIONS) as store:
        after = snapshot(store), [store.next_offset(p) for p in range(PARTITIONS)], store.stats
        assert after == before
        assert catch_up(store, log) == 1
        assert store.stats.applied == 7


def test_format_version_or_partition_change_rebuilds(tmp_path: Path) -> None:
    class NextFormat(ProjectionStore):
        FORMAT_VERSION = ProjectionStore.FORMAT_VERSION + 1

    log = Log()
    log.append(changed(planned("backup", 0)))
    with ProjectionStore(tmp_path, PARTITIONS) as store:
        store.apply(log.records)
    with NextFormat(tmp_path, PARTITIONS) as store:
        assert store.jobs() == []
        assert store.stats.records == 0
        assert all(store.next_offset(p) == 0 for p in range(PARTITIONS))
        store.apply(log.records)
    with pytest.raises(ProjectionError, match="has format 2, this version reads 1") as info:
        ProjectionStore.open_reader(tmp_path)
    assert "\n" not in str(info.value)
    with ProjectionStore(tmp_path, PARTITIONS) as store:
        assert store.jobs() == []
        store.apply(log.records)
    with ProjectionStore(tmp_path, PARTITIONS + 1) as store:
        assert store.jobs() == []
        assert store.partitions == PARTITIONS + 1


def test_second_writer_gets_a_one_line_in_use_error(tmp_path: Path) -> None:
    with ProjectionStore(tmp_path, PARTITIONS), pytest.raises(StoreLocked) as info:
        ProjectionStore(tmp_path, PARTITIONS)
    assert str(info.value) == f"projection store {tmp_path} is in use by another process"


def test_reader_needs_an_existing_store_and_is_read_only(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ProjectionError, match="no projection store at"):
        ProjectionStore.open_reader(missing)
    assert not missing.exists()
    with ProjectionStore(tmp_path, PARTITIONS) as writer:
        writer.apply([Record(0, 0, b"trigger/x/1", None, 0)])
        with ProjectionStore.open_reader(tmp_path) as reader:
            assert reader.partitions == PARTITIONS
            assert reader.next_offset(0) == 1
            with pytest.raises(ProjectionError, match="read-only"):
                reader.apply([])
            with pytest.raises(ProjectionError, match="read-only"):
                reader.reset()


def test_partition_outside_the_store_is_refused(tmp_path: Path) -> None:
    with ProjectionStore(tmp_path, 2) as store, pytest.raises(ValueError, match=r"outside 0\.\.1"):
        store.apply([Record(2, 0, b"trigger/x/1", None, 0)])


READER = """
import json, sys
from pathlib import Path
from projections import ProjectionStore
store = ProjectionStore.open_reader(Path(sys.argv[1]))
for _ in sys.stdin:
    store.refresh()
    print(json.dumps([[j.id, j.status] for j in store.jobs()]), flush=True)
store.close()
"""


def query(reader: subprocess.Popen[str]) -> object:
    """Ask the READER process to refresh and list the jobs."""
    assert reader.stdin is not None
    assert reader.stdout is not None
    reader.stdin.write("\n")
    reader.stdin.flush()
    return json.loads(reader.stdout.readline())


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_reader_in_another_process_sees_writes_after_refresh(tmp_path: Path) -> None:
    log = Log()
    job = planned("backup", 0)
    log.append(changed(job))
    with ProjectionStore(tmp_path, PARTITIONS) as store:
        catch_up(store, log)
        with subprocess.Popen(
            [sys.executable, "-c", READER, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as reader:
            assert query(reader) == [[job.id, "scheduled"]]
            log.append(changed(advance(job, S.CLAIMED)))
            log.append(changed(planned("backup", 5)))
            catch_up(store, log)
            expected = [[job.id, "claimed"], [planned("backup", 5).id, "scheduled"]]
            assert query(reader) == expected
            assert reader.stdin is not None
            reader.stdin.close()
            assert reader.wait(timeout=30) == 0


BATCH = 7


def crash_records(start: int, count: int) -> list[Record]:
    """Partition 0 offsets start.. : each job scheduled, claimed, running, succeeded."""
    records = []
    for offset in range(start, start + count):
        job = planned("crash", offset // 4)
        for status in (S.CLAIMED, S.RUNNING, S.SUCCEEDED)[: offset % 4]:
            job = advance(job, status)
        records.append(Record(0, offset, job_key(job.id), encode(changed(job)), 0))
    return records


def crash_writer(path: Path) -> None:
    """Apply crash_records in batches of BATCH until killed."""
    store = ProjectionStore(path, 1)
    offset = 0
    while True:
        store.apply(crash_records(offset, BATCH))
        offset += BATCH
        if offset == BATCH:
            print("started", flush=True)


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import test_projections
test_projections.crash_writer(Path(sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_kill_9_mid_apply_leaves_rows_and_offsets_consistent(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline() == "started\n"
            time.sleep(0.5)
        finally:
            writer.kill()
    with ProjectionStore(tmp_path, 1) as store:
        applied = store.next_offset(0)
        assert applied > BATCH
        assert applied % BATCH == 0  # a batch is all there or not at all
        expected = MemoryView()
        expected.apply(crash_records(0, applied))
        assert snapshot(store) == snapshot(expected)
        assert store.stats == expected.stats


# --- properties -------------------------------------------------------------------------------

COMMANDS = ("backup", "report", "sync@eu")
SLOTS = [(command, minute) for command in COMMANDS for minute in (0, 1)]
CRONS = ("*/5 * * * *", "0 3 * * *", "0 0 1 * *")
FORWARD = (S.CLAIMED, S.RUNNING, S.SUCCEEDED, S.FAILED, S.SCHEDULED, S.MISSED, S.CANCELED)
"""Preferred next states, so that walks often get through a whole run."""

steps = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, len(SLOTS) - 1), st.integers(0, 7)),
    min_size=30,
    max_size=120,
)


def legal_history(plan: list[tuple[int, int, int]]) -> tuple[Log, dict[str, Job]]:
    """A log of random walks along the state machine for several interleaved jobs, with
    schedule events, trigger requests and tombstones of finished jobs; and the jobs' truth."""
    log = Log()
    jobs: dict[str, Job] = {}
    for kind, slot, choice in plan:
        command, minute = SLOTS[slot]
        pod = f"p{choice % 2}"
        if kind <= 3:
            job_now = jobs.get(job_id(command, T0 + timedelta(minutes=minute)))
            if job_now is None:
                new = planned(command, minute, params=(pod,))
            else:
                options = [s for s in FORWARD if allowed(job_now.status, s)]
                if choice == 0 or (not options and choice != 1):
                    log.append(changed(job_now))  # a repeated record
                    continue
                if not options:
                    log.tombstone(job_key(job_now.id), command)  # retention
                    del jobs[job_now.id]
                    continue
                pick = 0 if 2 <= choice <= 5 else choice % len(options)
                new = advance(job_now, options[pick], pod)
            jobs[new.id] = new
            log.append(changed(new))
        elif kind == 4:
            log.append(schedule_set(command, CRONS[choice % 3], paused=choice > 2))
        elif choice % 3 == 0:
            log.append(ScheduleRemoved(event_id=new_event_id(), pod=pod, ts=T0, command_id=command))
        elif choice % 3 == 1:
            log.tombstone(schedule_key(command), command)
        else:
            trigger = log.append(
                JobTriggered(event_id=new_event_id(), pod=pod, ts=T0, command_id=command)
            )
            if choice == 5:
                log.tombstone(trigger.key, command)
    return log, jobs


def every_index(view: Projection) -> dict[tuple[str | None, JobStatus | None], list[Job]]:
    """The job list through each index: by time, command, status, command and status."""
    return {
        (command, status): view.jobs(command_id=command, status=status)
        for command in (None, *COMMANDS)
        for status in (None, *JobStatus)
    }


def in_chunks(view: Projection, records: list[Record], size: int) -> None:
    for start in range(0, len(records), size):
        view.apply(records[start : start + size])


@settings(deadline=None)
@given(steps)
def test_memory_view_of_compacted_log_equals_view_of_full_log(
    plan: list[tuple[int, int, int]],
) -> None:
    log, truth = legal_history(plan)
    full, compacted = MemoryView(), MemoryView()
    full.apply(log.records)
    compacted.apply(compact(log.records))
    assert snapshot(compacted) == snapshot(full)
    assert full.jobs() == sorted(truth.values(), key=lambda j: (j.scheduled_at, j.id))
    assert full.stats.illegal_transitions == full.stats.poison_records == 0


@settings(deadline=None, max_examples=50)
@given(steps, st.integers(1, 10))
def test_store_of_compacted_log_equals_store_of_full_log(
    plan: list[tuple[int, int, int]], chunk: int
) -> None:
    log, _ = legal_history(plan)
    reference = MemoryView()
    reference.apply(log.records)
    with tempfile.TemporaryDirectory() as path, ProjectionStore(Path(path), PARTITIONS) as store:
        in_chunks(store, log.records, chunk)
        assert snapshot(store) == snapshot(reference)
        assert every_index(store) == every_index(reference)
        store.reset()
        in_chunks(store, compact(log.records), chunk)
        assert snapshot(store) == snapshot(reference)
        assert every_index(store) == every_index(reference)


def write_turns(session: LogSession, records: Sequence[Record]) -> None:
    """Append ``records`` to a real log as a pod would: each to the partition ``Log.put``
    chose with ``partition_for`` (the command's), a run of records to the same partition as
    one append (one loop turn's batch)."""
    batch: list[Record] = []
    for record in [*records, None]:
        if batch and (record is None or record.partition != batch[0].partition):
            session.append(batch[0].partition, [(r.key, r.value) for r in batch])
            batch = []
        if record is not None:
            batch.append(record)


def stored(reader: EmbeddedReader) -> int:
    """How many records the log holds now, over all partitions."""
    return sum(len(reader.read(p, 0, max_records=100_000)) for p in range(reader.partitions))


@settings(deadline=None, max_examples=40)
@given(steps, st.floats(0, 1), st.booleans())
def test_real_compaction_of_the_embedded_log_keeps_what_users_see(
    plan: list[tuple[int, int, int]], split_at: float, drop_tombstones: bool
) -> None:
    """The history written to a real EmbeddedLog, compacted part-way and at the end by
    ``EmbeddedLog.compact`` (tombstones kept, or all past their retention and dropped), then
    projected into a fresh store as ``schedulerx jobs`` does: the same job list (through
    every index) and schedules as the full history."""
    history, truth = legal_history(plan)
    reference = MemoryView()
    reference.apply(history.records)
    assert reference.jobs() == sorted(truth.values(), key=lambda j: (j.scheduled_at, j.id))
    split = int(len(history.records) * split_at)
    # Retention 0 with "now" a day ahead: every tombstone is past its retention and goes.
    drop = {"tombstone_retention_ms": 0, "now_ms": int(time.time() * 1000) + 86_400_000}
    retention = drop if drop_tombstones else {}
    with tempfile.TemporaryDirectory() as path:
        log = EmbeddedLog(Path(path) / "data", PARTITIONS)
        session = log.join("pod-a")
        reader = log.reader()
        try:
            write_turns(session, history.records[:split])
            log.compact(**retention)
            write_turns(session, history.records[split:])
            log.compact(**retention)
            keys = {(r.partition, r.key) for r in history.records}
            assert stored(reader) <= len(keys), "a superseded record survived compaction"
            with ProjectionStore(Path(path) / "projection", PARTITIONS) as fresh:
                catch_up(fresh, reader)
                assert snapshot(fresh) == snapshot(reference)
                assert every_index(fresh) == every_index(reference)
                assert fresh.stats.illegal_transitions == fresh.stats.poison_records == 0
        finally:
            reader.close()
            session.close()
            log.close()


def test_a_store_behind_a_real_compaction_catches_up_to_the_final_states(
    tmp_path: Path,
) -> None:
    """A projection that was caught up, then lagged while the log moved on and was
    compacted (a CLI store read again later; a pod's store behind at a crash), must show
    what a fresh projection shows."""
    done = lifecycle(planned("backup", 0), *RUN_OK)  # scheduled, claimed, running, succeeded
    nxt = planned("backup", 1)
    history = Log()
    log = EmbeddedLog(tmp_path / "data", PARTITIONS)
    session = log.join("pod-a")
    reader = log.reader()
    try:
        with ProjectionStore(tmp_path / "projection", PARTITIONS) as follower:
            write_turns(session, [history.append(changed(done[0]))])
            catch_up(follower, reader)
            # nxt keeps the partition's first stored offset where the follower stands.
            later = [history.append(changed(job)) for job in (nxt, *done[1:])]
            write_turns(session, later)
            log.compact()
            catch_up(follower, reader)
            reference = MemoryView()
            reference.apply(history.records)
            assert follower.job(done[-1].id) == done[-1]
            assert snapshot(follower) == snapshot(reference)
    finally:
        reader.close()
        session.close()
        log.close()


any_job_events = st.lists(
    st.tuples(
        st.integers(0, 2),  # job
        st.sampled_from(list(JobStatus)),
        st.integers(0, 2),  # which variant of that state
        st.integers(0, 9),  # 0: tombstone instead
    ),
    max_size=60,
)


@settings(deadline=None, max_examples=50)
@given(any_job_events)
def test_no_sequence_drives_a_job_through_an_illegal_transition(
    events: list[tuple[int, JobStatus, int, int]],
) -> None:
    log = Log()
    for slot, status, variant, tombstone in events:
        base = planned("backup", slot)
        if tombstone == 0:
            log.tombstone(job_key(base.id), "backup")
        else:
            log.append(changed(msgspec.structs.replace(base, status=status, attempt=variant + 1)))
    view = MemoryView()
    skipped = 0
    for record in log.records:
        key = record.key.decode().removeprefix("job/")
        before = view.job(key)
        stats = view.apply([record])
        after = view.job(key)
        if record.value is None:
            assert after is None
            continue
        offered = changed_job(record)
        if after != before:
            assert after == offered
            assert before is None or follows(before, offered)
            # What users rely on, whatever the rule: no way out of a terminal status or back
            # to an earlier attempt.
            assert before is None or not before.status.terminal
            assert before is None or offered.attempt >= before.attempt
        else:
            assert before == offered or not follows(before, offered)  # type: ignore[arg-type]
        skipped += stats.illegal_transitions
        assert stats.illegal_transitions == (after != offered)
    assert view.stats.illegal_transitions == skipped
    with tempfile.TemporaryDirectory() as path, ProjectionStore(Path(path), PARTITIONS) as store:
        store.apply(log.records)  # one batch: the overlay must see its own changes
        assert snapshot(store) == snapshot(view)
        assert every_index(store) == every_index(view)
        assert store.stats == view.stats


def changed_job(record: Record) -> Job:
    assert record.value is not None
    event = decode(record.value)
    assert isinstance(event, JobChanged)
    return event.job


def test_a_rejection_does_not_shadow_the_schedule_under_compaction() -> None:
    log = Log()
    log.append(schedule_set("backup"))
    log.append(
        ScheduleRejected(
            event_id=new_event_id(), pod="p1", ts=T0, command_id="backup", reason="bad cron"
        )
    )
    full, compacted = MemoryView(), MemoryView()
    full.apply(log.records)
    compacted.apply(compact(log.records))
    assert compacted.schedules() == full.schedules()
