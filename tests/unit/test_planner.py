"""Planning decisions (schedulerx.domain.planner): explicit times, no clock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedulerx.domain.cron import Cron
from schedulerx.domain.job import Job, JobStatus, allowed, job_id
from schedulerx.domain.planner import CommandView, Plan, backoff, plan, recover
from schedulerx.domain.schedule import Policy

S = JobStatus
CID = "backup"
LEAD = timedelta(milliseconds=500)
# Deliberately not on a whole second: fire times are whole seconds, ``now`` rarely is.
T0 = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
EVERY_MINUTE = "0 * * * * *"


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def sec(n: float) -> timedelta:
    return timedelta(seconds=n)


def view(
    cron: str | None = EVERY_MINUTE,
    jobs: Iterable[Job] = (),
    *,
    params: tuple[str, ...] = (),
    paused: bool = False,
    registered: bool = True,
    policy: Policy | None = None,
    horizon: datetime | None = None,
) -> CommandView:
    return CommandView(
        command_id=CID,
        cron=cron,
        params=params,
        timezone="UTC",
        paused=paused,
        registered=registered,
        policy=policy or Policy(),
        open_jobs=tuple(jobs),
        horizon=horizon,
    )


def sched(t: datetime, **kw: object) -> Job:
    fields: dict[str, object] = {
        "id": job_id(CID, t),
        "command_id": CID,
        "scheduled_at": t,
        "status": S.SCHEDULED,
    }
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


def nothing(_jid: str) -> S | None:
    return None


class World:
    """Every job ever written for the command, as the log would hold them."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    def status_of(self, jid: str) -> S | None:
        job = self.jobs.get(jid)
        return job.status if job else None

    def write(self, job: Job) -> None:
        before = self.jobs.get(job.id)
        assert allowed(before.status if before else None, job.status), (before, job)
        self.jobs[job.id] = job

    def apply(self, p: Plan) -> Plan:
        for job in p.changes:
            self.write(job)
        return p

    def open(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.status.terminal]

    def scheduled(self) -> list[datetime]:
        return sorted(j.scheduled_at for j in self.jobs.values() if j.status is S.SCHEDULED)

    def plan(self, now: datetime, **kw: object) -> Plan:
        return self.apply(plan(view(jobs=self.open(), **kw), now, LEAD, self.status_of))  # type: ignore[arg-type]


def by_id(jobs: Iterable[Job]) -> dict[str, Job]:
    return {j.id: j for j in jobs}


# -- the next 2 ------------------------------------------------------------------------------


def test_a_new_command_gets_its_next_two_times() -> None:
    p = plan(view("0 3 * * *", params=("--full",)), T0, LEAD, nothing)
    assert [j.scheduled_at for j in p.changes] == [utc(2026, 5, 2, 3), utc(2026, 5, 3, 3)]
    for j in p.changes:
        assert j.id == job_id(CID, j.scheduled_at)
        assert (j.status, j.params, j.trigger, j.attempt, j.owner) == (
            S.SCHEDULED,
            ("--full",),
            "schedule",
            1,
            None,
        )
    assert p.to_claim == ()


def test_six_field_cron_plans_seconds() -> None:
    p = plan(view("*/1 * * * * *"), T0, timedelta(0), nothing)
    assert [j.scheduled_at for j in p.changes] == [
        utc(2026, 5, 1, 12, 0, 1),
        utc(2026, 5, 1, 12, 0, 2),
    ]


def test_replanning_is_idempotent() -> None:
    world = World()
    first = world.plan(T0)
    assert len(first.changes) == 2
    for now in (T0, T0 + sec(1), T0 + sec(59)):
        again = world.plan(now)
        assert again.changes == ()
    assert world.scheduled() == [utc(2026, 5, 1, 12, 1), utc(2026, 5, 1, 12, 2)]


