"""Outside input into events (schedulerx.engine.intake, schedulerx.domain.requests)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schedulerx.domain.events import (
    AnyEvent,
    JobChanged,
    ScheduleRejected,
    ScheduleRemoved,
    ScheduleSet,
)
from schedulerx.domain.job import JobStatus, command_of
from schedulerx.domain.requests import BadRequest, Request, decode_request, encode_request
from schedulerx.domain.schedule import Schedule
from schedulerx.engine.intake import from_fetch, from_request

NOW = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
POD = "pod-1"


def current(
    cron: str = "0 3 * * *",
    params: tuple[str, ...] = ("--full",),
    *,
    paused: bool = False,
    source: str = "fetcher",
    timezone: str = "Europe/Berlin",
) -> ScheduleSet:
    return ScheduleSet(
        event_id="e0",
        pod="pod-0",
        ts=NOW - timedelta(days=1),
        command_id="backup",
        cron=cron,
        params=params,
        timezone=timezone,
        paused=paused,
        source=source,
    )


def req(**kw: object) -> Request:
    fields: dict[str, object] = {"command_id": "backup", "request_id": "r-1"}
    fields.update(kw)
    return Request(**fields)  # type: ignore[arg-type]


def one(events: list[AnyEvent]) -> AnyEvent:
    assert len(events) == 1, events
    return events[0]


def rejected(events: list[AnyEvent]) -> ScheduleRejected:
    event = one(events)
    assert isinstance(event, ScheduleRejected), event
    assert event.command_id == "backup"
    assert "\n" not in event.reason
    return event


# -- requests --------------------------------------------------------------------------------


def test_a_valid_set_becomes_a_schedule_set() -> None:
    event = one(from_request(req(cron="*/5 * * * *", params=("a",)), None, True, POD, NOW))
    assert event == ScheduleSet(
        event_id=event.event_id,
        pod=POD,
        ts=NOW,
        command_id="backup",
        cron="*/5 * * * *",
        params=("a",),
        timezone="UTC",
        paused=False,
        source="external",
    )
    assert event.event_id


def test_a_set_for_an_unregistered_command_is_kept() -> None:
    # Rolling deploy: the owning pod may not have the code yet; the schedule is still a fact.
    assert isinstance(one(from_request(req(cron="0 3 * * *"), None, False, POD, NOW)), ScheduleSet)


def test_a_set_keeps_fields_it_does_not_name() -> None:
    event = one(from_request(req(cron="0 4 * * *"), current(paused=True), True, POD, NOW))
    assert isinstance(event, ScheduleSet)
    assert (event.cron, event.params, event.timezone, event.paused) == (
        "0 4 * * *",
        ("--full",),
        "Europe/Berlin",
        True,
    )


def test_a_params_only_request_keeps_the_cron() -> None:
    event = one(from_request(req(params=("--fast",)), current(), True, POD, NOW))
    assert isinstance(event, ScheduleSet)
    assert (event.cron, event.params) == ("0 3 * * *", ("--fast",))


@pytest.mark.parametrize(
    ("cron", "timezone", "fragment"),
    [
        ("61 * * * *", None, "minute field '61'"),
        ("every day", None, "invalid cron 'every day'"),
        ("0 0 30 2 *", None, "never fires"),
        ("0 3 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_an_invalid_cron_is_rejected_with_the_cron_error(
    cron: str, timezone: str | None, fragment: str
) -> None:
    event = rejected(from_request(req(cron=cron, timezone=timezone), None, True, POD, NOW))
    assert fragment in event.reason
    assert event.request == "r-1"
    assert (event.pod, event.ts) == (POD, NOW)


def test_an_invalid_cron_does_not_change_the_current_schedule() -> None:
    events = from_request(req(cron="0 0 30 2 *"), current(), True, POD, NOW)
    assert not [e for e in events if isinstance(e, ScheduleSet | ScheduleRemoved)]


def test_a_request_without_cron_for_a_command_without_schedule_is_rejected() -> None:
    event = rejected(from_request(req(paused=True), None, True, POD, NOW))
    assert "has no schedule" in event.reason


def test_pause_and_resume_keep_cron_and_params() -> None:
    paused = one(from_request(req(paused=True), current(), True, POD, NOW))
    assert isinstance(paused, ScheduleSet)
    assert (paused.cron, paused.params, paused.timezone, paused.paused) == (
        "0 3 * * *",
        ("--full",),
        "Europe/Berlin",
        True,
    )
    resumed = one(from_request(req(paused=False), paused, True, POD, NOW))
    assert isinstance(resumed, ScheduleSet)
    assert (resumed.cron, resumed.params, resumed.paused) == ("0 3 * * *", ("--full",), False)


def test_pausing_a_paused_command_changes_nothing() -> None:
    assert from_request(req(paused=True), current(paused=True), True, POD, NOW) == []


def test_an_unchanged_request_produces_no_events() -> None:
    assert from_request(req(cron="0 3 * * *"), current(), True, POD, NOW) == []
    assert from_request(req(cron="0 3 * * *", params=("--full",)), current(), True, POD, NOW) == []


def test_remove() -> None:
    event = one(from_request(req(remove=True, source="cli"), current(), True, POD, NOW))
    assert isinstance(event, ScheduleRemoved)
    assert (event.command_id, event.source, event.pod, event.ts) == ("backup", "cli", POD, NOW)


def test_remove_without_a_schedule_is_rejected() -> None:
    event = rejected(from_request(req(remove=True), None, True, POD, NOW))
    assert "no schedule to remove" in event.reason


# -- manual triggers -------------------------------------------------------------------------


def manual(events: list[AnyEvent]) -> JobChanged:
    event = one(events)
    assert isinstance(event, JobChanged), event
    return event


def test_trigger_on_an_unknown_command_is_rejected() -> None:
    event = rejected(from_request(req(trigger=True), None, False, POD, NOW))
    assert "unknown command 'backup'" in event.reason


def test_trigger_plans_one_manual_job_now() -> None:
    event = manual(
        from_request(req(trigger=True, request_id="0123456789abcdef"), current(), True, POD, NOW)
    )
    job = event.job
    assert (job.command_id, job.status, job.trigger, job.scheduled_at, job.attempt) == (
        "backup",
        JobStatus.SCHEDULED,
        "manual",
        NOW,
        1,
    )
    assert job.params == ("--full",)  # the schedule's params by default
    assert job.id.startswith("backup@2026-05-01T12:00:00Z")
    assert "0123456789ab" in job.id
    assert command_of(job.id) == "backup"


def test_trigger_params_override_the_schedules() -> None:
    event = manual(from_request(req(trigger=True, params=("x",)), current(), True, POD, NOW))
    assert event.job.params == ("x",)


@pytest.mark.parametrize(("schedule", "registered"), [(None, True), (current(), False)])
def test_trigger_needs_a_schedule_or_a_registration(
    schedule: ScheduleSet | None, registered: bool
) -> None:
    event = manual(from_request(req(trigger=True), schedule, registered, POD, NOW))
    assert event.job.params == (schedule.params if schedule else ())


def test_trigger_job_id_is_unique_per_request_id() -> None:
    ids = {
        manual(
            from_request(req(trigger=True, request_id=uuid.uuid4().hex), None, True, POD, NOW)
        ).job.id
        for _ in range(50)
    }
    assert len(ids) == 50
    twice = [
        manual(from_request(req(trigger=True, request_id="same"), None, True, POD, NOW)).job.id
        for _ in range(2)
    ]
    assert twice[0] == twice[1]


def test_trigger_job_ids_differ_for_request_ids_with_a_common_prefix() -> None:
    a = manual(from_request(req(trigger=True, request_id="nightly-rerun-1"), None, True, POD, NOW))
    b = manual(from_request(req(trigger=True, request_id="nightly-rerun-2"), None, True, POD, NOW))
    assert a.job.id != b.job.id


def test_a_redelivered_trigger_names_the_same_job() -> None:
    # A redelivery carries the same bytes: the same request_id and requested_at.
    sent = req(trigger=True, request_id="r-42", requested_at=NOW)
    first = manual(from_request(sent, None, True, POD, NOW))
    later = NOW + timedelta(seconds=20)  # the next owner reads the request again
    again = manual(from_request(sent, None, True, "pod-2", later))
    assert first.job.id == again.job.id


def test_trigger_with_an_at_sign_in_the_request_id_keeps_command_of() -> None:
    event = manual(from_request(req(trigger=True, request_id="ops@host-7"), None, True, POD, NOW))
    assert command_of(event.job.id) == "backup"


# -- fetcher answers -------------------------------------------------------------------------


class BadSeen:
    """What the pod passes: remembers each bad value, True from the second time on."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, text: str) -> bool:
        if text in self.seen:
            return True
        self.seen.add(text)
        return False


