"""The Kafka checks of ``schedulerx doctor``: broker, topics, their config, group, clocks.

Read-only: admin describe calls and one group-less ``read_committed`` consumer that looks at
the newest records. Nothing is produced, created or committed. Each finding is one line with,
for a problem, the exact command that fixes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from schedulerx.backends.kafka.admin import connect_admin
from schedulerx.backends.kafka.errors import describe
from schedulerx.backends.kafka.settings import KafkaSettings
from schedulerx.ports.event_log import LogError

_RECENT_S: Final = 60.0
_SKEW_WARN_S: Final = 1.0
_UNKNOWN_TOPIC: Final = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """One checklist line: level OK, WARN, PROBLEM or SKIP."""

    level: str
    check: str
    detail: str
    fix: str | None = None


def kafka_checks(bootstrap: str, topic: str, group: str) -> list[Finding]:
    """Every Kafka check, in order; stops early when the broker or the topic is missing."""
    settings = KafkaSettings.from_env(bootstrap, topic=topic, group=group, connect_timeout_s=10)
    started = time.monotonic()
    try:
        admin = connect_admin(settings)
        cluster = admin.describe_cluster()
    except (LogError, KafkaError, OSError) as exc:
        return [
            Finding(
                "PROBLEM",
                "broker",
                str(exc).splitlines()[0] if str(exc) else describe(exc),
                "check --kafka / SCHEDULERX_KAFKA and the SCHEDULERX_KAFKA_* TLS/SASL settings",
            )
        ]
    took = (time.monotonic() - started) * 1000
    brokers = cluster.get("brokers", [])
    out = [
        Finding(
            "OK",
            "broker",
            f"{bootstrap} reachable in {took:.0f} ms; {len(brokers)} broker(s), "
            f"controller {cluster.get('controller_id')}",
        )
    ]
    try:
        partitions = _topic_checks(admin, settings, out)
        if partitions is not None:
            out.append(_group_check(admin, settings, partitions))
            out.append(_clock_check(settings, partitions))
    except KafkaError as exc:
        out.append(Finding("PROBLEM", "admin", f"admin request failed: {describe(exc)}"))
    finally:
        admin.close()
    return out


def _describe(admin: Any, name: str) -> dict[str, Any] | None:
    for t in admin.describe_topics([name]):
        if t.get("name") == name and t.get("error_code", 0) == 0 and t.get("partitions"):
            found: dict[str, Any] = t
            return found
    return None


def _configs(admin: Any, name: str) -> dict[str, str]:
    raw = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name)], config_filter="all"
    )
    entries = raw.get("topic", {}).get(name, {})
    return {k: str(v.get("value")) for k, v in entries.items()}


def _alter(bootstrap: str, topic: str, config: str) -> str:
    return (
        f"kafka-configs.sh --bootstrap-server {bootstrap} --entity-type topics "
        f"--entity-name {topic} --alter --add-config {config}"
    )


def _topic_checks(admin: Any, s: KafkaSettings, out: list[Finding]) -> int | None:
    """State and requests topic checks (appended to ``out``); the partition count or None."""
    b, t = s.bootstrap, s.topic
    state = _describe(admin, t)
    if state is None:
        out.append(
            Finding(
                "PROBLEM",
                "topic",
                f"{t!r} does not exist",
                f"schedulerx topic create --kafka {b} --topic {t} --partitions 12 "
                "--replication-factor 3",
            )
        )
        return None
    parts = state["partitions"]
    n = len(parts)
    rf = min(len(p.get("replica_nodes", [])) for p in parts)
    config = _configs(admin, t)
    policy = config.get("cleanup.policy", "")
    if {x.strip() for x in policy.split(",")} == {"compact"}:
        out.append(Finding("OK", "cleanup.policy", f"{t!r} is compact"))
    else:
        why = (
            "records are deleted by age, so schedules and job states vanish from the log"
            if "compact" not in policy
            else "records are also deleted by age, even a key's latest state"
        )
        out.append(
            Finding(
                "PROBLEM",
                "cleanup.policy",
                f"{t!r} has cleanup.policy={policy}: {why}",
                _alter(b, t, "cleanup.policy=compact"),
            )
        )
    out.append(Finding("OK", "partitions", f"{t!r} has {n} partitions"))
    offline = [p["partition_index"] for p in parts if p.get("leader_id", -1) < 0]
    short = [
        p["partition_index"]
        for p in parts
        if len(p.get("isr_nodes", [])) < len(p.get("replica_nodes", []))
    ]
    if offline:
        out.append(
            Finding(
                "PROBLEM",
                "leaders",
                f"partitions {sorted(offline)} have no leader: their commands do not run",
                "bring the brokers holding their replicas back",
            )
        )
    if rf < 2:
        out.append(
            Finding(
                "WARN",
                "replication",
                f"replication factor {rf}: losing that broker stops every pod",
                "create the topic with --replication-factor 3 on a cluster of 3+ brokers",
            )
        )
    elif short:
        out.append(
            Finding(
                "WARN",
                "replication",
                f"replication factor {rf}; partitions {sorted(short)} are under-replicated",
            )
        )
    else:
        out.append(Finding("OK", "replication", f"replication factor {rf}, all replicas in sync"))
    out.append(_min_isr(b, t, rf, config.get("min.insync.replicas", "1")))
    lag_ms = int(config.get("min.compaction.lag.ms", "0") or 0)
    if lag_ms <= 0:
        out.append(
            Finding(
                "WARN",
                "min.compaction.lag.ms",
                "0: compaction may drop a job's earlier transitions at once (replay and "
                "jobs --as-of then see only final states)",
                _alter(b, t, "min.compaction.lag.ms=86400000"),
            )
        )
    else:
        out.append(
            Finding(
                "OK",
                "min.compaction.lag.ms",
                f"full history kept at least {lag_ms / 3_600_000:g} h",
            )
        )
    out.append(_requests_check(admin, s, n))
    return n


def _min_isr(b: str, t: str, rf: int, value: str) -> Finding:
    m = int(value or 1)
    if m > rf:
        return Finding(
            "PROBLEM",
            "min.insync.replicas",
            f"{m} > replication factor {rf}: every write fails (NotEnoughReplicas)",
            _alter(b, t, f"min.insync.replicas={max(1, rf - 1)}"),
        )
    if rf > 1 and m == rf:
        return Finding(
            "WARN",
            "min.insync.replicas",
            f"{m} = replication factor: any one broker down stops all writes",
            _alter(b, t, f"min.insync.replicas={rf - 1}"),
        )
    if rf >= 3 and m < 2:
        return Finding(
            "WARN",
            "min.insync.replicas",
            f"{m} with replication factor {rf}: a write one replica acknowledged can be lost",
            _alter(b, t, "min.insync.replicas=2"),
        )
    return Finding("OK", "min.insync.replicas", f"{m} (replication factor {rf})")


def _requests_check(admin: Any, s: KafkaSettings, n: int) -> Finding:
    b, r = s.bootstrap, s.requests_topic
    found = _describe(admin, r)
    if found is None:
        return Finding(
            "WARN",
            "requests topic",
            f"{r!r} does not exist; the next pod start or CLI change creates it",
            f"schedulerx topic create --kafka {b} --topic {s.topic}",
        )
    m = len(found["partitions"])
    if m < n:
        return Finding(
            "PROBLEM",
            "requests topic",
            f"{r!r} has {m} partitions, {s.topic!r} has {n}: pods refuse to start",
            f"kafka-topics.sh --bootstrap-server {b} --alter --topic {r} --partitions {n}",
        )
    if m > n:
        return Finding(
            "PROBLEM",
            "requests topic",
            f"{r!r} has {m} partitions, {s.topic!r} has {n}: pods refuse to start",
            f"kafka-topics.sh --bootstrap-server {b} --delete --topic {r}, then "
            f"schedulerx topic create --kafka {b} --topic {s.topic} (pending requests are lost)",
        )
    if "compact" in _configs(admin, r).get("cleanup.policy", ""):
        return Finding(
            "WARN",
            "requests topic",
            f"{r!r} is compacted: waiting requests of one command can replace each other",
            _alter(b, r, "cleanup.policy=delete"),
        )
    return Finding("OK", "requests topic", f"{r!r} has {m} partitions, as it must")


def _group_check(admin: Any, s: KafkaSettings, partitions: int) -> Finding:
    g = s.group
    try:
        info = admin.describe_groups([g]).get(g) or {}
    except KafkaError as exc:
        return Finding("WARN", "group", f"{g!r} not found ({describe(exc)}): no pod ever joined")
    state = str(info.get("group_state") or "Dead")
    members = info.get("members") or []
    names = sorted(
        str(m.get("group_instance_id") or m.get("client_id") or m.get("member_id")) for m in members
    )
    shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    if state in ("Empty", "Dead") or not members:
        return Finding(
            "WARN",
            "group",
            f"{g!r} is {state}: no pod is running, so no job starts",
            f"schedulerx run APP --kafka {s.bootstrap} --group {g}",
        )
    if state != "Stable":
        return Finding(
            "WARN", "group", f"{g!r} is {state} ({len(members)} members): a rebalance is under way"
        )
    if len(members) > partitions:
        return Finding(
            "WARN",
            "group",
            f"{g!r} Stable with {len(members)} members for {partitions} partitions: "
            f"{len(members) - partitions} pod(s) own nothing (standbys): {shown}",
        )
    protocol = info.get("protocol_data") or "?"
    return Finding("OK", "group", f"{g!r} Stable, {len(members)} member(s) ({protocol}): {shown}")


def _clock_check(s: KafkaSettings, partitions: int) -> Finding:
    """Compare this machine's clock with the newest record's timestamp, if it is recent.

    Nothing is produced to measure: the newest record says the writer's clock (CreateTime,
    the pod that wrote it) or the broker's (LogAppendTime) at the time it was written. A
    timestamp in the future means this clock is behind by at least that much; a recent one
    bounds how far ahead this clock can be. Without a recent record, nothing honest can be
    said and the check is skipped.
    """
    try:
        newest = _newest_timestamp_ms(s, partitions)
    except (KafkaError, OSError) as exc:
        return Finding("SKIP", "clock", f"cannot read the newest records: {describe(exc)}")
    now_ms = time.time() * 1000
    if newest is None or (now_ms - newest) / 1000 > _RECENT_S:
        return Finding(
            "SKIP",
            "clock",
            f"no record in the last {_RECENT_S:g}s to compare with; skew not checked "
            "(pods stay correct under skew, but jobs start by each pod's clock)",
        )
    age_s = (now_ms - newest) / 1000
    if age_s < -_SKEW_WARN_S:
        return Finding(
            "WARN",
            "clock",
            f"the newest record is {-age_s:.1f}s in the future: this machine's clock is "
            f"behind its writer's by at least that",
            "sync clocks with NTP (chrony, systemd-timesyncd) on every pod and broker",
        )
    return Finding(
        "OK",
        "clock",
        f"the newest record is {max(age_s, 0):.1f}s old by this clock: this clock is at most "
        "that far ahead of its writer's (the pod's with CreateTime, the broker's with "
        "LogAppendTime)",
    )


def _newest_timestamp_ms(s: KafkaSettings, partitions: int) -> float | None:
    consumer = KafkaConsumer(
        **s.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id="schedulerx-doctor",
    )
    try:
        tps = [TopicPartition(s.topic, p) for p in range(partitions)]
        consumer.assign(tps)
        starts = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        for tp in pending:
            # The last record sits just before its transaction's commit marker.
            consumer.seek(tp, max(starts[tp], ends[tp] - 3))
        newest: float | None = None
        deadline = time.monotonic() + 5
        while pending and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                for r in batch:
                    newest = r.timestamp if newest is None else max(newest, r.timestamp)
            pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
        return newest
    finally:
        consumer.close()
