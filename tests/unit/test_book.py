"""The pod's in-memory book (engine.book) and its staged writes (engine.writes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from schedulerx.domain.events import (
    JobChanged,
    JobTriggered,
    ScheduleRemoved,
    ScheduleSet,
    decode,
    encode,
    job_key,
)
from schedulerx.domain.job import Job, JobStatus, job_id
from schedulerx.engine.book import _RECENT, Book
from schedulerx.engine.writes import Staged, Writes
from schedulerx.ports.event_log import Item, LogError, NotOwner, append_each

S = JobStatus
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def job(minute: int = 1, status: JobStatus = S.SCHEDULED, cid: str = "backup", **kw: object) -> Job:
    t = T0 + timedelta(minutes=minute)
    fields: dict[str, object] = {
        "id": job_id(cid, t),
        "command_id": cid,
        "scheduled_at": t,
        "status": status,
    }
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


def schedule(cid: str = "backup", event_id: str = "e1", ts: datetime = T0) -> ScheduleSet:
    return ScheduleSet(event_id=event_id, pod="p", ts=ts, command_id=cid, cron="0 * * * * *")


# -- Book ------------------------------------------------------------------------------------


def test_a_new_job_is_open() -> None:
    book = Book()
    j = job()
    assert book.apply_job(j, 3) is True
    entry = book.commands["backup"]
    assert entry.partition == 3
    assert entry.jobs == {j.id: j}
    assert entry.status_of(j.id) is S.SCHEDULED
    assert entry.status_of("backup@nope") is None


def test_identical_reapplication_is_a_no_op() -> None:
    book = Book()
    j = job()
    book.apply_job(j, 0)
    assert book.apply_job(j, 0) is False
    done = j.to(S.MISSED, error="late")
    assert book.apply_job(done, 0) is True
    assert book.apply_job(done, 0) is False


def test_legal_transitions_replace_the_state() -> None:
    book = Book()
    j = job()
    book.apply_job(j, 0)
    claimed = j.to(S.CLAIMED, owner="pod-a")
    assert book.apply_job(claimed, 0) is True
    assert book.commands["backup"].jobs[j.id] == claimed


def test_a_second_claim_does_not_replace_the_first() -> None:
    book = Book()
    j = job()
    book.apply_job(j, 0)
    book.apply_job(j.to(S.CLAIMED, owner="pod-a"), 0)
    assert book.apply_job(j.to(S.CLAIMED, owner="pod-b"), 0) is False
    assert book.commands["backup"].jobs[j.id].owner == "pod-a"


@pytest.mark.parametrize(
    ("first", "stale"),
    [(S.RUNNING, S.CLAIMED), (S.RUNNING, S.RUNNING), (S.CLAIMED, S.CLAIMED)],
)
def test_illegal_transitions_are_ignored(first: JobStatus, stale: JobStatus) -> None:
    book = Book()
    current = job(status=first, owner="pod-a")
    book.apply_job(current, 0)
    assert book.apply_job(job(status=stale, owner="pod-b"), 0) is False
    assert book.commands["backup"].jobs[current.id] == current


@pytest.mark.parametrize("final", [S.SUCCEEDED, S.FAILED, S.CANCELED, S.MISSED])
def test_terminal_jobs_leave_the_open_set_and_never_come_back(final: JobStatus) -> None:
    book = Book()
    j = job()
    path = [S.CLAIMED, S.RUNNING] if final in (S.SUCCEEDED, S.FAILED) else []
    for status in [S.SCHEDULED, *path, final]:
        assert book.apply_job(job(status=status, owner="pod-a"), 0) is True
    entry = book.commands["backup"]
    assert j.id not in entry.jobs
    assert entry.status_of(j.id) is final
    for older in (S.SCHEDULED, S.CLAIMED, S.RUNNING):
        assert book.apply_job(job(status=older), 0) is False
    assert j.id not in entry.jobs


def test_recent_done_is_bounded_and_keeps_the_newest() -> None:
    book = Book()
    n = _RECENT + 10
    for m in range(n):
        book.apply_job(job(m, S.SUCCEEDED), 0)
    entry = book.commands["backup"]
    assert len(entry.recent_done) == _RECENT
    assert entry.status_of(job(n - 1).id) is S.SUCCEEDED
    assert entry.status_of(job(0).id) is None
    assert entry.jobs == {}


def test_horizon_tracks_the_newest_planned_job() -> None:
    book = Book()
    book.apply_job(job(5), 0)
    entry = book.commands["backup"]
    assert entry.horizon == T0 + timedelta(minutes=5)
    book.apply_job(job(2), 0)  # older: horizon stays
    assert entry.horizon == T0 + timedelta(minutes=5)
    book.apply_job(job(9, S.CANCELED, error="schedule changed"), 0)  # any status counts
    assert entry.horizon == T0 + timedelta(minutes=9)
    manual = job(30, id=job_id("backup", T0, "~manual-x"), trigger="manual")
    book.apply_job(manual, 0)  # a manual run is not planning
    assert entry.horizon == T0 + timedelta(minutes=9)


def test_planned_until_includes_when_the_schedule_took_effect() -> None:
    book = Book()
    entry = book.entry("backup", 0)
    assert entry.planned_until() is None
    book.apply(schedule(ts=T0 + timedelta(hours=1)), 0)
    assert entry.planned_until() is None  # nothing planned yet: no backfill from nowhere
    book.apply_job(job(5), 0)
    assert entry.planned_until() == T0 + timedelta(hours=1)
    book.apply_job(job(120), 0)
    assert entry.planned_until() == T0 + timedelta(minutes=120)
    # A schedule seeded from the projection (no event id) carries no effective time.
    book.apply(schedule(event_id="", ts=T0 + timedelta(days=9)), 0)
    assert entry.planned_until() == T0 + timedelta(minutes=120)


def test_schedule_events() -> None:
    book = Book()
    assert book.apply(schedule(), 4) is True
    assert book.commands["backup"].schedule == schedule()
    assert book.apply(ScheduleRemoved(event_id="e2", pod="p", ts=T0, command_id="backup"), 4)
    assert book.commands["backup"].schedule is None
    trig = JobTriggered(event_id="e3", pod="p", ts=T0, command_id="backup")
    assert book.apply(trig, 4) is False


def test_apply_routes_job_events() -> None:
    book = Book()
    assert book.apply(JobChanged(event_id="e", pod="p", ts=T0, job=job()), 2) is True
    assert job().id in book.commands["backup"].jobs


def test_drop_partitions_forgets_their_commands() -> None:
    book = Book()
    book.apply_job(job(cid="a"), 1)
    book.apply_job(job(cid="b"), 2)
    book.apply_job(job(cid="c"), 3)
    gone = book.drop_partitions(frozenset({1, 3}))
    assert sorted(e.command_id for e in gone) == ["a", "c"]
    assert list(book.commands) == ["b"]


def test_forget_job() -> None:
    book = Book()
    book.apply_job(job(), 0)
    book.forget_job(job().id, "backup")
    assert book.commands["backup"].jobs == {}
    book.forget_job("x@y", "unknown")  # unknown command: no error


# -- Writes.flush ----------------------------------------------------------------------------


class FakeSession:
    """A LogSession's ``append``: assigns offsets, or raises what ``fail`` says per partition."""

    def __init__(self) -> None:
        self.fail: dict[int, Exception] = {}
        self.log: dict[int, list[Item]] = {}
        self.calls: list[int] = []
        self.many_calls: list[list[int]] = []

    def append(self, partition: int, items: Sequence[Item]) -> list[int]:
        self.calls.append(partition)
        if partition in self.fail:
            raise self.fail[partition]
        stored = self.log.setdefault(partition, [])
        start = len(stored)
        stored.extend(items)
        return list(range(start, start + len(items)))

    def append_many(self, batches: Mapping[int, Sequence[Item]]) -> dict[int, list[int] | LogError]:
        self.many_calls.append(sorted(batches))
        return append_each(self, batches)  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.committed: list[tuple[int, list[Staged], list[int]]] = []
        self.lost: list[int] = []

    def on_committed(self, partition: int, staged: list[Staged], offsets: list[int]) -> None:
        self.committed.append((partition, list(staged), offsets))

    def on_lost(self, partition: int) -> None:
        self.lost.append(partition)

    def flush(self, writes: Writes, session: FakeSession) -> bool:
        return writes.flush(session, self.on_committed, self.on_lost)  # type: ignore[arg-type]


