"""The pod: one loop thread that owns all writes, one timer thread, one executor pool.

Loop iteration: poll the log (records, ownership changes, requests) -> apply -> turn requests
and fetcher answers into events -> record job outcomes -> plan owned commands (schedule the
next 2, cancel, miss, claim) -> flush one atomic append per partition -> arm timers for the
claims that committed. A job starts only from a timer, only if its claim committed and this
pod still owns its partition.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from schedulerx.domain.events import (
    AnyEvent,
    JobChanged,
    PoisonRecord,
    decode,
    job_key,
    new_event_id,
)
from schedulerx.domain.job import IllegalTransition, Job, JobStatus, command_of
from schedulerx.domain.partitioning import partition_for
from schedulerx.domain.planner import MAX_BACKFILL, CommandView, backoff, plan, recover
from schedulerx.domain.requests import (
    BadRequest,
    Request,
    RunReport,
    decode_request,
    encode_request,
)
from schedulerx.domain.schedule import Policy, Schedule
from schedulerx.engine.book import Book, CommandEntry
from schedulerx.engine.clock import SystemClock
from schedulerx.engine.config import PodConfig
from schedulerx.engine.handover import Foreign, Orphans
from schedulerx.engine.intake import from_fetch, from_request
from schedulerx.engine.refresher import Refresher
from schedulerx.engine.runner import Outcome, Runner
from schedulerx.engine.seed import catch_up, seed_book
from schedulerx.engine.stats import PodStats
from schedulerx.engine.timers import TimerHeap
from schedulerx.engine.writes import Staged, Writes
from schedulerx.ports.clock import Clock
from schedulerx.ports.command import Registration
from schedulerx.ports.event_log import EventLog, LogError, LogSession, Record
from schedulerx.ports.fetcher import ScheduleFetcher
from schedulerx.ports.store import JobStore

log = logging.getLogger("schedulerx.engine")
_DEFAULT_POLICY = Policy()
_TIMEOUT = "timeout:"
_CATCH_UP_RETRY_S = 1.0


class Pod:
    """Runs the registered commands of the partitions this pod owns."""

    def __init__(
        self,
        log_: EventLog,
        store: Callable[[], JobStore],
        registrations: Mapping[str, Registration],
        fetcher: ScheduleFetcher,
        config: PodConfig | None = None,
        clock: Clock | None = None,
    ):
        self.log = log_
        self._open_store = store
        self._store: JobStore | None = None
        self.registrations = dict(registrations)
        self.config = config or PodConfig()
        self.clock = clock or SystemClock()
        self.stats = PodStats()
        self.book = Book()
        self._writes = Writes()
        self._runner = Runner(self.config.workers, self.clock)
        self._timers = TimerHeap(self._on_timer, self.clock.now)
        self._refresher = (
            None
            if getattr(fetcher, "reads_log", False)
            else Refresher(fetcher, list(self.registrations), self.config.refresh_interval)
        )
        self._armed: dict[str, tuple[Job, int]] = {}
        self._armed_lock = threading.Lock()
        self._wakeups: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._bad_fetches: set[str] = set()
        self._latest_fetch: dict[str, Schedule | BaseException | None] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._failure: BaseException | None = None
        self._session: LogSession | None = None
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0
        self._caught_up: set[int] = set()
        self._catching_up: set[int] = set()
        """Owned, but their catch-up failed: neither planned nor claimed, retried."""
        self._catch_up_at = 0.0
        self._deferred: list[bytes] = []
        """Requests for partitions still catching up, handled once they have."""
        self._orphans = Orphans(self.config.pod_id)
        self._foreign = Foreign()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def store(self) -> JobStore:
        """The pod's projection (opened by ``start``, after the log accepted this pod)."""
        if self._store is None:
            raise RuntimeError("the pod has not started: no projection store yet")
        return self._store

    def start(self) -> None:
        """Join the log and start the loop; returns once the pod runs (raises if it cannot)."""
        self._session = self.log.join(self.config.pod_id)
        try:
            self._store = self._open_store()
        except BaseException:
            self._session.close()
            raise
        self._thread = threading.Thread(target=self._main, name="schedulerx-loop", daemon=True)
        self._timers.start()
        if self._refresher is not None:
            self._refresher.start()
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        """Ask the pod to stop gracefully (safe from a signal handler); returns at once."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the loop to end; True when it has. Re-raises a loop failure."""
        finished = self._done.wait(timeout)
        if finished and self._failure is not None:
            raise self._failure
        return finished

    def owned(self) -> frozenset[int]:
        """Partitions this pod owns and has caught up on (empty before the first assignment)."""
        session = self._session
        if session is None or not self.running:
            return frozenset()
        return session.owned() & self._caught_up

    @property
    def ready(self) -> bool:
        """True when the pod is a member that owns partitions and has caught up on all of
        them (readiness probe). A pod of a group with more pods than partitions owns none
        and is not ready, by design: it is a standby."""
        return self.running and bool(self.owned())

    @property
    def running(self) -> bool:
        """True while the loop runs."""
        return self._ready.is_set() and not self._done.is_set()

    def _main(self) -> None:
        assert self._session is not None
        try:
            self._follow_all(self._session)
            self._ready.set()
            while not self._stop.is_set():
                self._iterate(self._session)
            self._shutdown(self._session)
        except BaseException as exc:
            log.exception("pod %s loop failed", self.config.pod_id)
            self._failure = exc
            self._ready.set()
        finally:
            self._timers.stop()
            if self._refresher is not None:
                self._refresher.stop()
            self._runner.shutdown()
            self._session.close()
            self._done.set()

    # -- one iteration ---------------------------------------------------------------------

    def _follow_all(self, session: LogSession) -> None:
        """Bring the projection up to the log end on every partition, then keep following
        them all: the pod's job list shows the whole fleet, not only what it owns."""
        reader = self.log.reader()
        try:
            catch_up(self.store, reader, range(self.log.partitions))
        finally:
            reader.close()
        session.follow({p: self.store.next_offset(p) for p in range(self.log.partitions)})

    def _iterate(self, session: LogSession) -> None:
        poll = session.poll(self._sleep_budget())
        if poll.revoked:
            self._catching_up -= poll.revoked
            self._release(poll.revoked, session)
            self._drop(poll.revoked)
        todo = poll.assigned
        if self._catching_up and self.clock.monotonic() >= self._catch_up_at:
            todo |= self._catching_up
        if todo:
            self._assign(todo)
        self._ingest(poll.records)
        now = self.clock.now()
        deferred, self._deferred = self._deferred, []
        for raw in (*deferred, *poll.requests):
            self._request(raw, now)
        self._fetched(now)
        self._outcomes()
        self._handover(now)
        self._plan(now, session.owned())
        self._sweep(now)
        self._flush(session)

    def _sleep_budget(self) -> float:
        budget = self.config.poll_interval.total_seconds()
        if self._wakeups:
            budget = min(budget, max(0.0, self._wakeups[0][0] - self.clock.now().timestamp()))
        return budget

    def _assign(self, partitions: frozenset[int]) -> None:
        """Catch the projection up, seed the book, report what a lost owner left behind.

        Nothing of ``partitions`` is planned, claimed or changed before its catch-up reached
        the log end: a catch-up that fails (LogError: broker away, reads stalled) is logged,
        counted (``catch_up_failures``) and retried every ``_CATCH_UP_RETRY_S``."""
        try:
            reader = self.log.reader()
            try:
                catch_up(self.store, reader, partitions)
            finally:
                reader.close()
        except LogError as exc:
            self._catching_up |= partitions
            self._catch_up_at = self.clock.monotonic() + _CATCH_UP_RETRY_S
            self.stats.add("catch_up_failures")
            log.warning(
                "catching up partitions %s failed (not acting on them; retry in %gs): %s",
                sorted(partitions),
                _CATCH_UP_RETRY_S,
                exc,
            )
            return
        self._catching_up -= partitions
        self._outcomes()  # outcomes still queued decide first what is ours, not lost
        seed_book(self.book, self.store, partitions, self.log.partitions)
        for cid in self.registrations:
            p = partition_for(cid, self.log.partitions)
            if p in partitions:
                self.book.entry(cid, p)
        now = self.clock.now()
        for entry in self.book.commands.values():
            if entry.partition not in partitions:
                continue
            self._wake(entry.command_id, None)
            left = [
                j for j in entry.jobs.values() if j.status in (JobStatus.CLAIMED, JobStatus.RUNNING)
            ]
            self._recover(entry.partition, [j for j in left if not self._still_run(j, now)], now)
        self._fetched(now, only=partitions)
        self._caught_up |= partitions
        self.stats.add("partition_assignments")
        log.info("pod %s owns partitions %s", self.config.pod_id, sorted(partitions))

    def _still_run(self, job: Job, now: datetime) -> bool:
        """True when a claimed or running ``job`` of a partition just taken is not lost:
        this pod still runs it (the partition came back; what it owes is recorded now), or
        another pod may (shared log, due already): then wait for its reports (``_handover``)."""
        if job.id in self._orphans or any(j.id == job.id for j in self._runner.running_jobs()):
            for o in self._orphans.reclaim(job.id):
                self._runner.outcomes.put(o)
            return True
        if self.log.exclusive or job.owner == self.config.pod_id or job.due > now:
            return False
        self._foreign.watch(job.id, self.clock.monotonic())
        return True

    def _recover(self, partition: int, jobs: list[Job], now: datetime) -> None:
        """Record what lost owners left claimed or running (``planner.recover``)."""
        for job in recover(jobs, now, self._policy):
            self._stage_job(partition, job, now)
            if job.status is JobStatus.FAILED:
                self.stats.add("jobs_owner_lost")
                self.stats.job(job.status, job.error)

    def _handover(self, now: datetime) -> None:
        """Runs across a partition move: record owner lost for foreign runs whose reports
        stopped; send the reports this pod owes on runs of partitions it lost."""
        mono = self.clock.monotonic()
        for jid in self._foreign.expired(mono):
            entry = self.book.commands.get(command_of(jid))
            job = self._writes.latest(jid) or (entry.jobs.get(jid) if entry else None)
            if entry is not None and job is not None and job.owner != self.config.pod_id:
                self._recover(entry.partition, [job], now)
        if not self._orphans:
            return
        recorded = {jid: self.store.job(jid) for jid in self._orphans.ids()}
        reports, given_up = self._orphans.due(mono, recorded)
        for report in reports:
            cid = command_of(report.job_id)
            request = Request(command_id=cid, report=report, source=f"pod:{self.config.pod_id}")
            try:
                self.log.submit(cid, encode_request(request))
            except LogError as exc:
                log.warning("report on %s not sent (will retry): %s", report.job_id, exc)
        for job in given_up:
            log.error("outcome of %s not handed over to the partition's new owner", job.id)

    def _on_report(self, report: RunReport, partition: int, now: datetime) -> None:
        """Record what the pod running a job of ours (since a partition move) says of it."""
        entry = self.book.commands.get(command_of(report.job_id))
        job = self._writes.latest(report.job_id) or (
            entry.jobs.get(report.job_id) if entry else None
        )
        if (
            entry is None
            or job is None
            or job.status not in (JobStatus.CLAIMED, JobStatus.RUNNING)
            or (job.owner, job.attempt) != (report.pod, report.attempt)
        ):
            self.stats.add("reports_ignored")
            return
        self._foreign.heard(job.id, self.clock.monotonic())
        if job.status is JobStatus.CLAIMED:
            self._stage_job(partition, job.to(JobStatus.RUNNING, started_at=report.started_at), now)
        if report.status != "running":
            self._foreign.forget(job.id)
            at = report.finished_at or now
            self._outcome(Outcome(report.status, job, at, report.error))
            self.stats.add("jobs_handed_over")

    def _release(self, partitions: frozenset[int], session: LogSession) -> None:
        """A graceful hand-over: give the claims not yet started back (claimed -> scheduled)
        so the next owner runs them, while the session still accepts our writes."""
        now = self.clock.now()
        with self._armed_lock:
            unstarted = [(j, p) for j, p in self._armed.values() if p in partitions]
            for job, _ in unstarted:
                del self._armed[job.id]
                self._timers.cancel(job.id)
        for job, p in unstarted:
            self._stage_job(p, job.to(JobStatus.SCHEDULED, owner=None), now)
        if unstarted:
            self._flush(session)

    def _drop(self, partitions: frozenset[int]) -> None:
        """Stop at once for partitions no longer owned: disarm their claims, forget them."""
        with self._armed_lock:
            for jid, (_, p) in list(self._armed.items()):
                if p in partitions:
                    del self._armed[jid]
                    self._timers.cancel(jid)
        for p in partitions:
            self._writes.batches.pop(p, None)
        total = self.log.partitions
        for job in self._runner.running_jobs():
            if partition_for(job.command_id, total) in partitions:
                self._orphans.adopt(job)  # it runs on; its story goes to the new owner
        for jid in self._foreign.ids():
            if partition_for(command_of(jid), total) in partitions:
                self._foreign.forget(jid)
        self.book.drop_partitions(partitions)
        self._caught_up -= partitions
        self.stats.add("partition_revocations")
        log.info("pod %s released partitions %s", self.config.pod_id, sorted(partitions))

    def _ingest(self, records: list[Record]) -> None:
        nexts: dict[int, int] = {}
        for r in records:
            if r.partition not in nexts:
                nexts[r.partition] = self.store.next_offset(r.partition)
        fresh = [r for r in records if r.offset >= nexts[r.partition]]
        if not fresh:
            return
        self.store.apply(fresh)
        for r in fresh:
            if r.partition not in self._caught_up:
                continue  # followed for the projection only; the book holds owned partitions
            if r.value is None:
                if r.key.startswith(b"job/"):
                    jid = r.key[4:].decode(errors="replace")
                    self.book.forget_job(jid, command_of(jid))
                continue
            try:
                self._apply(decode(r.value), r.partition)
            except (PoisonRecord, ValueError, TypeError) as exc:
                # The projection skips and counts the same record; the loop must go on.
                self.stats.add("poison_records")
                log.warning(
                    "poison record at partition %d offset %d skipped: %s",
                    r.partition,
                    r.offset,
                    exc,
                )

    def _apply(self, event: AnyEvent, partition: int, own: bool = False) -> None:
        """Apply ``event`` to the book and plan its command again if it changed anything.

        ``own``: the event is this pod's committed write. A job it moved on (claimed,
        running, finished) was decided by the plan or run that wrote it, so nothing is left
        to plan; only a job it put back to ``scheduled`` (new, retry, released) needs a plan,
        which arms its claim. (4 writes per fire used to mean 4 plans per fire.)"""
        if not self.book.apply(event, partition):
            return
        if isinstance(event, JobChanged):
            if own and event.job.status is not JobStatus.SCHEDULED:
                return
            self._wake(event.job.command_id, None)
        else:
            self._wake(event.command_id, None)

    def _request(self, raw: bytes, now: datetime) -> None:
        try:
            request = decode_request(raw)
        except BadRequest as exc:
            self.stats.add("requests_rejected")
            log.warning("bad schedule-change request skipped: %s", exc)
            return
        p = partition_for(request.command_id, self.log.partitions)
        if p in self._catching_up:
            self._deferred.append(raw)  # acted on once the partition is caught up
            return
        if request.report is not None:
            if self._session is not None and p in self._session.owned():
                self._on_report(request.report, p, now)
            return  # else: sent again until recorded, so it reaches the partition's owner
        if self._session is None or p not in self._session.owned():
            self.stats.add("requests_misrouted")
            log.warning(
                "request for %s skipped: its partition %d is not owned here (was it "
                "keyed by the bare command id?)",
                request.command_id,
                p,
            )
            return
        entry = self.book.entry(request.command_id, p)
        registered = request.command_id in self.registrations
        for event in from_request(request, entry.schedule, registered, self.config.pod_id, now):
            if isinstance(event, JobChanged) and (
                entry.status_of(event.job.id) is not None or self._writes.latest(event.job.id)
            ):
                continue  # a redelivered trigger: that job already exists
            self._writes.event(p, event)
            self.stats.add(f"requests_{event.__struct_config__.tag}")

    def _fetched(self, now: datetime, only: frozenset[int] | None = None) -> None:
        """Turn fetcher answers into events; ``only``: replay the latest answers for newly
        assigned partitions (an answer may have come before the partition did)."""
        if self._refresher is None:
            return
        if only is None:
            fresh = self._refresher.drain()
            self._latest_fetch.update(fresh)
        else:
            fresh = list(self._latest_fetch.items())
        for cid, result in fresh:
            if isinstance(result, BaseException):
                if only is None:  # this pod's fetcher failed, whoever owns the command
                    self.stats.add("fetcher_errors")
                    log.warning(
                        "fetching the schedule of %s failed, keeping the last good one: %s",
                        cid,
                        result,
                    )
                continue
            entry = self.book.commands.get(cid)
            if entry is None or (only is not None and entry.partition not in only):
                continue  # not owned here
            events = from_fetch(
                cid, result, entry.schedule, self.config.pod_id, now, self._seen_bad
            )
            for event in events:
                self._writes.event(entry.partition, event)

    def _seen_bad(self, text: str) -> bool:
        if text in self._bad_fetches:
            return True
        self._bad_fetches.add(text)
        self.stats.add("fetcher_errors")
        return False

    # -- outcomes and timers ---------------------------------------------------------------

    def _outcomes(self) -> None:
        q = self._runner.outcomes
        while not q.empty():
            self._outcome(q.get_nowait())

    def _outcome(self, o: Outcome) -> None:
        if o.job.id in self._orphans:
            self._orphans.outcome(o)
            return
        entry = self.book.commands.get(o.job.command_id)
        if entry is None:
            if o.kind != "skipped":
                # The partition went while the outcome waited in the queue (the run had just
                # ended, or just begun): the new owner hears it from us like any moved run.
                self._orphans.adopt(o.job)
                self._orphans.outcome(o)
            return
        current = self._writes.latest(o.job.id) or entry.jobs.get(o.job.id)
        if current is None:
            return
        try:
            new = self._outcome_state(o, current)
        except IllegalTransition:
            log.warning("outcome %s of %s ignored: the job is %s", o.kind, o.job.id, current.status)
            return
        self.stats.job(new.status, new.error)
        self._stage_job(entry.partition, new, o.at)

    def _outcome_state(self, o: Outcome, current: Job) -> Job:
        """The state ``o`` moves ``current`` to (IllegalTransition if it cannot)."""
        if o.kind == "running":
            self.stats.lag((o.at - o.job.due).total_seconds())
            return current.to(JobStatus.RUNNING, started_at=o.at)
        if o.kind == "succeeded":
            return current.to(JobStatus.SUCCEEDED, finished_at=o.at, error=None)
        if o.kind == "skipped":
            return current.to(JobStatus.MISSED, finished_at=o.at, error=o.error)
        policy = self._policy(o.job.command_id)
        if current.status is JobStatus.RUNNING and current.attempt <= policy.retries:
            return current.to(
                JobStatus.SCHEDULED,
                attempt=current.attempt + 1,
                owner=None,
                error=o.error,
                not_before=o.at + backoff(policy, current.attempt),
            )
        return current.to(JobStatus.FAILED, finished_at=o.at, error=o.error)

    def _on_timer(self, key: str) -> None:
        """Timer thread: start a claimed job (or expire a running one)."""
        if key.startswith(_TIMEOUT):
            jid = key[len(_TIMEOUT) :]
            reg = self.registrations.get(command_of(jid))
            limit = reg.policy.timeout if reg else None
            self._runner.expire(jid, f"timeout after {limit.total_seconds() if limit else 0:g}s")
            return
        with self._armed_lock:
            armed = self._armed.pop(key, None)
        if armed is None:
            return
        job, partition = armed
        session = self._session
        if session is None or partition not in session.owned():
            log.warning("not starting %s: partition %d is no longer owned", job.id, partition)
            return
        reg = self.registrations[job.command_id]
        if reg.policy.overlap == "skip" and (
            busy := self._runner.running_of(job.command_id)
            # A run another pod reports is going on; one merely left behind may be dead
            # (kill -9): skipping for it would turn a crash into a lease of misses.
            or [j for j in self._foreign.alive() if command_of(j) == job.command_id]
        ):
            self._runner.outcomes.put(
                Outcome(
                    "skipped",
                    job,
                    self.clock.now(),
                    f"overlap: previous run {busy[0]} still running",
                )
            )
            return
        self._runner.submit(job, reg)
        if reg.policy.timeout is not None:
            self._timers.arm(_TIMEOUT + job.id, self.clock.now() + reg.policy.timeout)

    # -- planning --------------------------------------------------------------------------

    def _policy(self, command_id: str) -> Policy:
        reg = self.registrations.get(command_id)
        return reg.policy if reg else _DEFAULT_POLICY

    def _wake(self, command_id: str, at: datetime | None) -> None:
        ts = self.clock.now().timestamp() if at is None else at.timestamp()
        heapq.heappush(self._wakeups, (ts, next(self._seq), command_id))

    def _plan(self, now: datetime, owned: frozenset[int], claim: bool = True) -> None:
        """Plan every command whose wake-up time has come (or that an event changed);
        ``claim=False`` (stopping) plans jobs but claims none."""
        due: set[str] = set()
        horizon = now.timestamp()
        while self._wakeups and self._wakeups[0][0] <= horizon:
            due.add(heapq.heappop(self._wakeups)[2])
        for cid in due:
            entry = self.book.commands.get(cid)
            if entry is None:
                continue
            if entry.partition not in owned:
                # Still ours in the book but not confirmed right now (lease lapsing): keep the
                # wake-up; the session reports the partition revoked if it really went.
                self._wake(cid, now + timedelta(milliseconds=100))
                continue
            if any(j in self._writes.jobs for j in entry.jobs):
                self._wake(cid, None)  # its last writes have not committed yet
                continue
            self._plan_one(entry, now, claim)

    def _plan_one(self, entry: CommandEntry, now: datetime, claim: bool = True) -> None:
        s = entry.schedule
        reg = self.registrations.get(entry.command_id)
        view = CommandView(
            command_id=entry.command_id,
            cron=s.cron if s else None,
            params=s.params if s else (),
            timezone=s.timezone if s else "UTC",
            paused=s.paused if s else False,
            registered=reg is not None,
            policy=reg.policy if reg else _DEFAULT_POLICY,
            open_jobs=tuple(entry.jobs.values()),
            horizon=entry.planned_until(),
        )
        result = plan(view, now, self.config.claim_lead, entry.status_of)
        if result.unrecorded:
            self.stats.add("jobs_unrecorded", result.unrecorded)
            log.warning(
                "%s: %d cron times older than the newest %d missed ones got no job "
                "(the whole fleet was down)",
                entry.command_id,
                result.unrecorded,
                MAX_BACKFILL,
            )
        for job in result.changes:
            self._stage_job(entry.partition, job, now)
            if job.status.terminal:
                self.stats.job(job.status, job.error)
        changed = {c.id for c in result.changes}
        claimable = [j for j in result.to_claim if claim and j.id not in changed]
        for job in claimable:
            self._stage_job(
                entry.partition, job.to(JobStatus.CLAIMED, owner=self.config.pod_id), now
            )
        entry.wake_at = result.wake_at
        if result.wake_at is not None:
            self._wake(entry.command_id, result.wake_at)

    def _stage_job(self, partition: int, job: Job, now: datetime) -> None:
        self._writes.event(
            partition, JobChanged(event_id=new_event_id(), pod=self.config.pod_id, ts=now, job=job)
        )

    def _sweep(self, now: datetime) -> None:
        """Tombstone finished jobs beyond each owned command's history limit."""
        mono = self.clock.monotonic()
        if mono < self._next_sweep:
            return
        self._next_sweep = mono + self.config.retention_sweep.total_seconds()
        for entry in list(self.book.commands.values()):
            limit = self._policy(entry.command_id).history_limit
            done = [j for j in self.store.jobs(command_id=entry.command_id) if j.status.terminal]
            for job in done[: max(0, len(done) - limit)]:
                self._writes.tombstone(entry.partition, job_key(job.id))
                self.stats.add("jobs_expired")

    # -- writing ---------------------------------------------------------------------------

    def _flush(self, session: LogSession) -> None:
        self._writes.flush(session, self._committed, self._lost)

    def _committed(self, partition: int, staged: list[Staged], offsets: list[int]) -> None:
        # Our own writes go into the projection at once (read-your-writes for list_jobs);
        # when the log hands them back, the offset filter in _ingest skips them.
        stamp = int(self.clock.now().timestamp() * 1000)
        self.store.apply(
            [
                Record(partition, offset, s.item[0], s.item[1], stamp)
                for s, offset in zip(staged, offsets, strict=True)
            ]
        )
        for s, offset in zip(staged, offsets, strict=True):
            if s.event is None:
                continue
            self._apply(s.event, partition, own=True)
            if isinstance(s.event, JobChanged):
                job = s.event.job
                log.info(
                    "job=%s status=%s command=%s pod=%s partition=%d offset=%d%s",
                    job.id,
                    job.status,
                    job.command_id,
                    self.config.pod_id,
                    partition,
                    offset,
                    f" error={job.error!r}" if job.error else "",
                )
                if job.status is JobStatus.CLAIMED and job.owner == self.config.pod_id:
                    with self._armed_lock:
                        self._armed[job.id] = (job, partition)
                    self._timers.arm(job.id, job.due)

    def _lost(self, partition: int) -> None:
        self._drop(frozenset({partition}))

    # -- graceful stop ---------------------------------------------------------------------

    def _shutdown(self, session: LogSession) -> None:
        """Stop claiming; release unstarted claims; let running jobs finish within the grace."""
        now = self.clock.now()
        with self._armed_lock:
            unstarted = list(self._armed.values())
            self._armed.clear()
        for job, partition in unstarted:
            self._timers.cancel(job.id)
            self._stage_job(partition, job.to(JobStatus.SCHEDULED, owner=None), now)
        self._outcomes()
        self._flush(session)
        # A stop right after a due second may come before that second's plan (which adds the
        # new second of the next 2): plan what is due, without claiming, so the next owner
        # finds 2 scheduled jobs.
        self._plan(self.clock.now(), session.owned(), claim=False)
        self._flush(session)
        deadline = self.clock.monotonic() + self.config.stop_grace.total_seconds()
        while self._runner.running_count() and self.clock.monotonic() < deadline:
            session.poll(self.config.poll_interval.total_seconds())
            self._outcomes()
            self._handover(self.clock.now())
            self._flush(session)
        self._outcomes()
        self._handover(self.clock.now())  # outcomes of runs of lost partitions go out now
        for entry in self.book.commands.values():
            for job in list(entry.jobs.values()):
                if job.status is JobStatus.RUNNING and job.owner == self.config.pod_id:
                    grace = self.config.stop_grace.total_seconds()
                    self._stage_job(
                        entry.partition,
                        job.to(
                            JobStatus.FAILED,
                            finished_at=self.clock.now(),
                            error=f"pod stopped: still running after the {grace:g}s stop grace",
                        ),
                        now,
                    )
        self._flush(session)
        log.info("pod %s stopped", self.config.pod_id)
