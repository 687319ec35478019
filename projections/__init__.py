"""Read models of the event log: the job list and the schedules (the only rocksdict user).

- ``apply_record`` / ``apply_event``: the pure rules (``projections.apply``).
- ``MemoryView``: the views in memory (``jobs --as-of``, tests).
- ``ProjectionStore``: the views in RocksDB, checkpointed in the same WriteBatch; readable
  from other processes while a pod writes (``ProjectionStore.open_reader``).
- ``catch_up``: bring either view up to date with a ``LogReader``.
- ``JobsQuery``: the query methods both views offer, for callers that take either.
"""

from projections.apply import Outcome, Verdict, ViewState, apply_event, apply_record
from projections.memory import MemoryView
from projections.model import ApplyStats, ProjectionError, ScheduleState, StoreLocked
from projections.protocols import JobsQuery, Projection
from projections.store import ProjectionStore
from projections.sync import catch_up

__all__ = [
    "ApplyStats",
    "JobsQuery",
    "MemoryView",
    "Outcome",
    "Projection",
    "ProjectionError",
    "ProjectionStore",
    "ScheduleState",
    "StoreLocked",
    "Verdict",
    "ViewState",
    "apply_event",
    "apply_record",
    "catch_up",
]