def changed(j: Job) -> JobChanged:
    return JobChanged(event_id=f"ev-{j.id}-{j.status}", pod="p", ts=T0, job=j)


def staged_writes() -> tuple[Writes, list[JobChanged]]:
    w = Writes()
    a1, b1 = changed(job(1, cid="a")), changed(job(1, cid="b"))
    a2 = changed(job(1, S.CLAIMED, cid="a", owner="me"))
    for p, e in ((5, a1), (2, b1), (5, a2)):
        w.event(p, e)
    return w, [a1, b1, a2]


def test_flush_commits_in_staging_order_with_offsets() -> None:
    w, (a1, b1, a2) = staged_writes()
    w.tombstone(2, job_key("b@old"))
    session, rec = FakeSession(), Recorder()
    assert rec.flush(w, session) is True
    assert [(p, [s.event for s in st], off) for p, st, off in rec.committed] == [
        (5, [a1, a2], [0, 1]),
        (2, [b1, None], [0, 1]),
    ]
    assert session.log[5] == [
        (b"job/" + a1.job.id.encode(), encode(a1)),
        (b"job/" + a2.job.id.encode(), encode(a2)),
    ]
    assert session.log[2][1] == (b"job/b@old", None)
    assert decode(session.log[5][1][1] or b"") == a2
    assert w.batches == {}
    assert w.latest(a1.job.id) is None
    assert rec.lost == []


