"""The cron dialect (schedulerx.domain.cron): fields, macros, time zones, the DST rule, errors."""

from __future__ import annotations

import itertools
import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from schedulerx.domain.cron import Cron, CronError, validate

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def parsed(expr: str, tz: str) -> Cron:
    """The Cron, or reject the generated example (not every combination is valid)."""
    try:
        return Cron.parse(expr, tz)
    except CronError:
        reject()


def fires(expr: str, start: datetime, end: datetime, tz: str = "UTC") -> list[datetime]:
    return list(Cron.parse(expr, tz).times_between(start, end))


def first(cron: Cron, n: int, t: datetime) -> list[datetime]:
    """The first ``n`` fire times after ``t``."""
    out: list[datetime] = []
    while len(out) < n:
        t = cron.next_after(t)
        out.append(t)
    return out


# -- fields ---------------------------------------------------------------------------------


def test_five_fields_fire_at_second_zero() -> None:
    cron = Cron.parse("*/15 * * * *")
    assert not cron.has_seconds
    assert cron.next_after(utc(2026, 5, 1, 10, 7, 42)) == utc(2026, 5, 1, 10, 15)
    assert fires("0 9 * * *", utc(2026, 5, 1), utc(2026, 5, 3)) == [
        utc(2026, 5, 1, 9),
        utc(2026, 5, 2, 9),
    ]


def test_six_fields_put_seconds_first() -> None:
    cron = Cron.parse("*/5 * * * * *")
    assert cron.has_seconds
    start = utc(2026, 5, 1, 10, 0, 0)
    assert list(cron.times_between(start, start + timedelta(seconds=20))) == [
        start + timedelta(seconds=s) for s in (5, 10, 15, 20)
    ]
    # "30 0 9 * * *" is second 30, minute 0, hour 9 -- not minute 30 of hour 0.
    assert Cron.parse("30 0 9 * * *").next_after(start) == utc(2026, 5, 2, 9, 0, 30)


def test_next_after_is_strictly_after_and_ignores_microseconds() -> None:
    cron = Cron.parse("0 9 * * *")
    assert cron.next_after(utc(2026, 5, 1, 9)) == utc(2026, 5, 2, 9)
    assert cron.next_after(utc(2026, 5, 1, 8, 59, 59, 999999)) == utc(2026, 5, 1, 9)
    every_second = Cron.parse("* * * * * *")
    assert every_second.next_after(utc(2026, 5, 1, 9, 0, 0, 1)) == utc(2026, 5, 1, 9, 0, 1)


def test_times_between_is_open_at_start_closed_at_end() -> None:
    assert fires("0 * * * *", utc(2026, 5, 1, 10), utc(2026, 5, 1, 12)) == [
        utc(2026, 5, 1, 11),
        utc(2026, 5, 1, 12),
    ]
    assert fires("0 * * * *", utc(2026, 5, 1, 12), utc(2026, 5, 1, 10)) == []


def test_result_is_aware_utc_even_for_a_non_utc_argument() -> None:
    t = datetime(2026, 1, 10, 12, tzinfo=ZoneInfo(BERLIN))
    result = Cron.parse("0 * * * *", NEW_YORK).next_after(t)
    assert result.tzinfo is UTC
    assert result == utc(2026, 1, 10, 12)