def test_fetch_of_a_new_schedule() -> None:
    fetched = Schedule(cron="0 3 * * *", params=("--full",), timezone="Europe/Berlin")
    event = one(from_fetch("backup", fetched, None, POD, NOW, BadSeen()))
    assert isinstance(event, ScheduleSet)
    assert (event.cron, event.params, event.timezone, event.paused, event.source) == (
        "0 3 * * *",
        ("--full",),
        "Europe/Berlin",
        False,
        "fetcher",
    )
    assert (event.pod, event.ts, event.command_id) == (POD, NOW, "backup")


def test_fetch_of_the_same_schedule_produces_nothing() -> None:
    fetched = Schedule(cron="0 3 * * *", params=("--full",), timezone="Europe/Berlin")
    for cur in (current(), current(paused=True), current(source="cli")):
        assert from_fetch("backup", fetched, cur, POD, NOW, BadSeen()) == []


def test_fetch_of_a_changed_schedule_keeps_paused() -> None:
    fetched = Schedule(cron="0 4 * * *", params=("--full",), timezone="Europe/Berlin")
    event = one(from_fetch("backup", fetched, current(paused=True), POD, NOW, BadSeen()))
    assert isinstance(event, ScheduleSet)
    assert (event.cron, event.paused, event.source) == ("0 4 * * *", True, "fetcher")


