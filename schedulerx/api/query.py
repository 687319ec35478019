"""Read-only access to the job list from outside the pod (CLI, a stopped Scheduler)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from projections import JobsQuery
from schedulerx.api.wiring import BackendConfig, open_log
from schedulerx.ports.event_log import EventLog, LogLocked

Progress = Callable[[int, int], None]


@contextlib.contextmanager
def open_query(
    backend: BackendConfig, event_log: EventLog | None = None, progress: Progress | None = None
) -> Iterator[JobsQuery]:
    """A ``projections.JobsQuery`` that is current with the log.

    Embedded log: when a pod runs on the data dir, its projection is opened as a secondary
    (read-only, caught up with the pod's writes); otherwise the projection is brought up to
    date from the log first. Kafka: a local projection for this reader is caught up from the
    topic. ``progress(done, total)`` is called while catching up.
    """
    from projections import ProjectionStore
    from projections.sync import catch_up

    owned = event_log is None
    log_ = event_log or open_log(backend, create=False)
    try:
        if backend.kafka is None:
            try:
                session = log_.join("schedulerx-cli")
            except LogLocked:
                store = ProjectionStore.open_reader(backend.projection_dir("pod"))
                try:
                    yield store
                finally:
                    store.close()
                return
            try:
                store = ProjectionStore(backend.projection_dir("pod"), log_.partitions)
                try:
                    reader = log_.reader()
                    try:
                        catch_up(store, reader, progress=progress)
                    finally:
                        reader.close()
                    yield store
                finally:
                    store.close()
            finally:
                session.close()
            return
        store = ProjectionStore(backend.projection_dir("cli"), log_.partitions)
        try:
            reader = log_.reader()
            try:
                catch_up(store, reader, progress=progress)
            finally:
                reader.close()
            yield store
        finally:
            store.close()
    finally:
        if owned:
            log_.close()