@pytest.mark.parametrize(
    ("macro", "equivalent"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_macros(macro: str, equivalent: str) -> None:
    t = utc(2025, 12, 31, 12)
    assert first(Cron.parse(macro), 3, t) == first(Cron.parse(equivalent), 3, t)
    assert Cron.parse(macro).expr == macro


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 0 L * *", [utc(2026, 1, 31), utc(2026, 2, 28), utc(2026, 3, 31)]),
        # 15th, or the nearest weekday within the month: 2026-02-15 and 03-15 are Sundays.
        ("0 0 15W * *", [utc(2026, 1, 15), utc(2026, 2, 16), utc(2026, 3, 16)]),
        ("0 0 W15 * *", [utc(2026, 1, 15), utc(2026, 2, 16), utc(2026, 3, 16)]),
        # 2026-02-01 is a Sunday: Monday the 2nd (W never leaves the month).
        ("0 0 1W 2 *", [utc(2026, 2, 2), utc(2027, 2, 1), utc(2028, 2, 1)]),
        ("0 0 * * MON#2", [utc(2026, 1, 12), utc(2026, 2, 9), utc(2026, 3, 9)]),
        ("0 0 * * 1#2", [utc(2026, 1, 12), utc(2026, 2, 9), utc(2026, 3, 9)]),
        ("0 0 * * L5", [utc(2026, 1, 30), utc(2026, 2, 27), utc(2026, 3, 27)]),
        ("0 0 ? * MON", [utc(2026, 1, 5), utc(2026, 1, 12), utc(2026, 1, 19)]),
        ("0 0 0 1 * ?", [utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1)]),
        ("0 0 * FEB,MAR SUN", [utc(2026, 2, 1), utc(2026, 2, 8), utc(2026, 2, 15)]),
        ("0 0 * * 7", [utc(2026, 1, 4), utc(2026, 1, 11), utc(2026, 1, 18)]),
        # Both day fields restricted: either matches (cron's OR rule), L included.
        ("0 0 13 * 5", [utc(2026, 1, 2), utc(2026, 1, 9), utc(2026, 1, 13)]),
        ("0 0 L * 3", [utc(2026, 1, d) for d in (7, 14, 21, 28, 31)] + [utc(2026, 2, 4)]),
        ("0 0 29 2 *", [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)]),
    ],
)
def test_extended_syntax_that_is_accepted_iterates_correctly(
    expr: str, expected: list[datetime]
) -> None:
    assert first(Cron.parse(expr), len(expected), utc(2025, 12, 31, 23, 59)) == expected


# -- time zones -----------------------------------------------------------------------------


def test_time_zone_offset_winter_and_summer() -> None:
    berlin = Cron.parse("0 9 * * *", BERLIN)
    assert berlin.timezone == BERLIN
    assert berlin.next_after(utc(2026, 1, 15)) == utc(2026, 1, 15, 8)
    assert berlin.next_after(utc(2026, 7, 15)) == utc(2026, 7, 15, 7)
    new_york = Cron.parse("0 9 * * *", NEW_YORK)
    assert new_york.next_after(utc(2026, 1, 15)) == utc(2026, 1, 15, 14)
    assert new_york.next_after(utc(2026, 7, 15)) == utc(2026, 7, 15, 13)


def test_default_time_zone_is_utc() -> None:
    assert Cron.parse("0 9 * * *").timezone == "UTC"
    assert Cron.parse("0 9 * * *").next_after(utc(2026, 7, 15)) == utc(2026, 7, 15, 9)


def test_unknown_time_zone() -> None:
    with pytest.raises(CronError, match="unknown time zone 'Mars/Base'"):
        Cron.parse("0 9 * * *", "Mars/Base")
    for bad in ("", "../etc/passwd", "/etc/localtime", "europe/berlin"):
        with pytest.raises(CronError, match="unknown time zone"):
            validate("0 9 * * *", bad)


# -- DST ------------------------------------------------------------------------------------


def test_berlin_gap_fires_once_at_the_first_instant_after_it() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z); 02:30 does not exist.
    got = fires("30 2 * * *", utc(2026, 3, 27), utc(2026, 3, 31), BERLIN)
    assert got == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST
        utc(2026, 3, 30, 0, 30),
    ]


def test_gap_several_skipped_times_fire_once() -> None:
    got = fires("0,30 2 * * *", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12), BERLIN)
    assert got == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 0), utc(2026, 3, 30, 0, 30)]