@pytest.mark.parametrize("change", [{"params": ("--fast",)}, {"timezone": "UTC"}])
def test_fetch_notices_params_and_timezone_changes(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "cron": "0 3 * * *",
        "params": ("--full",),
        "timezone": "Europe/Berlin",
    }
    fields.update(change)
    fetched = Schedule(**fields)  # type: ignore[arg-type]
    assert isinstance(
        one(from_fetch("backup", fetched, current(), POD, NOW, BadSeen())), ScheduleSet
    )


def test_a_bad_fetched_cron_is_rejected_once() -> None:
    seen = BadSeen()
    bad = Schedule(cron="0 0 30 2 *")
    event = rejected(from_fetch("backup", bad, current(), POD, NOW, seen))
    assert event.reason.startswith("fetcher: invalid cron '0 0 30 2 *'")
    for _ in range(3):
        assert from_fetch("backup", bad, current(), POD, NOW, seen) == []
    # A different bad value is news.
    rejected(from_fetch("backup", Schedule(cron="nope"), current(), POD, NOW, seen))
    # A valid cron in an unknown zone is bad too.
    rejected(
        from_fetch("backup", Schedule(cron="0 3 * * *", timezone="Nowhere/X"), None, POD, NOW, seen)
    )


def test_none_removes_only_a_schedule_that_came_from_the_fetcher() -> None:
    event = one(from_fetch("backup", None, current(source="fetcher"), POD, NOW, BadSeen()))
    assert isinstance(event, ScheduleRemoved)
    assert event.command_id == "backup"
    for source in ("cli", "external"):
        assert from_fetch("backup", None, current(source=source), POD, NOW, BadSeen()) == []
    assert from_fetch("backup", None, None, POD, NOW, BadSeen()) == []


# -- request bytes ---------------------------------------------------------------------------


def test_decode_request_reads_the_documented_json() -> None:
    raw = b'{"command_id": "backup", "cron": "0 3 * * *", "params": ["--full"], "x": 1}'
    r = decode_request(raw)
    assert (r.command_id, r.cron, r.params, r.paused, r.remove, r.trigger, r.source) == (
        "backup",
        "0 3 * * *",
        ("--full",),
        None,
        False,
        False,
        "external",
    )


def test_encode_request_sends_the_request_as_given_and_draws_nothing() -> None:
    bare = Request(command_id="backup", trigger=True)
    raw = encode_request(bare)
    assert encode_request(bare) == raw  # no random id, no clock: the same bytes each time
    sent = json.loads(raw)
    assert (sent["request_id"], sent["requested_at"]) == ("", None)
    # The pod derives an id from the bytes: equal bytes one id, other bytes another.
    derived = decode_request(raw).request_id
    assert derived.startswith("h-") and derived == decode_request(raw).request_id
    other = decode_request(encode_request(Request(command_id="report", trigger=True)))
    assert other.request_id != derived
    given = Request(command_id="backup", trigger=True, request_id="mine", requested_at=NOW)
    assert decode_request(encode_request(given)) == given


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b"{}",
        b'{"command_id": ""}',
        b'{"command_id": 5}',
        b'{"command_id": "c", "cron": 1}',
        b'{"command_id": "c", "params": "--full"}',
        b'{"command_id": "c", "paused": "yes"}',
    ],
)
def test_bad_requests_raise_one_line(raw: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(raw)
    assert str(info.value)
    assert "\n" not in str(info.value)