def test_latest_is_the_staged_state_until_flushed() -> None:
    w, (_, b1, a2) = staged_writes()
    assert w.latest(a2.job.id) == a2.job  # the later of two staged states
    assert w.latest(b1.job.id) == b1.job
    assert w.latest("nope@x") is None


def test_not_owner_drops_the_batch_and_reports_lost() -> None:
    w, (_, b1, _) = staged_writes()
    session, rec = FakeSession(), Recorder()
    session.fail[5] = NotOwner("fenced")
    assert rec.flush(w, session) is True
    assert rec.lost == [5]
    assert [(p, [s.event for s in st]) for p, st, _ in rec.committed] == [(2, [b1])]
    assert w.batches == {}
    session.fail.clear()
    rec2 = Recorder()
    assert rec2.flush(w, session) is True
    assert rec2.committed == []
    assert 5 not in session.log  # nothing of the lost batch was ever written


def test_log_error_keeps_the_batch_backs_it_off_and_writes_the_others() -> None:
    w, (a1, b1, a2) = staged_writes()
    session, rec = FakeSession(), Recorder()
    session.fail[5] = LogError("broker unreachable")
    assert rec.flush(w, session) is False
    assert rec.lost == []
    # One partition that cannot be written does not hold up the others.
    assert [(p, [s.event for s in st]) for p, st, _ in rec.committed] == [(2, [b1])]
    assert [s.event for s in w.batches[5]] == [a1, a2]
    assert w.latest(a2.job.id) == a2.job  # still pending: the loop must see it
    assert 5 in w.retry_at
    w.event(5, changed(job(2, cid="a")))  # more staged while the log was down
    session.fail.clear()
    backing_off = Recorder()
    assert backing_off.flush(w, session) is False  # within the backoff: not tried yet
    assert backing_off.committed == []
    w.retry_at.clear()  # the backoff has passed
    rec2 = Recorder()
    assert rec2.flush(w, session) is True
    ((p5, st5, offsets5),) = rec2.committed
    assert p5 == 5
    assert [s.event.job.scheduled_at for s in st5 if isinstance(s.event, JobChanged)] == [
        a1.job.scheduled_at,
        a2.job.scheduled_at,
        T0 + timedelta(minutes=2),
    ]
    assert offsets5 == [0, 1, 2]
    assert w.batches == {}
    assert w.latest(a2.job.id) is None
    assert session.calls == [5, 2, 5]


def test_one_flush_hands_every_ready_partition_to_the_log_at_once() -> None:
    # The partitions go to the log in one append_many call (Kafka overlaps their
    # transactions); two failing partitions back off on their own, the third is written.
    w, (_a1, b1, _a2) = staged_writes()
    c3 = changed(job(3, cid="c"))
    w.event(7, c3)
    session, rec = FakeSession(), Recorder()
    session.fail[5] = LogError("down")
    session.fail[2] = LogError("down")
    assert rec.flush(w, session) is False
    assert session.many_calls == [[2, 5, 7]]
    assert [(p, [s.event for s in st]) for p, st, _ in rec.committed] == [(7, [c3])]
    assert set(w.batches) == {5, 2}
    assert set(w.retry_at) == {5, 2}
    assert [s.event for s in w.batches[2]] == [b1]


def test_flush_with_nothing_staged() -> None:
    session, rec = FakeSession(), Recorder()
    assert rec.flush(Writes(), session) is True
    assert session.calls == []