def test_berlin_fold_fires_a_fixed_hour_once_at_the_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00Z); 02:30 happens twice.
    got = fires("30 2 * * *", utc(2026, 10, 23), utc(2026, 10, 27), BERLIN)
    assert got == [
        utc(2026, 10, 23, 0, 30),
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # 02:30+02:00; not again at 02:30+01:00
        utc(2026, 10, 26, 1, 30),
    ]
    # Asked from inside the second pass, the next fire is the next day's.
    cron = Cron.parse("30 2 * * *", BERLIN)
    assert cron.next_after(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)
    every_second_of_2am = Cron.parse("* * 2 * * *", BERLIN)
    assert every_second_of_2am.next_after(utc(2026, 10, 25, 0, 59, 59)) == utc(2026, 10, 26, 1)


def test_every_15_minutes_across_the_fold_fires_in_both_passes() -> None:
    got = fires("*/15 * * * *", utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), BERLIN)
    assert got == [utc(2026, 10, 25, 0, 15) + timedelta(minutes=15 * i) for i in range(8)]


def test_every_hour_expressions_keep_real_time_intervals_across_gap_and_fold() -> None:
    spring = fires("30 * * * *", utc(2026, 3, 28, 23), utc(2026, 3, 29, 3), BERLIN)
    assert spring == [utc(2026, 3, 28, 23, 30) + timedelta(hours=i) for i in range(4)]
    fall = fires("30 * * * *", utc(2026, 10, 24, 23), utc(2026, 10, 25, 3), BERLIN)
    assert fall == [utc(2026, 10, 24, 23, 30) + timedelta(hours=i) for i in range(4)]
    quarter = fires("*/15 * * * *", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), BERLIN)
    assert quarter == [utc(2026, 3, 29, 0, 45) + timedelta(minutes=15 * i) for i in range(4)]
    berlin_seconds = Cron.parse("*/1 * * * * *", BERLIN)
    t = utc(2026, 10, 25, 0, 59, 58)
    assert list(berlin_seconds.times_between(t, t + timedelta(seconds=4))) == [
        t + timedelta(seconds=i) for i in range(1, 5)
    ]


def test_new_york_gap_and_fold() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).
    assert fires("30 2 * * *", utc(2026, 3, 7), utc(2026, 3, 10), NEW_YORK) == [
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 8, 7, 0),
        utc(2026, 3, 9, 6, 30),
    ]
    assert fires("30 1 * * *", utc(2026, 10, 31), utc(2026, 11, 3), NEW_YORK) == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]
    hourly = fires("@hourly", utc(2026, 11, 1, 4), utc(2026, 11, 1, 8), NEW_YORK)
    assert hourly == [utc(2026, 11, 1, h) for h in range(5, 9)]


# -- rejected input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 0 0 30 2 *", "never fires"),
        ("61 * * * *", "minute field '61' is invalid"),
        ("0 24 * * *", "hour field '24' is invalid"),
        ("60 * * * * *", "second field '60' is invalid"),
        ("0 0 0 * *", "day-of-month field '0' is invalid"),
        ("0 0 * 13 *", "month field '13' is invalid"),
        ("0 0 * * 8", "day-of-week field '8' is invalid"),
        ("*/0 * * * *", "minute field"),
        ("1,2,,3 * * * *", "minute field"),
        ("? * * * *", "minute field '?'"),
        ("* * *", "expected 5 fields"),
        ("foo", "expected 5 fields"),
        ("", "empty expression"),
        ("0 0 0 1 1 * 2030", "7 fields"),
        ("@reboot", "@reboot is not supported"),
        ("@often", "unknown macro '@often'"),
        ("@daily 5", "unknown macro '@daily'"),
        ("@every 5m", "@every is not supported"),
        ("H * * * *", "H and R values are not supported"),
        ("R * * * *", "H and R values are not supported"),
        ("0 0 * * 5L", "day-of-week field '5L' is invalid"),
        ("0 0 LW * *", "day-of-month field 'LW' is invalid"),
        ("0 0 15W * 1", "nW needs day-of-week"),
        ("0 0 1 * 1#2", "needs day-of-month"),
        ("0 0 L * L5", "needs day-of-month"),
        ("0 0 * * 1,5#2", "day-of-week field"),
        ("* " * 300, "longer than 512"),
    ],
)
def test_rejected_expressions(expr: str, problem: str) -> None:
    with pytest.raises(CronError, match=problem) as info:
        Cron.parse(expr)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("invalid cron ")
    assert isinstance(info.value, ValueError)
    with pytest.raises(CronError):
        validate(expr)