def test_passing_the_first_job_plans_exactly_one_more() -> None:
    world = World()
    world.plan(T0)
    first = world.jobs[job_id(CID, utc(2026, 5, 1, 12, 1))]
    world.write(first.to(S.CLAIMED, owner="pod-1"))
    p = world.plan(utc(2026, 5, 1, 12, 1, 0, 100000))
    assert [j.scheduled_at for j in p.changes] == [utc(2026, 5, 1, 12, 3)]
    assert world.scheduled() == [utc(2026, 5, 1, 12, 2), utc(2026, 5, 1, 12, 3)]


def test_a_job_still_scheduled_when_due_is_claimable_and_one_more_is_planned() -> None:
    world = World()
    world.plan(T0)
    now = utc(2026, 5, 1, 12, 1, 0, 100000)
    p = world.plan(now)
    assert [j.scheduled_at for j in p.changes] == [utc(2026, 5, 1, 12, 3)]
    assert [j.scheduled_at for j in p.to_claim] == [utc(2026, 5, 1, 12, 1)]


def test_jobs_due_within_the_lead_are_to_claim() -> None:
    world = World()
    world.plan(T0)
    first, second = utc(2026, 5, 1, 12, 1), utc(2026, 5, 1, 12, 2)
    assert world.plan(first - LEAD - sec(0.001)).to_claim == ()
    assert [j.scheduled_at for j in world.plan(first - LEAD).to_claim] == [first]
    p = world.plan(first - sec(0.1))
    assert [j.scheduled_at for j in p.to_claim] == [first]
    assert second not in [j.scheduled_at for j in p.to_claim]
    assert p.changes == ()  # claiming is the engine's write, not a plan change


def test_exists_prevents_replanning_a_finished_id() -> None:
    done = job_id(CID, utc(2026, 5, 1, 12, 1))
    p = plan(view(), T0, LEAD, lambda jid: S.SUCCEEDED if jid == done else None)
    assert [j.scheduled_at for j in p.changes] == [utc(2026, 5, 1, 12, 2)]


# -- schedule changes ------------------------------------------------------------------------


def test_schedule_change_cancels_what_no_longer_matches_and_plans_the_new_times() -> None:
    world = World()
    world.plan(T0)  # 12:01, 12:02
    now = T0 + sec(10)
    p = world.plan(now, cron="0 */2 * * * *")  # every 2 minutes: 12:02, 12:04
    changed = by_id(p.changes)
    gone = changed[job_id(CID, utc(2026, 5, 1, 12, 1))]
    assert (gone.status, gone.error, gone.finished_at) == (S.CANCELED, "schedule changed", now)
    assert job_id(CID, utc(2026, 5, 1, 12, 2)) not in changed  # still matches: kept
    assert world.scheduled() == [utc(2026, 5, 1, 12, 2), utc(2026, 5, 1, 12, 4)]


def test_params_change_cancels_future_jobs() -> None:
    world = World()
    world.plan(T0, params=("--old",))
    now = T0 + sec(10)
    p = world.plan(now, params=("--new",))
    canceled = [j for j in p.changes if j.status is S.CANCELED]
    assert len(canceled) == 2
    assert {j.error for j in canceled} == {"schedule changed"}
    assert all(j.params == ("--old",) for j in canceled)


def test_params_change_keeps_the_next_two_with_the_new_params() -> None:
    world = World()
    world.plan(T0, params=("--old",))
    world.plan(T0 + sec(10), params=("--new",))
    upcoming = [j for j in world.jobs.values() if j.status is S.SCHEDULED]
    assert [j.scheduled_at for j in upcoming] == [utc(2026, 5, 1, 12, 1), utc(2026, 5, 1, 12, 2)]
    assert all(j.params == ("--new",) for j in upcoming)


def test_pause_cancels_future_jobs_and_plans_nothing() -> None:
    world = World()
    world.plan(T0)
    now = T0 + sec(5)
    p = world.plan(now, paused=True)
    assert {(j.status, j.error) for j in p.changes} == {(S.CANCELED, "schedule paused")}
    assert len(p.changes) == 2
    assert p.to_claim == ()
    assert world.plan(now + sec(600), paused=True).changes == ()
    assert world.scheduled() == []


