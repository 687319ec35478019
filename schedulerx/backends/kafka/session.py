"""A pod's group membership over Kafka: ownership, fenced writes, and the requests inbox.

- Membership: a consumer in the group subscribed to the state topic with the cooperative-sticky
  assignor. Its partitions are paused (it never fetches): the engine catches up through a
  reader and applies its own writes, since only the owner writes a state partition.
- Fencing: partition *p* is written only through a transactional producer whose
  ``transactional_id`` is derived from *p*. On assignment, ``init_transactions()`` fences the
  previous owner (its open transaction is aborted, its next commit fails) before the partition
  counts as owned.
- Lease: a partition counts as owned only while the last heartbeat answer from the group
  coordinator is younger than 2/3 of the session timeout, so a paused (SIGSTOP) pod that wakes
  up starts nothing before it has heard from the group again — by then its partitions moved.
- Requests: a second consumer reads the owned partitions of ``<topic>-requests`` and commits
  what it returned at the next poll (at-least-once; the engine makes redelivery harmless).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.base import MemberState
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
)
from kafka.structs import OffsetAndMetadata

from schedulerx.backends.kafka.errors import describe
from schedulerx.backends.kafka.settings import KafkaSettings
from schedulerx.ports.event_log import Item, LogError, NotOwner, Poll, Record

log = logging.getLogger("schedulerx.kafka")
_QUIET_S = 10.0
_SEND_TIMEOUT_S = 10.0
_JOIN_WAIT_S = 5.0


class _Throttle:
    """Logs a repeated warning at most once per ``_QUIET_S`` (a broker outage is one event)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -_QUIET_S) >= _QUIET_S:
            self._last[kind] = now
            log.warning(message, *args)