def test_croniter_alone_would_accept_the_never_firing_expression() -> None:
    # Why parse computes a fire time: syntax validation does not catch it.
    assert croniter.is_valid("0 0 30 2 *")


def test_naive_datetimes_are_rejected() -> None:
    cron = Cron.parse("* * * * *")
    with pytest.raises(ValueError, match="naive datetime"):
        cron.next_after(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive datetime"):
        cron.times_between(datetime(2026, 1, 1), utc(2026, 1, 2))  # eager, not on first next()
    with pytest.raises(ValueError, match="naive datetime"):
        cron.times_between(utc(2026, 1, 1), datetime(2026, 1, 2))


def test_error_is_picklable_and_names_expression_and_problem() -> None:
    with pytest.raises(CronError) as info:
        Cron.parse("  61 * * * *  ")
    err = info.value
    assert err.expr == "61 * * * *"
    assert err.problem.startswith("minute field")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from("0123456789*/,-?#LWHRmonMONjan@ \t\n"), max_size=30))
def test_any_text_parses_or_raises_a_one_line_cron_error(text: str) -> None:
    try:
        cron = Cron.parse(text)
    except CronError as err:
        message = str(err)
    else:
        t = utc(2026, 1, 1)
        assert cron.next_after(t) > t
        return
    assert "\n" not in message


# -- the value ------------------------------------------------------------------------------


def test_cron_is_an_immutable_hashable_value_and_parse_is_cached() -> None:
    a = Cron.parse(" 0 9 * * * ", BERLIN)
    assert a.expr == "0 9 * * *"
    assert Cron.parse(" 0 9 * * * ", BERLIN) is a
    b = Cron("0 9 * * *", BERLIN)
    assert a == b
    assert hash(a) == hash(b)
    assert a != Cron.parse("0 9 * * *")
    assert len({a, b, Cron.parse("0 9 * * *")}) == 2
    with pytest.raises(AttributeError):
        a.expr = "* * * * *"
    assert pickle.loads(pickle.dumps(a)) == a
    assert repr(a) == "Cron('0 9 * * *', timezone='Europe/Berlin')"


# -- properties -----------------------------------------------------------------------------

ZONES = [
    "UTC",
    BERLIN,
    NEW_YORK,
    "Europe/Dublin",  # negative DST in tzdata
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # transitions at midnight
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Kolkata",
]
# 2026 transitions of the zones above, in UTC, to start near.
TRANSITIONS = [
    utc(2026, 3, 29, 1),
    utc(2026, 10, 25, 1),
    utc(2026, 3, 8, 7),
    utc(2026, 11, 1, 6),
    utc(2026, 4, 4, 15),
    utc(2026, 10, 3, 15),
    utc(2026, 4, 5, 3),
    utc(2026, 9, 6, 4),
    utc(2026, 4, 4, 14),
    utc(2026, 9, 26, 14),
]
MINUTE = ["*", "*/15", "0", "30", "0,30", "5", "*/7", "59", "10-20/5"]
HOUR = ["*", "*", "0", "1", "2", "3", "1-3", "*/2", "0-23", "23"]
DOM = ["*", "*", "*", "25", "L", "1-7", "4-6"]
MONTH = ["*", "*", "3,4", "9,10,11", "OCT"]
DOW = ["*", "*", "*", "0", "SUN", "1-5", "6"]

expressions = st.builds(
    lambda *f: " ".join(f), *(st.sampled_from(x) for x in (MINUTE, HOUR, DOM, MONTH, DOW))
)
seconds_expressions = st.builds(
    lambda s, rest: f"{s} {rest}", st.sampled_from(["*/20", "0", "59"]), expressions
)
near_transitions = st.builds(
    lambda base, minutes, micros: base + timedelta(minutes=minutes, microseconds=micros),
    st.sampled_from(TRANSITIONS),
    st.integers(-36 * 60, 12 * 60),
    st.integers(0, 999_999),
)


