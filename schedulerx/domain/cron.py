"""The cron dialect: which expressions schedulerx accepts and which instants they name.

A thin, pure layer over croniter (no clock reads; time always comes in as an argument).
croniter is only asked one question, "the next matching *wall-clock* time after this naive
wall-clock time"; mapping wall-clock times to instants in the schedule's IANA zone, and so
the daylight-saving rule, is done here (see ``docs/cron.md``):

- A wall time that exists once fires at that instant.
- Gap (spring forward): for a fixed-hour expression (hour field does not match every hour)
  a skipped wall time fires once, at the first instant after the gap (``30 2 * * *`` in
  Europe/Berlin on 2026-03-29 fires at 03:00 local); several skipped times share that one
  fire. An every-hour expression (``*/15 * * * *``) keeps its real-time interval: skipped
  wall times simply do not occur.
- Fold (fall back): a fixed-hour expression fires once, at the first occurrence; an
  every-hour expression fires in both passes of the repeated wall times.

Fire times come out as aware UTC datetimes, strictly increasing.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

__all__ = ["Cron", "CronError", "validate"]

_UTC: Final = UTC
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=_UTC)
_SECOND: Final = timedelta(seconds=1)
# Any expression that fires at all fires within 50 years of any date (the longest
# gap, "5th Monday of February", is 40 years), which is how far croniter searches.
_REFERENCE: Final = datetime(2000, 1, 1)
_MAX_LENGTH: Final = 512
# The same field separator croniter uses (ASCII whitespace only).
_FIELD_RE: Final = re.compile(r"\S+", re.ASCII)
# croniter's hashed (H) and random (R) values: pod-dependent, so refused.
_HASH_RE: Final = re.compile(r"^[hr](\(\d+-\d+\))?(/\d+)?$", re.ASCII | re.IGNORECASE)

_MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Field names and allowed values, in the order the user writes them.
_FIELDS_5: Final = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, nW, ?"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, d#n, Ld, ?"),
)
_FIELDS_6: Final = (("second", "0-59"), *_FIELDS_5)
_SHAPE: Final = (
    "expected 5 fields (minute hour day-of-month month day-of-week), "
    "6 with seconds first, or a macro such as @daily"
)


class CronError(ValueError):
    """A cron expression or time zone schedulerx refuses. ``str()`` is one line.

    ``expr`` is the expression as given, ``problem`` says what is wrong with it.
    """

    def __init__(self, expr: str, problem: str) -> None:
        super().__init__(expr, problem)
        self.expr = expr
        self.problem = problem

    def __str__(self) -> str:
        return f"invalid cron {self.expr!r}: {self.problem}"


_MEMO_SIZE = 4
"""Answers each ``Cron`` remembers: enough for a planner asking around the same few times."""


@final
class Cron:
    """A validated cron expression in an IANA time zone; immutable and hashable.

    Equal when ``expr`` and ``timezone`` are equal. Build one with :meth:`parse` (cached);
    ``Cron(expr, timezone)`` does the same without the cache. Thread-safe.
    """

    __slots__ = (
        "_every_hour",
        "_lock",
        "_matcher",
        "_memo",
        "_zone",
        "expr",
        "has_seconds",
        "timezone",
    )

    expr: str
    """The expression as given, stripped of surrounding whitespace."""
    timezone: str
    """IANA zone name the fields are read in (``"UTC"`` by default)."""
    has_seconds: bool
    """True for a 6-field expression (seconds first)."""
    _zone: ZoneInfo
    _matcher: Any  # a croniter reading naive wall-clock times
    _every_hour: bool  # hour field matches every hour: the interval-like DST rule
    _lock: threading.Lock
    _memo: tuple[tuple[datetime, datetime], ...]
    """Recent answers as ``(t0, next)``: for every ``t`` in ``[t0, next)`` the answer is
    ``next`` (no fire time lies between). Commands sharing an expression share the memo."""

    def __init__(self, expr: str, timezone: str = "UTC") -> None:
        """Parse and validate; raises :class:`CronError` (see :meth:`parse`)."""
        if not isinstance(expr, str) or not isinstance(timezone, str):
            raise TypeError("a cron expression and its time zone must be strings")
        expr = expr.strip()
        compiled = _compile(expr, timezone)
        for name, value in (
            ("expr", expr),
            ("timezone", timezone),
            ("has_seconds", compiled.has_seconds),
            ("_zone", compiled.zone),
            ("_matcher", compiled.matcher),
            ("_every_hour", compiled.every_hour),
            ("_lock", threading.Lock()),
            ("_memo", ()),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def parse(cls, expr: str, timezone: str = "UTC") -> Cron:
        """The ``Cron`` for ``expr`` in ``timezone``; cached, so cheap to call often.

        Raises :class:`CronError` for a syntax error, an unsupported feature (7 fields,
        ``@reboot``, ``H``/``R`` values), an unknown time zone, or an expression that never
        fires (``0 0 30 2 *``).
        """
        return _parse_cached(expr, timezone)

    def next_after(self, t: datetime) -> datetime:
        """The first fire time strictly after ``t``, as an aware UTC datetime.

        ``t`` must be aware (a naive ``t`` raises ``ValueError``). Raises :class:`CronError`
        only when no fire time exists within 50 years of ``t`` (near year 9999).
        """
        return self._next(_utc_second(t))

    def times_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """All fire times in ``(start, end]``, ascending, as aware UTC datetimes.

        Both bounds must be aware (checked at once, not on first iteration).
        """
        lo, hi = _utc_second(start), _utc(end)
        return self._between(lo, hi)

    def _between(self, t: datetime, end: datetime) -> Iterator[datetime]:
        while True:
            t = self._next(t)
            if t > end:
                return
            yield t

    # -- the DST rule ---------------------------------------------------------------------

    def _next(self, t0: datetime) -> datetime:
        """First fire time after ``t0`` (aware UTC, whole second), from the memo when an
        earlier answer covers ``t0``. The memo is replaced whole (one assignment), so a
        concurrent caller at worst loses an entry, never sees a wrong one."""
        memo = self._memo
        for lo, hi in memo:
            if lo <= t0 < hi:
                return hi
        found = self._search(t0)
        object.__setattr__(self, "_memo", ((t0, found), *memo[: _MEMO_SIZE - 1]))
        return found

    def _search(self, t0: datetime) -> datetime:
        """First fire time after ``t0`` (aware UTC, whole second), computed."""
        local = t0.astimezone(self._zone)
        wall = local.replace(tzinfo=None)
        cursor = wall  # search matching wall times strictly after this one
        second_pass: datetime | None = None  # a candidate earlier in wall time than ``wall``
        here = _resolve(self._zone, wall)
        if isinstance(here, _Fold):
            start, end = here.walls(self._zone)
            if local.fold == 0 and self._every_hour:
                # t0 is in the first pass: the second pass repeats walls before ``wall``.
                w = self._next_wall(start - _SECOND)
                if w < end:
                    second_pass = (w - here.later_offset).replace(tzinfo=_UTC)
            elif local.fold == 1 and not self._every_hour:
                # t0 is in the second pass, where a fixed-hour expression does not fire.
                cursor = end - _SECOND
        while True:
            w = self._next_wall(cursor)
            cursor = w
            found = _resolve(self._zone, w)
            if isinstance(found, _Single):
                candidate = found.instant
            elif isinstance(found, _Fold):
                if found.first > t0:
                    candidate = found.first
                elif self._every_hour and found.second > t0:
                    candidate = found.second
                else:
                    continue
            elif self._every_hour:
                cursor = found.end_wall - _SECOND  # skipped walls do not occur
                continue
            else:
                candidate = found.transition
            if candidate <= t0:  # defensive: never go backwards
                continue
            if second_pass is not None and second_pass < candidate:
                return second_pass
            return candidate

    def _next_wall(self, after: datetime) -> datetime:
        """The first matching naive wall time strictly after ``after`` (whole seconds)."""
        try:
            with self._lock:  # croniter objects keep a cursor
                result: datetime = self._matcher.get_next(start_time=after)
        except (CroniterBadDateError, OverflowError) as exc:
            raise CronError(self.expr, f"no fire time after {after.isoformat()}") from exc
        return result

    # -- value semantics ------------------------------------------------------------------

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Cron is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Cron is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cron):
            return NotImplemented
        return (self.expr, self.timezone) == (other.expr, other.timezone)

    def __hash__(self) -> int:
        return hash((self.expr, self.timezone))

    def __repr__(self) -> str:
        return f"Cron({self.expr!r}, timezone={self.timezone!r})"

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (Cron.parse, (self.expr, self.timezone))


def validate(expr: str, timezone: str = "UTC") -> None:
    """Raise :class:`CronError` unless ``Cron.parse(expr, timezone)`` would succeed."""
    Cron.parse(expr, timezone)


@functools.lru_cache(maxsize=4096)
def _parse_cached(expr: str, timezone: str) -> Cron:
    return Cron(expr, timezone)


# -- wall time -> instants ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Single:
    instant: datetime


@dataclass(frozen=True, slots=True)
class _Fold:
    """An ambiguous wall time: ``first`` (earlier offset) and ``second`` both show it."""

    first: datetime
    second: datetime
    earlier_offset: timedelta
    later_offset: timedelta

    def walls(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The repeated wall times ``[start, end)`` (naive)."""
        t = _transition(zone, self.first, self.second)
        naive = t.replace(tzinfo=None)
        return naive + self.later_offset, naive + self.earlier_offset