def test_resume_after_pause_restores_the_next_two() -> None:
    world = World()
    world.plan(T0, cron="0 3 * * *")
    world.plan(T0 + sec(5), cron="0 3 * * *", paused=True)
    world.plan(T0 + sec(10), cron="0 3 * * *", paused=False)
    assert world.scheduled() == [utc(2026, 5, 2, 3), utc(2026, 5, 3, 3)]


def test_removal_cancels_future_jobs() -> None:
    world = World()
    world.plan(T0)
    p = world.plan(T0 + sec(5), cron=None)
    assert {(j.status, j.error) for j in p.changes} == {(S.CANCELED, "schedule removed")}
    assert len(p.changes) == 2
    assert world.plan(T0 + sec(300), cron=None).changes == ()


@pytest.mark.parametrize(
    "change", [{"cron": "30 * * * * *"}, {"paused": True}, {"cron": None}, {"params": ("x",)}]
)
def test_manual_and_retried_jobs_survive_schedule_changes(change: dict[str, object]) -> None:
    manual = sched(T0 + sec(3600), id=job_id(CID, T0, "~manual-abc"), trigger="manual")
    retry = sched(utc(2026, 5, 1, 11, 59), attempt=2, not_before=T0 + sec(3600))
    p = plan(view(jobs=[manual, retry], **change), T0, LEAD, nothing)  # type: ignore[arg-type]
    assert not {manual.id, retry.id} & {j.id for j in p.changes if j.status is S.CANCELED}


def test_a_due_manual_job_is_claimed_even_when_paused() -> None:
    manual = sched(T0, id=job_id(CID, T0, "~manual-abc"), trigger="manual")
    p = plan(view(jobs=[manual], paused=True), T0 + sec(0.1), LEAD, nothing)
    assert [j.id for j in p.to_claim] == [manual.id]
    assert p.changes == ()


# -- misfires, coalescing, backfill ----------------------------------------------------------


def test_a_job_late_past_the_grace_is_missed_with_a_reason() -> None:
    t = utc(2026, 5, 1, 12, 1)
    now = t + sec(31)
    p = plan(view(jobs=[sched(t)]), now, LEAD, nothing)
    missed = by_id(p.changes)[job_id(CID, t)]
    assert missed.status is S.MISSED
    assert missed.error is not None
    assert "late by 31.000s" in missed.error
    assert missed.finished_at == now
    assert job_id(CID, t) not in {j.id for j in p.to_claim}


def test_a_job_late_exactly_the_grace_still_runs() -> None:
    t = utc(2026, 5, 1, 12, 1)
    p = plan(view(jobs=[sched(t)]), t + sec(30), LEAD, nothing)
    assert [j.id for j in p.to_claim] == [job_id(CID, t)]


def test_misfire_grace_counts_from_the_retry_backoff() -> None:
    t = utc(2026, 5, 1, 12, 1)
    retry = sched(t, attempt=2, not_before=t + sec(60))
    p = plan(view(jobs=[retry]), t + sec(70), LEAD, nothing)
    assert [j.id for j in p.to_claim] == [retry.id]


def three_late(policy: Policy) -> tuple[Plan, list[Job], datetime]:
    late = [sched(utc(2026, 5, 1, 12, 1, s)) for s in (0, 10, 20)]
    now = utc(2026, 5, 1, 12, 1, 25)
    return plan(view("*/10 * * * * *", late, policy=policy), now, LEAD, nothing), late, now


def test_coalescing_runs_only_the_newest_late_job() -> None:
    p, late, now = three_late(Policy(misfire_grace=sec(60)))
    newest = late[-1].id
    assert [j.id for j in p.to_claim] == [newest]
    changed = by_id(p.changes)
    for j in late[:-1]:
        assert changed[j.id].status is S.MISSED
        assert changed[j.id].error == f"coalesced into {newest}"
        assert changed[j.id].finished_at == now
    assert newest not in changed


def test_without_coalescing_every_late_job_within_grace_runs() -> None:
    p, late, _ = three_late(Policy(misfire_grace=sec(60), coalesce=False))
    assert [j.id for j in p.to_claim] == [j.id for j in late]
    assert not [j for j in p.changes if j.status is S.MISSED]