def oracle(expr: str, tz: str, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Fire times in (start, end] by walking real time one ``step`` at a time.

    Independent of the module's search: which wall times match comes from croniter on naive
    times; the DST rule is applied to each instant as documented.
    """
    zone = ZoneInfo(tz)
    six = len(expr.split()) == 6
    every_hour = croniter.expand(expr, second_at_beginning=six)[0][1] == ["*"]
    lo = start.astimezone(zone).replace(tzinfo=None) - timedelta(hours=3)
    hi = end.astimezone(zone).replace(tzinfo=None) + timedelta(hours=3)
    walls, it = set(), croniter(expr, lo, ret_type=datetime, second_at_beginning=six)
    while (w := it.get_next()) <= hi:
        walls.add(w)
    out: list[datetime] = []
    u = start.replace(second=0, microsecond=0) if not six else start.replace(microsecond=0)
    prev = u.astimezone(zone)
    while (u := u + step) <= end:
        local = u.astimezone(zone)
        wall = local.replace(tzinfo=None)
        skipped = wall - prev.replace(tzinfo=None) - step
        gap_hit = any(
            prev.replace(tzinfo=None) + step * (i + 1) in walls for i in range(skipped // step)
        )
        fixed_hour_fire = not every_hour and (gap_hit or (wall in walls and local.fold == 0))
        if (fixed_hour_fire or (every_hour and wall in walls)) and u > start:
            out.append(u)
        prev = local
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, st.sampled_from(ZONES), near_transitions)
def test_fire_times_match_a_real_time_walk(expr: str, tz: str, start: datetime) -> None:
    cron = parsed(expr, tz)
    end = start + timedelta(hours=30)
    assert list(cron.times_between(start, end)) == oracle(
        expr, tz, start, end, timedelta(minutes=1)
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seconds_expressions, st.sampled_from(ZONES), near_transitions)
def test_six_field_fire_times_match_a_real_time_walk(expr: str, tz: str, start: datetime) -> None:
    cron = parsed(expr, tz)
    end = start + timedelta(minutes=30)
    assert list(cron.times_between(start, end)) == oracle(
        expr, tz, start, end, timedelta(seconds=1)
    )


@settings(max_examples=200, deadline=None)
@given(
    expressions | seconds_expressions | st.sampled_from(["@daily", "@weekly", "0 0 29 2 *"]),
    st.timezone_keys(),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_next_after_increases_and_times_between_agrees(expr: str, tz: str, naive: datetime) -> None:
    cron = parsed(expr, tz)
    t = naive.replace(tzinfo=UTC)
    chain = [cron.next_after(t)]
    for _ in range(4):
        chain.append(cron.next_after(chain[-1]))
    assert chain[0] > t
    assert all(a < b for a, b in itertools.pairwise(chain))
    assert all(x.tzinfo is UTC and x.microsecond == 0 for x in chain)
    assert list(cron.times_between(t, chain[-1])) == chain
    # Starting anywhere between two fires gives the later one.
    mid = chain[1] + (chain[2] - chain[1]) / 2
    assert cron.next_after(mid) == chain[2]


@settings(max_examples=100, deadline=None)
@given(
    expressions | seconds_expressions,
    st.sampled_from(ZONES),
    st.lists(near_transitions, min_size=2, max_size=12),
)
def test_a_remembered_answer_is_the_answer_a_fresh_search_gives(
    expr: str, tz: str, queries: list[datetime]
) -> None:
    # One Cron asked out of order (its memo of recent answers in play) and a new Cron for
    # every question (no memo) must agree, around DST transitions included.
    shared = parsed(expr, tz)
    for t in queries + [q + timedelta(seconds=1) for q in queries]:
        assert shared.next_after(t) == Cron(expr, tz).next_after(t)
