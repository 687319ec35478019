"""Counting and logging of record outcomes, shared by both views."""

from __future__ import annotations

import logging
from typing import Final

from projections.apply import Outcome, Verdict
from projections.model import ApplyStats
from schedulerx.ports.event_log import Record

log: Final = logging.getLogger("schedulerx.projections")


class Tally:
    """Mutable counters for one ``apply`` call."""

    __slots__ = ("applied", "illegal", "poison")

    def __init__(self) -> None:
        self.applied = 0
        self.poison = 0
        self.illegal = 0

    def add(self, record: Record, outcome: Outcome) -> None:
        """Count ``outcome``; a skipped record is logged at WARNING with partition and offset."""
        verdict = outcome.verdict
        if verdict is Verdict.CHANGED or verdict is Verdict.UNCHANGED:
            self.applied += 1
            return
        if verdict is Verdict.POISON:
            self.poison += 1
            what = "poison record"
        else:
            self.illegal += 1
            what = "illegal transition"
        log.warning(
            "skipped %s at partition %d offset %d: %s",
            what,
            record.partition,
            record.offset,
            outcome.reason,
        )

    def stats(self) -> ApplyStats:
        """The counts so far."""
        return ApplyStats(
            applied=self.applied, poison_records=self.poison, illegal_transitions=self.illegal
        )