def test_coalescing_never_swallows_a_manual_run() -> None:
    t = utc(2026, 5, 1, 12, 1, 20)
    manual = sched(t, id=job_id(CID, t, "~manual-abc"), trigger="manual")
    planned = sched(utc(2026, 5, 1, 12, 1, 10))
    p = plan(view("*/10 * * * * *", [planned, manual]), t + sec(1), LEAD, nothing)
    assert {j.id for j in p.to_claim} == {planned.id, manual.id}


def test_backfill_after_downtime_leaves_no_time_without_a_job() -> None:
    horizon = utc(2026, 5, 1, 12, 0)
    now = utc(2026, 5, 1, 12, 10, 10)
    p = plan(view(horizon=horizon), now, LEAD, nothing)
    world = World()
    world.apply(p)
    past = list(Cron.parse(EVERY_MINUTE).times_between(horizon, now))
    assert len(past) == 10
    for t in past:
        assert job_id(CID, t) in world.jobs, t
    # 12:10 is 10 s late (within the 30 s grace): it runs; the rest are missed, with reasons.
    assert [j.scheduled_at for j in p.to_claim] == [utc(2026, 5, 1, 12, 10)]
    for t in past[:-1]:
        j = world.jobs[job_id(CID, t)]
        assert j.status is S.MISSED
        assert j.error is not None
        assert "late by" in j.error
    assert world.scheduled() == [
        utc(2026, 5, 1, 12, 10),
        utc(2026, 5, 1, 12, 11),
        utc(2026, 5, 1, 12, 12),
    ]


@pytest.mark.parametrize("coalesce", [True, False])
def test_backfill_within_a_long_grace_follows_the_coalesce_policy(coalesce: bool) -> None:
    horizon, now = utc(2026, 5, 1, 12, 0), utc(2026, 5, 1, 12, 5, 10)
    policy = Policy(misfire_grace=sec(3600), coalesce=coalesce)
    world = World()
    p = world.apply(plan(view(horizon=horizon, policy=policy), now, LEAD, nothing))
    past = [utc(2026, 5, 1, 12, m) for m in range(1, 6)]
    assert all(job_id(CID, t) in world.jobs for t in past)
    if coalesce:
        assert [j.scheduled_at for j in p.to_claim] == [past[-1]]
        for t in past[:-1]:
            j = world.jobs[job_id(CID, t)]
            assert (j.status, j.error) == (S.MISSED, f"coalesced into {job_id(CID, past[-1])}")
    else:
        assert [j.scheduled_at for j in p.to_claim] == past


def test_backfill_skips_times_that_already_have_a_job() -> None:
    horizon, now = utc(2026, 5, 1, 12, 0), utc(2026, 5, 1, 12, 3, 10)
    done = job_id(CID, utc(2026, 5, 1, 12, 2))
    p = plan(view(horizon=horizon), now, LEAD, lambda jid: S.SUCCEEDED if jid == done else None)
    assert done not in {j.id for j in p.changes}
    assert job_id(CID, utc(2026, 5, 1, 12, 1)) in {j.id for j in p.changes}


def test_no_backfill_while_paused() -> None:
    p = plan(view(paused=True, horizon=T0 - sec(600)), T0, LEAD, nothing)
    assert p.changes == ()
    assert p.to_claim == ()


# -- unregistered commands (rolling deploy) --------------------------------------------------


def test_unregistered_command_plans_and_claims_nothing() -> None:
    p = plan(view(registered=False, horizon=T0 - sec(600)), T0, LEAD, nothing)
    assert p.changes == ()
    assert p.to_claim == ()


def test_unregistered_due_job_within_grace_is_kept_not_claimed() -> None:
    t = utc(2026, 5, 1, 12, 1)
    p = plan(view(jobs=[sched(t)], registered=False), t + sec(5), LEAD, nothing)
    assert p.changes == ()
    assert p.to_claim == ()


def test_unregistered_due_job_past_grace_is_missed_naming_the_command() -> None:
    t = utc(2026, 5, 1, 12, 1)
    p = plan(view(jobs=[sched(t)], registered=False), t + sec(31), LEAD, nothing)
    (missed,) = p.changes
    assert missed.status is S.MISSED
    assert missed.error is not None
    assert f"{CID!r} is not registered" in missed.error
    assert "late by" in missed.error
    assert p.to_claim == ()


