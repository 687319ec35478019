"""The test-suite Kafka broker (schedulerx.testing.kafka_broker) is a real, usable broker.

What the rest of the suite relies on: compacted topics can be created, transactional writes are
read back under read_committed, a node survives kill -9 + restart with its committed data, a
3-node cluster keeps accepting transactions with one node dead, and stop() leaves no JVM behind.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
import warnings
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from schedulerx.testing.kafka_broker import KafkaBroker, Node

# kafka-python 3.0.12 calls importlib.resources.read_text/open_text, deprecated on Python 3.11;
# the suite turns warnings into errors. (Belongs in pyproject's filterwarnings.)
_KAFKA_PY_DEPRECATION = "ignore:(read_text|open_text) is deprecated:DeprecationWarning"
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "(read_text|open_text) is deprecated", DeprecationWarning)
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.errors import KafkaConnectionError
    from kafka.net import inet

pytestmark = [pytest.mark.kafka, pytest.mark.filterwarnings(_KAFKA_PY_DEPRECATION)]


@pytest.fixture(autouse=True)
def _close_refused_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work around kafka-python 3.0.12 leaving a refused connect's socket unclosed.

    ``KafkaNetSocket.connect`` drops the socket when the connect fails (a killed broker), so it
    is closed only by a later GC pass, with a ResourceWarning the suite turns into an error at
    some arbitrary later point. Real network I/O is unchanged; the socket is just closed.
    """
    original = inet.KafkaNetSocket.sock_connect

    async def sock_connect(
        self: Any, net: Any, sock: socket.socket, sockaddr: Any, timeout_at: Any = None
    ) -> socket.socket:
        try:
            connecting: Coroutine[Any, Any, socket.socket] = original(
                self, net, sock, sockaddr, timeout_at=timeout_at
            )
            return await connecting
        except BaseException:
            sock.close()
            raise

    monkeypatch.setattr(inet.KafkaNetSocket, "sock_connect", sock_connect)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _create_topic(bootstrap: str, partitions: int, rf: int, configs: dict[str, str]) -> str:
    topic = f"harness-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        spec = {"num_partitions": partitions, "replication_factor": rf, "configs": configs}
        admin.create_topics({topic: spec}, wait_for_metadata=True)
        # The node that answers may not have the new topic's partitions yet (seen on a 3-node
        # cluster: an empty list right after creation): ask again, within a bound.
        deadline = time.monotonic() + 30
        while True:
            (described,) = admin.describe_topics([topic])
            if len(described["partitions"]) == partitions or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(described["partitions"]) == partitions
        assert all(len(p["replica_nodes"]) == rf for p in described["partitions"])
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict.fromkeys(configs))
        got = admin.describe_configs([resource])["topic"][topic]
        assert {key: got[key]["value"] for key in configs} == configs
    finally:
        admin.close()
    return topic


def _leaders(bootstrap: str, topics: list[str]) -> set[int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {p["leader_id"] for t in admin.describe_topics(topics) for p in t["partitions"]}
    finally:
        admin.close()


def _wait_until_fenced(bootstrap: str, topic: str, dead: Node) -> None:
    """Wait until no partition of ``topic`` or of the transaction log is led by ``dead``.

    Needed with kafka-python 3.0.12: while a dead broker is still the advertised transaction
    coordinator, a transactional request whose connect is refused is dropped, not retried
    (kafka/producer/sender.py, _maybe_send_transactional_request), and the producer hangs.
    The admin client, for its part, fails outright when it picks the dead node: retry.
    """
    deadline = time.monotonic() + 30
    while True:
        try:
            if dead.node_id not in _leaders(bootstrap, [topic, "__transaction_state"]):
                return
        except KafkaConnectionError:
            pass
        assert time.monotonic() < deadline, f"node {dead.node_id} still leads partitions"
        time.sleep(0.2)


def _commit(bootstrap: str, txn_id: str, records: list[tuple[int, bytes]], topic: str) -> None:
    """One transaction writing each (partition, value) keyed by the value; raises unless every
    record was written.

    The send futures are checked too: kafka-python 3.0.12's commit_transaction() returns
    normally when the records of the transaction expired without ever being added to it.
    """
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=txn_id, acks="all", max_block_ms=60_000
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        sent = [producer.send(topic, key=v, value=v, partition=p) for p, v in records]
        producer.commit_transaction()
        for future in sent:
            future.get(timeout=0)
    finally:
        producer.close()


def _read_committed(bootstrap: str, topic: str, partitions: int, want: set[bytes]) -> set[bytes]:
    """Values read from the start of every partition until all of ``want`` are seen (or 30 s)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    seen: set[bytes] = set()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + 30
        while not want <= seen and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                seen.update(r.value for r in batch)
    finally:
        consumer.close()
    return seen


def test_single_node_transactions_survive_kill_and_restart(tmp_path: Path) -> None:
    with KafkaBroker.start(tmp_path) as broker:
        (node,) = broker.nodes
        assert broker.bootstrap == f"127.0.0.1:{node.port}"
        topic = _create_topic(broker.bootstrap, 12, 1, {"cleanup.policy": "compact"})
        txn_id = f"harness-{uuid.uuid4().hex}"

        _commit(broker.bootstrap, txn_id, [(7, b"before-crash")], topic)
        seen = _read_committed(broker.bootstrap, topic, 12, {b"before-crash"})
        assert seen == {b"before-crash"}

        old_pid = node.pid
        node.kill(signal.SIGKILL)
        assert _pid_gone(old_pid)
        node.restart()
        assert node.pid != old_pid
        assert broker.bootstrap == f"127.0.0.1:{node.port}"

        _commit(broker.bootstrap, txn_id, [(3, b"after-restart")], topic)
        want = {b"before-crash", b"after-restart"}
        assert _read_committed(broker.bootstrap, topic, 12, want) == want

        pid = node.pid
        broker.stop()
        assert not node.running
        assert _pid_gone(pid)


@pytest.mark.slow
def test_three_nodes_keep_transactions_going_with_one_node_killed(tmp_path: Path) -> None:
    partitions = 6
    with KafkaBroker.start(tmp_path, nodes=3) as broker:
        assert len(broker.bootstrap.split(",")) == 3
        topic = _create_topic(broker.bootstrap, partitions, 3, {"min.insync.replicas": "2"})
        txn_id = f"harness-{uuid.uuid4().hex}"
        first = [(p, f"first-{p}".encode()) for p in range(partitions)]
        _commit(broker.bootstrap, txn_id, first, topic)

        # Kill a node that leads partitions of our topic, so they must fail over.
        victim = next(n for n in broker.nodes if n.node_id in _leaders(broker.bootstrap, [topic]))
        victim_pid = victim.pid
        victim.kill(signal.SIGKILL)
        assert _pid_gone(victim_pid)
        _wait_until_fenced(broker.bootstrap, topic, victim)

        second = [(p, f"second-{p}".encode()) for p in range(partitions)]
        _commit(broker.bootstrap, txn_id, second, topic)
        want = {value for _, value in first + second}
        assert _read_committed(broker.bootstrap, topic, partitions, want) == want

        pids = [n.pid for n in broker.nodes]
    assert all(_pid_gone(pid) for pid in pids)
