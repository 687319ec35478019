"""The job state machine (schedulerx.domain.job): transitions, ids, ``command_of``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedulerx.domain.job import (
    TERMINAL,
    IllegalTransition,
    Job,
    JobStatus,
    allowed,
    command_of,
    follows,
    job_id,
)

S = JobStatus
# The graph written out by hand (not read from the module), so a change to it fails here.
GRAPH: dict[JobStatus | None, set[JobStatus]] = {
    None: {S.SCHEDULED},
    S.SCHEDULED: {S.CLAIMED, S.CANCELED, S.MISSED},
    S.CLAIMED: {S.RUNNING, S.SCHEDULED, S.FAILED, S.MISSED},
    S.RUNNING: {S.SUCCEEDED, S.FAILED, S.SCHEDULED},
    S.SUCCEEDED: set(),
    S.FAILED: set(),
    S.CANCELED: set(),
    S.MISSED: set(),
}
PAIRS = list(itertools.product([None, *JobStatus], JobStatus))
T = datetime(2026, 12, 4, 10, 15, tzinfo=UTC)


def job(status: JobStatus = S.SCHEDULED, **kw: object) -> Job:
    fields: dict[str, object] = {
        "id": job_id("backup", T),
        "command_id": "backup",
        "scheduled_at": T,
        "status": status,
    }
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


def test_statuses_are_the_documented_seven() -> None:
    assert {s.value for s in JobStatus} == {
        "scheduled",
        "claimed",
        "running",
        "succeeded",
        "failed",
        "canceled",
        "missed",
    }
    assert {s for s in JobStatus if s.terminal} == {S.SUCCEEDED, S.FAILED, S.CANCELED, S.MISSED}
    assert frozenset(s for s in JobStatus if s.terminal) == TERMINAL


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_allowed_matches_the_graph(current: JobStatus | None, new: JobStatus) -> None:
    assert allowed(current, new) is (new in GRAPH[current])


@pytest.mark.parametrize(
    ("current", "new"), [p for p in PAIRS if p[0] is not None], ids=lambda s: str(s)
)
def test_job_to_moves_only_along_the_graph(current: JobStatus, new: JobStatus) -> None:
    before = job(current)
    if new in GRAPH[current]:
        after = before.to(new, owner="pod-1")
        assert after.status is new
        assert after.owner == "pod-1"
        assert before.status is current  # frozen: the original is untouched
        assert (after.id, after.scheduled_at) == (before.id, before.scheduled_at)
    else:
        with pytest.raises(IllegalTransition) as info:
            before.to(new)
        message = str(info.value)
        assert "\n" not in message
        assert before.id in message
        assert f"{current} -> {new}" in message


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_statuses_never_move(status: JobStatus) -> None:
    done = job(status)
    for new in JobStatus:
        with pytest.raises(IllegalTransition):
            done.to(new)


def test_illegal_transition_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        job(S.SUCCEEDED).to(S.RUNNING)


@given(st.lists(st.sampled_from(list(JobStatus)), max_size=30))
def test_random_walks_stay_in_the_graph(targets: list[JobStatus]) -> None:
    current = job(S.SCHEDULED)
    path = [current.status]
    for target in targets:
        try:
            current = current.to(target)
        except IllegalTransition:
            assert target not in GRAPH[current.status]
            continue
        assert target in GRAPH[path[-1]]
        path.append(current.status)
    # Once terminal, the walk never moved again.
    for i, status in enumerate(path):
        if status.terminal:
            assert i == len(path) - 1


def _walk(steps: list[tuple[JobStatus, str]]) -> list[Job]:
    """The states a job goes through taking ``steps`` (target, owner) where allowed; a step
    running -> scheduled is a retry (attempt + 1)."""
    states = [job(S.SCHEDULED)]
    for target, owner in steps:
        current = states[-1]
        if not allowed(current.status, target):
            continue
        changes: dict[str, object] = {"owner": owner}
        if current.status is S.RUNNING and target is S.SCHEDULED:
            changes["attempt"] = current.attempt + 1
        states.append(current.to(target, **changes))
    return states


_steps = st.lists(
    st.tuples(st.sampled_from(list(JobStatus)), st.sampled_from(["pod-a", "pod-b"])), max_size=25
)


@given(_steps)
def test_every_later_state_of_a_walk_follows_every_earlier_one(
    steps: list[tuple[JobStatus, str]],
) -> None:
    """What compaction relies on: a reader that saw any state of a job accepts any later one
    (the records between may be gone), so it ends at the job's latest state."""
    states = _walk(steps)
    for i, earlier in enumerate(states):
        for later in states[i + 1 :]:
            assert follows(earlier, later) or later == earlier, (earlier, later)


