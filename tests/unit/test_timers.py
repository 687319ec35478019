"""The pod's timer heap (schedulerx.engine.timers): order, cancel, re-arm, stop.

Real time, a few tens of milliseconds ahead; waits have generous timeouts and nothing here
asserts how late a timer fired (that belongs in bench/).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from schedulerx.engine.timers import TimerHeap

WAIT = 10.0  # seconds: only reached when something is broken


def now() -> datetime:
    return datetime.now(UTC)


def ms(n: int) -> datetime:
    return now() + timedelta(milliseconds=n)


class Fired:
    """Collects fired keys; ``wait_for(key)`` blocks until that key has fired."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, key: str) -> None:
        with self._cond:
            self.keys.append(key)
            self._cond.notify_all()

    def wait_for(self, key: str) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: key in self.keys, timeout=WAIT)


@pytest.fixture
def timers() -> Iterator[tuple[TimerHeap, Fired]]:
    fired = Fired()
    heap = TimerHeap(fired, now)
    heap.start()
    yield heap, fired
    heap.stop()


def test_fires_in_due_order(timers: tuple[TimerHeap, Fired]) -> None:
    heap, fired = timers
    heap.arm("c", ms(90))
    heap.arm("a", ms(30))
    heap.arm("b", ms(60))
    assert fired.wait_for("c")
    assert fired.keys == ["a", "b", "c"]
    assert heap.pending() == []


def test_a_past_time_fires_at_once(timers: tuple[TimerHeap, Fired]) -> None:
    heap, fired = timers
    heap.arm("late", now() - timedelta(seconds=5))
    assert fired.wait_for("late")


def test_cancel_prevents_firing(timers: tuple[TimerHeap, Fired]) -> None:
    heap, fired = timers
    heap.arm("x", ms(30))
    heap.arm("y", ms(80))
    assert sorted(heap.pending()) == ["x", "y"]
    assert heap.cancel("x") is True
    assert heap.cancel("x") is False
    assert heap.cancel("never-armed") is False
    assert fired.wait_for("y")
    assert fired.keys == ["y"]
    assert heap.cancel("y") is False  # already fired


def test_rearm_to_a_later_time_fires_once(timers: tuple[TimerHeap, Fired]) -> None:
    heap, fired = timers
    heap.arm("k", ms(20))
    heap.arm("k", ms(60))
    heap.arm("sentinel", ms(150))
    assert fired.wait_for("sentinel")
    assert fired.keys == ["k", "sentinel"]


def test_rearm_to_an_earlier_time_wakes_the_thread(timers: tuple[TimerHeap, Fired]) -> None:
    heap, fired = timers
    heap.arm("k", ms(60_000))
    heap.arm("k", ms(30))
    assert fired.wait_for("k")
    assert heap.pending() == []


def test_rearm_after_firing_fires_again(timers: tuple[TimerHeap, Fired]) -> None:
    heap, fired = timers
    heap.arm("k", ms(10))
    assert fired.wait_for("k")
    heap.arm("k", ms(10))
    heap.arm("sentinel", ms(60))
    assert fired.wait_for("sentinel")
    assert fired.keys == ["k", "k", "sentinel"]


def test_a_failing_callback_does_not_stop_the_timers() -> None:
    fired = Fired()

    def callback(key: str) -> None:
        fired(key)
        if key == "boom":
            raise RuntimeError("callback failed")

    heap = TimerHeap(callback, now)
    heap.start()
    try:
        heap.arm("boom", ms(10))
        heap.arm("after", ms(50))
        assert fired.wait_for("after")
        assert fired.keys == ["boom", "after"]
    finally:
        heap.stop()


def test_stop_means_armed_keys_never_fire() -> None:
    fired = Fired()
    heap = TimerHeap(fired, now)
    heap.start()
    heap.arm("never", ms(100))
    heap.stop()
    # Give it every chance to misbehave: a second heap proves time passed beyond "never".
    other = Fired()
    probe = TimerHeap(other, now)
    probe.start()
    try:
        probe.arm("probe", ms(200))
        assert other.wait_for("probe")
    finally:
        probe.stop()
    assert fired.keys == []


def test_uses_the_given_clock() -> None:
    """The heap compares due times with ``now()``: a clock an hour ahead fires at once."""
    fired = Fired()
    ahead: Callable[[], datetime] = lambda: now() + timedelta(hours=1)  # noqa: E731
    heap = TimerHeap(fired, ahead)
    heap.start()
    try:
        heap.arm("k", ms(30 * 60 * 1000))
        assert fired.wait_for("k")
    finally:
        heap.stop()
