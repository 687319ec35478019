"""Read-only access to the job list from outside the pod (CLI, a stopped Scheduler)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from projections import JobsQuery, ProjectionStore
from projections.sync import catch_up
from schedulerx.api.wiring import BackendConfig, open_log
from schedulerx.ports.event_log import EventLog, LogLocked

Progress = Callable[[int, int], None]


@contextlib.contextmanager
def caught_up_store(
    path: Path, event_log: EventLog, progress: Progress | None = None
) -> Iterator[ProjectionStore]:
    """The projection store at ``path`` (opened as its writer), brought up to the log end."""
    store = ProjectionStore(path, event_log.partitions)
    try:
        reader = event_log.reader()
        try:
            catch_up(store, reader, progress=progress)
        finally:
            reader.close()
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def open_query(
    backend: BackendConfig, event_log: EventLog | None = None, progress: Progress | None = None
) -> Iterator[JobsQuery]:
    """A ``projections.JobsQuery`` that is current with the log.

    Embedded log: when a pod runs on the data dir, its projection is opened as a secondary
    (read-only, caught up with the pod's writes); otherwise the projection is brought up to
    date from the log first, holding the data-dir lock meanwhile. Kafka: a local projection
    for this reader is caught up from the topic. ``progress(done, total)`` is called while
    catching up.
    """
    with contextlib.ExitStack() as stack:
        log_ = event_log or stack.enter_context(contextlib.closing(open_log(backend, create=False)))
        if backend.kafka is not None:
            yield stack.enter_context(
                caught_up_store(backend.projection_dir("cli"), log_, progress)
            )
            return
        try:
            session = log_.join("schedulerx-cli")
        except LogLocked:
            reader = ProjectionStore.open_reader(backend.projection_dir("pod"))
            yield stack.enter_context(contextlib.closing(reader))
            return
        stack.callback(session.close)
        yield stack.enter_context(caught_up_store(backend.projection_dir("pod"), log_, progress))