def test_unregistered_due_job_does_not_busy_loop() -> None:
    t = utc(2026, 5, 1, 12, 1)
    now = t + sec(5)
    p = plan(view(jobs=[sched(t)], registered=False), now, LEAD, nothing)
    assert p.changes == ()
    assert p.wake_at is not None
    assert p.wake_at > now


# -- wake_at ---------------------------------------------------------------------------------


def test_wake_at_for_planned_jobs_is_the_claim_time() -> None:
    world = World()
    world.plan(T0)
    p = world.plan(T0 + sec(1))
    assert p.wake_at == utc(2026, 5, 1, 12, 1) - LEAD


def test_no_wake_without_schedule_or_jobs() -> None:
    assert plan(view(cron=None), T0, LEAD, nothing).wake_at is None


@settings(max_examples=150, deadline=None)
@given(
    cron=st.sampled_from(["*/1 * * * * *", "*/7 * * * * *", EVERY_MINUTE, "0 3 * * *"]),
    first=st.integers(min_value=0, max_value=86_400_000),
    later=st.integers(min_value=0, max_value=120_000),
    lead_ms=st.integers(min_value=0, max_value=2000),
)
def test_wake_at_is_never_past_and_never_after_a_claim_time(
    cron: str, first: int, later: int, lead_ms: int
) -> None:
    lead = timedelta(milliseconds=lead_ms)
    start = T0 + timedelta(milliseconds=first)
    now = start + timedelta(milliseconds=later)
    world = World()
    world.apply(plan(view(cron), start, lead, world.status_of))
    before = world.open()
    p = world.apply(plan(view(cron, before), now, lead, world.status_of))
    assert p.wake_at is not None
    assert p.wake_at >= now
    still_open = {j.id for j in world.open()}
    for job in before:
        if job.id in still_open and job.status is S.SCHEDULED:
            assert p.wake_at <= max(now, job.due - lead)


# -- clock skew ------------------------------------------------------------------------------


def test_a_clock_behind_does_not_cancel_jobs_of_an_unchanged_schedule() -> None:
    world = World()
    world.plan(T0, cron="*/1 * * * * *")  # 12:00:01, 12:00:02 (planned by a pod ahead)
    p = world.plan(T0 - sec(2), cron="*/1 * * * * *")
    assert not [j for j in p.changes if j.status is S.CANCELED]


# -- a whole day in fast forward -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    cron=st.sampled_from(["*/5 * * * * *", "*/20 * * * * *", EVERY_MINUTE]),
    steps=st.lists(st.integers(min_value=1, max_value=150), min_size=1, max_size=12),
    coalesce=st.booleans(),
)
def test_simulated_pod_never_silently_misses_a_time(
    cron: str, steps: list[int], coalesce: bool
) -> None:
    """A pod that plans at arbitrary moments (sometimes long gaps) and runs what it claims:
    every cron time ends up as exactly one job, and every one not run has a reason."""
    policy = Policy(misfire_grace=sec(10), coalesce=coalesce)
    world = World()
    now = T0
    for step in [0, *steps]:
        now += sec(step)
        # Timers: claimed jobs start at their due time and succeed.
        for j in world.open():
            if j.status is S.CLAIMED and j.due <= now:
                world.write(j.to(S.RUNNING, started_at=j.due))
                world.write(world.jobs[j.id].to(S.SUCCEEDED, finished_at=j.due))
        planned = [j.scheduled_at for j in world.jobs.values() if j.trigger == "schedule"]
        horizon = max([T0, *planned])
        p = world.apply(
            plan(
                view(cron, world.open(), policy=policy, horizon=horizon), now, LEAD, world.status_of
            )
        )
        new_ids = {j.id for j in p.changes}
        for j in p.to_claim:
            if j.id not in new_ids:  # as the pod: claim what the log already holds
                world.write(world.jobs[j.id].to(S.CLAIMED, owner="pod-1"))
        assert len([j for j in world.open() if j.scheduled_at > now]) >= 2  # the next 2
    for t in Cron.parse(cron).times_between(T0, now):
        final = world.jobs.get(job_id(CID, t))
        assert final is not None, f"{t} has no job"
        if final.status in (S.MISSED, S.CANCELED, S.FAILED):
            assert final.error
        if final.status is S.MISSED and not coalesce:
            assert "late by" in (final.error or "")