@given(_steps)
def test_no_earlier_state_follows_a_later_one_unless_the_walk_returns_to_it(
    steps: list[tuple[JobStatus, str]],
) -> None:
    """A stale record (an earlier state seen after a later one) is refused, except where the
    job really can come back to that state (released claims: claimed <-> scheduled)."""
    states = _walk(steps)
    for i, earlier in enumerate(states):
        for later in states[i + 1 :]:
            if follows(later, earlier):
                assert earlier.attempt == later.attempt
                assert {earlier.status, later.status} <= {S.SCHEDULED, S.CLAIMED}


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (job(S.SCHEDULED), job(S.SUCCEEDED, owner="a"), True),  # claimed, running compacted
        (job(S.SCHEDULED), job(S.RUNNING, owner="a"), True),
        (job(S.CLAIMED, owner="a"), job(S.CLAIMED, owner="b"), True),  # released, claimed again
        (job(S.RUNNING, owner="a"), job(S.CLAIMED, owner="a", attempt=2), True),  # a retry
        (job(S.SUCCEEDED, owner="a"), job(S.RUNNING, owner="a"), False),  # out of a terminal
        (job(S.RUNNING, owner="a"), job(S.CLAIMED, owner="a"), False),  # backwards
        (job(S.RUNNING, owner="a"), job(S.CANCELED), False),  # unreachable from running
        (job(S.CLAIMED, owner="a", attempt=2), job(S.RUNNING, owner="a"), False),  # old attempt
        (job(S.RUNNING, owner="a"), job(S.RUNNING, owner="a"), False),  # identical
    ],
)
def test_follows(current: Job, new: Job, expected: bool) -> None:
    assert follows(current, new) is expected


def test_due_is_the_retry_backoff_when_set() -> None:
    assert job().due == T
    later = T + timedelta(seconds=7)
    assert job(not_before=later).due == later


def test_defaults_are_a_first_planned_attempt() -> None:
    j = job()
    assert (j.attempt, j.trigger, j.owner, j.params, j.error) == (1, "schedule", None, (), None)


# -- ids -------------------------------------------------------------------------------------


def test_job_id_format() -> None:
    assert job_id("backup", T) == "backup@2026-12-04T10:15:00Z"


def test_job_id_is_to_the_second() -> None:
    assert job_id("backup", T.replace(microsecond=999_999)) == "backup@2026-12-04T10:15:00Z"


def test_job_id_requires_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        job_id("backup", datetime(2026, 12, 4, 10, 15))


@pytest.mark.parametrize(
    "same_instant",
    [
        datetime(2026, 12, 4, 11, 15, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(2026, 12, 4, 5, 15, tzinfo=ZoneInfo("America/New_York")),
        datetime(2026, 12, 4, 15, 45, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
)
def test_job_id_converts_other_zones_to_utc(same_instant: datetime) -> None:
    assert job_id("backup", same_instant) == "backup@2026-12-04T10:15:00Z"


def test_job_id_suffix_is_appended() -> None:
    assert job_id("backup", T, suffix="~manual-ab12") == "backup@2026-12-04T10:15:00Z~manual-ab12"


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(9000, 1, 1),
        timezones=st.sampled_from([UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo")]),
    )
)
def test_job_id_is_deterministic_per_instant(t: datetime) -> None:
    assert job_id("c", t) == job_id("c", t.astimezone(UTC))
    assert job_id("c", t) == job_id("c", t.astimezone(ZoneInfo("America/Sao_Paulo")))


_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\n\r\t"),
    min_size=1,
    max_size=30,
)


@given(_ids, st.datetimes(timezones=st.just(UTC)))
def test_command_of_inverts_job_id(command_id: str, t: datetime) -> None:
    assert command_of(job_id(command_id, t)) == command_id


@pytest.mark.parametrize("command_id", ["a@b", "mail@example.com", "@", "x@@y", "trail@"])
def test_command_of_with_at_signs_in_the_command_id(command_id: str) -> None:
    assert command_of(job_id(command_id, T)) == command_id
    assert command_of(job_id(command_id, T, suffix="~manual-0123456789ab")) == command_id