@dataclass(frozen=True, slots=True)
class _Gap:
    """A wall time that does not exist; ``transition`` is the first instant after the gap."""

    transition: datetime
    end_wall: datetime


def _resolve(zone: ZoneInfo, wall: datetime) -> _Single | _Fold | _Gap:
    """Classify a naive wall time in ``zone`` (PEP 495: fold=0 is the earlier reading)."""
    a, b = wall.replace(tzinfo=zone), wall.replace(tzinfo=zone, fold=1)
    oa, ob = a.utcoffset(), b.utcoffset()
    assert oa is not None
    assert ob is not None
    if oa == ob:
        return _Single((wall - oa).replace(tzinfo=_UTC))
    if oa > ob:
        return _Fold((wall - oa).replace(tzinfo=_UTC), (wall - ob).replace(tzinfo=_UTC), oa, ob)
    # In a gap fold=0 reads the wall with the offset before it, fold=1 with the one after.
    t = _transition(zone, (wall - ob).replace(tzinfo=_UTC), (wall - oa).replace(tzinfo=_UTC))
    return _Gap(t, t.replace(tzinfo=None) + ob)


def _transition(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The first whole second in ``(lo, hi]`` whose UTC offset differs from ``lo``'s."""
    base = lo.astimezone(zone).utcoffset()
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if (_EPOCH + timedelta(seconds=mid)).astimezone(zone).utcoffset() == base:
            lo_s = mid
        else:
            hi_s = mid
    return _EPOCH + timedelta(seconds=hi_s)


def _utc(t: datetime) -> datetime:
    if not isinstance(t, datetime):
        raise TypeError(f"expected a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: pass an aware datetime (e.g. UTC)")
    return t.astimezone(_UTC)


def _utc_second(t: datetime) -> datetime:
    # Fire times are whole seconds, so "after t" and "after t's whole second" agree.
    return _utc(t).replace(microsecond=0)


# -- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    zone: ZoneInfo
    matcher: Any
    has_seconds: bool
    every_hour: bool


def _compile(expr: str, tz: str) -> _Compiled:
    if not expr:
        raise CronError(expr, f"empty expression; {_SHAPE}")
    if len(expr) > _MAX_LENGTH:
        raise CronError(expr[:40] + "...", f"longer than {_MAX_LENGTH} characters")
    fields = _FIELD_RE.findall(expr)
    if fields[0].startswith("@"):
        fields = _FIELD_RE.findall(_macro(expr, fields[0].lower(), len(fields)))
    if len(fields) == 7:
        raise CronError(expr, "7 fields (a Quartz year field) are not supported; use 5 or 6")
    if len(fields) not in (5, 6):
        raise CronError(expr, f"{_SHAPE}; got {len(fields)} field(s)")
    names = _FIELDS_6 if len(fields) == 6 else _FIELDS_5
    for token, (name, _) in zip(fields, names, strict=True):
        if any(_HASH_RE.match(part) for part in token.split(",")):
            raise CronError(
                expr, f"{name} field {token!r}: H and R values are not supported (pod-dependent)"
            )
    zone = _zone(expr, tz)
    has_seconds = len(fields) == 6
    try:
        matcher = croniter(
            " ".join(fields), _REFERENCE, ret_type=datetime, second_at_beginning=has_seconds
        )
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # CroniterError is a ValueError
        raise CronError(expr, _explain(fields, names, exc)) from None
    dom, dow = matcher.expanded[2], matcher.expanded[4]
    if matcher.nearest_weekday and dow != ["*"]:
        raise CronError(expr, "day-of-month nW needs day-of-week '*' or '?'")
    if matcher.nth_weekday_of_month and dom != ["*"]:
        raise CronError(expr, "day-of-week d#n or Ld needs day-of-month '*' or '?'")
    try:
        matcher.get_next(start_time=_REFERENCE)
    except CroniterBadDateError:
        raise CronError(expr, "never fires (no date matches its day and month fields)") from None
    return _Compiled(zone, matcher, has_seconds, matcher.expanded[1] == ["*"])


def _macro(expr: str, name: str, count: int) -> str:
    if name in _MACROS and count == 1:
        return _MACROS[name]
    if name == "@reboot":
        raise CronError(expr, "@reboot is not supported (schedulerx has no boot time)")
    if name == "@every":
        raise CronError(expr, "@every is not supported; write a step instead: */5 * * * *")
    raise CronError(expr, f"unknown macro {name!r}; use one of {', '.join(_MACROS)}")


def _zone(expr: str, tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(expr, f"unknown time zone {tz!r}") from None


def _explain(fields: list[str], names: tuple[tuple[str, str], ...], exc: Exception) -> str:
    """Name the first field croniter refuses on its own, else croniter's first line."""
    for i, (token, (name, allowed)) in enumerate(zip(fields, names, strict=True)):
        probe = ["*"] * len(fields)
        probe[i] = token
        try:
            croniter.expand(" ".join(probe), second_at_beginning=len(fields) == 6)
        except (ValueError, TypeError, KeyError, IndexError):
            return f"{name} field {token!r} is invalid (allowed: {allowed}; with , - /)"
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return " ".join(lines[0].split())