# -- recovery after an owner is lost ---------------------------------------------------------


def no_retries(_cid: str) -> Policy:
    return Policy()


def test_recover_running_job_fails_owner_lost() -> None:
    t = utc(2026, 5, 1, 12, 1)
    running = sched(t, status=S.RUNNING, owner="pod-a", started_at=t)
    now = t + sec(90)
    (out,) = recover([running], now, no_retries)
    assert out.status is S.FAILED
    assert out.error is not None
    assert "owner lost" in out.error
    assert "pod-a" in out.error
    assert out.finished_at == now


def test_recover_claimed_past_due_fails_owner_lost() -> None:
    t = utc(2026, 5, 1, 12, 1)
    claimed = sched(t, status=S.CLAIMED, owner="pod-a")
    (out,) = recover([claimed], t + sec(0.001), lambda _c: Policy(retries=5))
    assert out.status is S.FAILED
    assert out.error is not None
    assert "owner lost" in out.error


def test_recover_claimed_not_yet_due_goes_back_to_scheduled() -> None:
    t = utc(2026, 5, 1, 12, 1)
    claimed = sched(t, status=S.CLAIMED, owner="pod-a")
    (out,) = recover([claimed], t - sec(0.2), no_retries)
    assert out.status is S.SCHEDULED
    assert out.owner is None
    assert (out.id, out.scheduled_at, out.attempt) == (claimed.id, t, 1)


def test_recover_with_retries_reschedules_running_jobs_with_backoff() -> None:
    t = utc(2026, 5, 1, 12, 1)
    policy = Policy(retries=2, retry_backoff=sec(4))
    now = t + sec(60)
    first = sched(t, status=S.RUNNING, owner="pod-a", started_at=t)
    (out,) = recover([first], now, lambda _c: policy)
    assert (out.status, out.attempt, out.owner) == (S.SCHEDULED, 2, None)
    assert out.not_before == now + sec(4)
    assert out.due == now + sec(4)
    assert out.error is not None
    assert "owner lost" in out.error
    second = out.to(S.CLAIMED, owner="pod-b").to(S.RUNNING)
    (again,) = recover([second], now, lambda _c: policy)
    assert (again.status, again.attempt, again.not_before) == (S.SCHEDULED, 3, now + sec(8))
    third = again.to(S.CLAIMED, owner="pod-c").to(S.RUNNING)
    (last,) = recover([third], now, lambda _c: policy)
    assert last.status is S.FAILED  # retries exhausted


def test_recover_leaves_other_jobs_alone() -> None:
    t = utc(2026, 5, 1, 12, 1)
    jobs = [sched(t), sched(t, status=S.SUCCEEDED), sched(t, status=S.MISSED, error="x")]
    assert recover(jobs, t + sec(60), no_retries) == []


def test_recover_asks_the_policy_of_each_jobs_command() -> None:
    t = utc(2026, 5, 1, 12, 1)
    a = Job(id=job_id("a", t), command_id="a", scheduled_at=t, status=S.RUNNING, owner="x")
    b = Job(id=job_id("b", t), command_id="b", scheduled_at=t, status=S.RUNNING, owner="x")
    policies = {"a": Policy(retries=1), "b": Policy()}
    out = by_id(recover([a, b], t + sec(5), policies.__getitem__))
    assert out[a.id].status is S.SCHEDULED
    assert out[b.id].status is S.FAILED


@pytest.mark.parametrize(("attempt", "seconds"), [(0, 3), (1, 3), (2, 6), (3, 12), (4, 24)])
def test_backoff_doubles(attempt: int, seconds: int) -> None:
    assert backoff(Policy(retry_backoff=sec(3)), attempt) == sec(seconds)