_FENCED = (ProducerFencedError, InvalidProducerEpochError)


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` (monotonic), never negative."""
    return max(0.0, deadline - time.monotonic())


def _begin_commit(producer: Any) -> Any:
    """Start ``producer``'s commit without waiting; returns what to wait on.

    kafka-python 3.0.12 (pinned) only has a blocking, untimed ``commit_transaction()``; this is
    its first half (the transaction manager's ``begin_commit`` and a sender wake-up), so many
    partitions commit at once and the wait can have a deadline.
    """
    result = producer._transaction_manager.begin_commit()
    producer._sender.wakeup()
    return result


def _begin_abort(producer: Any) -> Any:
    """Start ``producer``'s abort without waiting (``abort_transaction``'s first half, as
    ``_begin_commit``); returns what to wait on."""
    result = producer._transaction_manager.begin_abort()
    producer._sender.wakeup()
    return result


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs inside ``consumer.poll`` on the loop thread: only records the change."""

    def __init__(self, session: KafkaSession):
        self._session = session

    def on_partitions_revoked(self, revoked: Any) -> None:
        gone = {tp.partition for tp in revoked}
        self._session._retake -= gone
        self._session._revoke(gone, "revoked")

    def on_partitions_assigned(self, assigned: Any) -> None:
        # Called after a successful join: proof the coordinator knows us now.
        self._session._assigned_at = time.monotonic()
        self._session._pending_assigned.update(tp.partition for tp in assigned)

    def on_partitions_lost(self, lost: Any) -> None:
        gone = {tp.partition for tp in lost}
        self._session._retake -= gone
        self._session._lost |= gone
        self._session._revoke(gone, "lost")


class KafkaSession:
    """A pod's membership in the group (the ``LogSession`` port)."""

    def __init__(self, settings: KafkaSettings, partitions: int, pod_id: str):
        self._s = settings
        self._pod_id = pod_id
        self._partitions = partitions
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._pending_assigned: set[int] = set()
        self._pending_revoked: set[int] = set()
        self._lost: set[int] = set()
        self._retake: set[int] = set()
        """Given up locally when the lease went stale; taken again once the group confirms
        (a fresh heartbeat answer) that they are still ours."""
        self._assigned_at = float("-inf")
        self._producers: dict[int, Any] = {}
        self._broken: set[int] = set()
        self._to_commit: dict[Any, Any] = {}
        self._closed = False
        self._throttle = _Throttle()
        session_ms = settings.session_timeout_ms
        self._lease_s = session_ms / 1000 * 2 / 3
        kw = settings.client_kwargs()
        try:
            self._consumer: Any = KafkaConsumer(
                **kw,
                group_id=settings.group,
                group_instance_id=pod_id if settings.static_membership else None,
                client_id=f"schedulerx-{pod_id}",
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="latest",
                partition_assignment_strategy=[CooperativeStickyAssignor],
                session_timeout_ms=session_ms,
                # Survivors learn of a rebalance on their next heartbeat: frequent ones
                # shorten failover and keep the lease fresh; they cost the broker little.
                heartbeat_interval_ms=max(100, session_ms // 10),
                max_poll_interval_ms=max(300_000, session_ms * 3),
            )
            self._consumer.subscribe([settings.topic], listener=_Listener(self))
            self._inbox: Any = KafkaConsumer(
                **kw,
                group_id=f"{settings.group}-requests",
                client_id=f"schedulerx-{pod_id}-requests",
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
            )
        except KafkaError as exc:
            raise LogError(f"cannot join group {settings.group!r}: {describe(exc)}") from None
        # Fencing (init_transactions) is a round trip per partition taken: all at once.
        self._pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="schedulerx-txinit")
        self._follower: Any = None
        self._draining: set[int] = set()
        """Revoked (not lost) in the last poll: appends still accepted until the next one."""

    # -- port ------------------------------------------------------------------------------

    @property
    def pod_id(self) -> str:
        """This pod's id."""
        return self._pod_id

    def owned(self) -> frozenset[int]:
        """Owned partitions; empty while the group lease is not fresh."""
        with self._lock:
            if self._closed or not self._lease_fresh():
                return frozenset()
            return frozenset(self._owned)

    def poll(self, timeout_s: float) -> Poll:
        """Drive membership; fence and take newly assigned partitions; read requests."""
        self._commit_requests()
        with self._lock:
            drained, self._draining = self._draining, set()
        for p in drained:
            self._close_producer(p)  # the hand-over window ends with this poll
        wait = timeout_s
        if not self._owned and self._consumer._coordinator.state is not MemberState.STABLE:
            # kafka-python 3.0.12 drops a join that completes after poll() returned; a pod that
            # owns nothing yet loses nothing by waiting for its join inside one call.
            wait = max(timeout_s, _JOIN_WAIT_S)
        try:
            self._consumer.poll(timeout_ms=int(wait * 1000), max_records=1)
        except KafkaError as exc:
            self._throttle.warning("poll", "group poll failed (will retry): %s", describe(exc))
        with self._lock:
            stale = set(self._owned) if self._owned and not self._lease_fresh() else set()
        if stale:
            self._stale(stale)
        with self._lock:
            if self._retake and self._lease_fresh():
                still = {tp.partition for tp in self._consumer.assignment()}
                self._pending_assigned |= self._retake & still
                self._retake.clear()
            assigned, self._pending_assigned = self._pending_assigned, set()
            revoked, self._pending_revoked = self._pending_revoked, set()
        with self._lock:
            lost, self._lost = self._lost, set()
            self._draining = revoked - lost
        for p in lost:
            self._close_producer(p)
        ready = self._take(assigned - revoked)
        if ready or revoked:
            self._reassign_inbox()
        return Poll(
            records=self._follow_records(),
            assigned=frozenset(ready),
            revoked=frozenset(revoked),
            requests=self._read_requests(),
        )

    def follow(self, positions: Mapping[int, int]) -> None:
        """Tail every partition of the state topic from ``positions`` (read_committed)."""
        if self._follower is None:
            self._follower = KafkaConsumer(
                **self._s.client_kwargs(),
                group_id=None,
                client_id=f"schedulerx-{self._pod_id}-follow",
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            self._follower.assign([TopicPartition(self._s.topic, p) for p in positions])
        for p, offset in positions.items():
            self._follower.seek(TopicPartition(self._s.topic, p), offset)

    def _follow_records(self) -> list[Record]:
        if self._follower is None:
            return []
        try:
            batch = self._follower.poll(timeout_ms=0, max_records=5000)
        except KafkaError as exc:
            self._throttle.warning(
                "follow", "following the topic failed (will retry): %s", describe(exc)
            )
            return []
        return [
            Record(tp.partition, r.offset, r.key or b"", r.value, r.timestamp)
            for tp, records in batch.items()
            for r in records
        ]

    def append(self, partition: int, items: Sequence[Item]) -> list[int]:
        """One transaction on ``partition``'s fenced producer; offsets once committed."""
        result = self.append_many({partition: items})[partition]
        if isinstance(result, LogError):
            raise result
        return result

    def append_many(self, batches: Mapping[int, Sequence[Item]]) -> dict[int, list[int] | LogError]:
        """One transaction per partition, all in flight at once: every partition's records
        are sent before any is waited for, and the commits are started together, so a flush
        of 12 partitions waits about one round trip, not 12. Each result is on its own:
        offsets, NotOwner (fenced or not owned: nothing visible) or LogError (aborted)."""
        results: dict[int, list[int] | LogError] = {}
        sent: list[tuple[int, Any, list[Any]]] = []
        for partition, items in batches.items():
            try:
                producer = self._writable(partition)
            except LogError as exc:
                results[partition] = exc
                continue
            try:
                producer.begin_transaction()
                futures = [
                    producer.send(self._s.topic, key=k, value=v, partition=partition)
                    for k, v in items
                ]
            except (KafkaError, *_FENCED) as exc:
                results[partition] = self._failed(partition, producer, exc)
                continue
            sent.append((partition, producer, futures))
        deadline = time.monotonic() + _SEND_TIMEOUT_S
        committing = self._acknowledged(sent, deadline, results)
        for partition, producer, offsets, done in committing:
            try:
                if not done.wait(timeout_ms=_left(deadline) * 1000):
                    raise KafkaTimeoutError(f"commit not answered in {_SEND_TIMEOUT_S:g}s")
                results[partition] = offsets
            except (KafkaError, *_FENCED) as exc:
                results[partition] = self._failed(partition, producer, exc, abort=False)
        return results

    def _acknowledged(
        self,
        sent: list[tuple[int, Any, list[Any]]],
        deadline: float,
        results: dict[int, list[int] | LogError],
    ) -> list[tuple[int, Any, list[int], Any]]:
        """Start each partition's commit as soon as all its records are acknowledged (every
        record must be before the commit: kafka-python 3.0.12 can drop a transaction's
        records when its coordinator died, fail their futures later, and still commit with
        nothing written). A partition still waiting at ``deadline`` fails alone; the others'
        commits are under way by then. Returns (partition, producer, offsets, commit)."""
        committing: list[tuple[int, Any, list[int], Any]] = []
        acked = threading.Event()
        for _, _, futures in sent:
            for f in futures:
                f.add_both(lambda _: acked.set())
        pending = sent
        while pending:
            acked.clear()
            waiting = []
            for partition, producer, futures in pending:
                if not all(f.is_done for f in futures):
                    waiting.append((partition, producer, futures))
                    continue
                try:
                    offsets = [int(f.get().offset) for f in futures]  # raises a failed send
                    committing.append((partition, producer, offsets, _begin_commit(producer)))
                except (KafkaError, *_FENCED) as exc:
                    results[partition] = self._failed(partition, producer, exc)
            pending = waiting
            if pending and not acked.wait(_left(deadline)):
                for partition, producer, _ in pending:
                    timeout = KafkaTimeoutError(f"records not acknowledged in {_SEND_TIMEOUT_S:g}s")
                    results[partition] = self._failed(partition, producer, timeout, abort=False)
                break
        return committing

    def _writable(self, partition: int) -> Any:
        """The partition's producer; NotOwner unless owned (or draining after a revoke)."""
        with self._lock:
            draining = partition in self._draining and self._lease_fresh()
        if partition not in self.owned() and not draining:
            if partition in self._owned:
                self._stale({partition})
            raise NotOwner(f"partition {partition} is not owned by {self._pod_id}")
        return self._producer(partition)

    def _failed(
        self, partition: int, producer: Any, exc: BaseException, abort: bool = True
    ) -> LogError:
        """What a failed transaction means: fenced -> NotOwner (the partition is gone);
        otherwise LogError and a producer to rebuild, after an abort unless ``abort`` is
        False (a broker that left a send or a commit unanswered would leave the abort
        unanswered too; the fresh producer's init_transactions ends the transaction)."""
        if isinstance(exc, _FENCED):
            self._lost.add(partition)
            self._revoke({partition}, f"fenced ({type(exc).__name__})")
            self._close_producer(partition)
            return NotOwner(f"partition {partition}: fenced by a newer owner")
        if abort:
            self._abort(partition, producer)
        with self._lock:
            # A coordinator that moved, a timed-out send or an unanswered commit leaves the
            # producer unusable: a fresh one (init_transactions under a fresh lease) recovers,
            # completing or aborting what this one left open.
            self._broken.add(partition)
        return LogError(f"append to partition {partition} failed: {describe(exc)}")

    def close(self) -> None:
        """Leave the group promptly and close every client."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            owned = set(self._owned)
            self._owned.clear()
        for p in owned:
            self._close_producer(p)
        clients = [self._inbox, self._consumer]
        if self._follower is not None:
            clients.append(self._follower)
        for client in clients:
            try:
                client.close(autocommit=False, timeout_ms=5000)
            except Exception as exc:
                log.debug("closing a consumer failed: %s", describe(exc))
        if self._s.static_membership:
            self._leave_static()
        self._pool.shutdown(wait=False)

    # -- ownership -------------------------------------------------------------------------

    def _lease_fresh(self) -> bool:
        """True while the group coordinator answered us recently: a heartbeat answer or the
        assignment itself. Not kafka-python's ``last_reset``: it is also reset when the client
        merely rediscovers the coordinator (e.g. right after SIGCONT), which proves nothing."""
        hb = self._consumer._coordinator.heartbeat
        last = max(hb.last_receive, self._assigned_at)
        return bool(time.monotonic() - last < self._lease_s)

    def _stale(self, partitions: set[int]) -> None:
        """The lease lapsed: give these up now (as lost) and take them again only after the
        group has answered us (they may have moved meanwhile: then the callbacks say so)."""
        with self._lock:
            gone = partitions & self._owned
            self._retake |= gone
            self._lost |= gone
        self._revoke(gone, f"given up: lease lapsed (no group answer for {self._lease_s:.1f}s)")

    def _revoke(self, partitions: set[int], why: str) -> None:
        with self._lock:
            gone = partitions & (self._owned | self._pending_assigned)
            self._owned -= partitions
            self._pending_assigned -= partitions
            self._pending_revoked |= gone
        if gone:
            log.info("pod %s: partitions %s %s", self._pod_id, sorted(gone), why)

    def _take(self, partitions: set[int]) -> set[int]:
        """Fence the previous owners (init_transactions, in parallel); returns the ready."""
        if not partitions:
            return set()
        tps = [TopicPartition(self._s.topic, p) for p in partitions]
        self._consumer.pause(*tps)
        futures = {p: self._pool.submit(self._new_producer, p) for p in partitions}
        ready: set[int] = set()
        for p, fut in futures.items():
            try:
                producer = fut.result()
            except KafkaError as exc:
                log.error("cannot take partition %d (init_transactions): %s", p, describe(exc))
                continue
            with self._lock:
                still = p not in self._pending_revoked
                if still:
                    self._producers[p] = producer
                    self._owned.add(p)
            if still:
                ready.add(p)
            else:
                producer.close(timeout=1)
        return ready

    def _new_producer(self, partition: int) -> Any:
        producer = KafkaProducer(
            **self._s.client_kwargs(),
            client_id=f"schedulerx-{self._pod_id}-p{partition}",
            # Topic + partition only: every writer of this partition, whatever its group, fences
            # the others (two groups on one topic must never both run a job).
            transactional_id=f"schedulerx.{self._s.topic}.{partition}",
            acks="all",
            enable_idempotence=True,
            max_block_ms=10_000,
            request_timeout_ms=10_000,
            delivery_timeout_ms=15_000,
            # A transaction right after the previous one is often told to retry; kafka-python's
            # default 100 ms backoff then dominates the commit time (measured in bench/).
            retry_backoff_ms=10,
            linger_ms=0,
        )
        producer.init_transactions()
        return producer

    def _producer(self, partition: int) -> Any:
        with self._lock:
            producer = self._producers.get(partition)
            broken = partition in self._broken
        if producer is not None and not broken:
            return producer
        if producer is not None:
            self._close_producer(partition)
        try:
            producer = self._new_producer(partition)
        except _FENCED:
            self._revoke({partition}, "fenced")
            raise NotOwner(f"partition {partition}: fenced by a newer owner") from None
        except KafkaError as exc:
            raise LogError(f"partition {partition}: producer not ready: {describe(exc)}") from None
        with self._lock:
            self._producers[partition] = producer
            self._broken.discard(partition)
        return producer

    def _abort(self, partition: int, producer: Any) -> None:
        try:
            done = _begin_abort(producer)
            if not done.wait(timeout_ms=_SEND_TIMEOUT_S * 1000):
                raise KafkaTimeoutError(f"abort not answered in {_SEND_TIMEOUT_S:g}s")
        except Exception as exc:
            # A fatal state: a fresh producer with the same transactional id (init) recovers.
            log.warning(
                "abort on partition %d failed (%s); producer will be rebuilt",
                partition,
                describe(exc),
            )
            with self._lock:
                self._broken.add(partition)

    def _close_producer(self, partition: int) -> None:
        with self._lock:
            producer = self._producers.pop(partition, None)
            self._broken.discard(partition)
        if producer is not None:
            try:
                producer.close(timeout=2)
            except Exception as exc:
                log.debug("closing producer %d failed: %s", partition, describe(exc))

    def _leave_static(self) -> None:
        from kafka.admin import MemberToRemove

        from schedulerx.backends.kafka.admin import connect_admin

        try:
            admin = connect_admin(self._s)
            try:
                admin.remove_group_members(
                    self._s.group, [MemberToRemove(group_instance_id=self._pod_id)]
                )
            finally:
                admin.close()
        except Exception as exc:
            log.warning("could not remove static member %s: %s", self._pod_id, describe(exc))

    # -- requests inbox --------------------------------------------------------------------

    def _reassign_inbox(self) -> None:
        with self._lock:
            owned = sorted(self._owned)
            self._to_commit = {
                tp: o for tp, o in self._to_commit.items() if tp.partition in self._owned
            }
        self._inbox.assign([TopicPartition(self._s.requests_topic, p) for p in owned])

    def _read_requests(self) -> list[bytes]:
        if not self._inbox.assignment():
            return []
        try:
            batch = self._inbox.poll(timeout_ms=0, max_records=500)
        except KafkaError as exc:
            self._throttle.warning(
                "requests", "reading requests failed (will retry): %s", describe(exc)
            )
            return []
        out: list[bytes] = []
        for tp, records in batch.items():
            for r in records:
                out.append(r.value or b"")
            if records:
                self._to_commit[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        return out

    def _commit_requests(self) -> None:
        if not self._to_commit:
            return
        offsets, self._to_commit = self._to_commit, {}
        try:
            self._inbox.commit(offsets)
        except KafkaError as exc:
            log.warning(
                "committing request offsets failed (they will be redelivered): %s", describe(exc)
            )
