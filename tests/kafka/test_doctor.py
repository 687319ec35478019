"""``schedulerx doctor --kafka`` against a real broker: a good topic, and misconfigured ones."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.procs import cli

pytestmark = pytest.mark.kafka


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create_with_policy(bootstrap: str, topic: str, policy: str) -> None:
    """A topic made by hand, as an operator might, with the wrong cleanup.policy."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], client_id="test-doctor")
    try:
        admin.create_topics(
            [
                NewTopic(topic, 3, 1, topic_configs={"cleanup.policy": policy}),
                NewTopic(f"{topic}-requests", 3, 1),
            ]
        )
    finally:
        admin.close()


def test_a_topic_made_by_topic_create_passes(kafka_bootstrap: str) -> None:
    topic, group = _name("doctor-good"), _name("doctor-group")
    create = ["topic", "create", "--kafka", kafka_bootstrap, "--topic", topic]
    made = json.loads(cli(*create, "--partitions", "4", "--json").stdout)
    assert made == {
        "bootstrap": kafka_bootstrap,
        "topics": [
            {
                "name": topic,
                "role": "state",
                "partitions": 4,
                "replication_factor": 1,
                "created": True,
            },
            {
                "name": f"{topic}-requests",
                "role": "requests",
                "partitions": 4,
                "replication_factor": 1,
                "created": True,
            },
        ],
    }
    # Again, asking for more: both are kept as they are, and --json says so.
    kept = json.loads(cli(*create, "--partitions", "6", "--json").stdout)
    assert [(t["name"], t["partitions"], t["created"]) for t in kept["topics"]] == [
        (topic, 4, False),
        (f"{topic}-requests", 4, False),
    ]
    text = cli(*create).stdout
    assert text == (
        f"topic '{topic}': 4 partitions, cleanup.policy=compact; "
        f"requests topic '{topic}-requests'\n"
    )
    proc = cli(
        "doctor", "--kafka", kafka_bootstrap, "--topic", topic, "--group", group, check=False
    )
    assert proc.returncode == 0, proc.stdout
    out = proc.stdout
    assert f"OK       broker: {kafka_bootstrap} reachable in" in out
    assert f"OK       cleanup.policy: '{topic}' is compact" in out
    assert f"OK       partitions: '{topic}' has 4 partitions" in out
    assert f"OK       requests topic: '{topic}-requests' has 4 partitions" in out
    assert "min.insync.replicas" in out and "replication" in out
    assert f"WARN     group: '{group}' " in out  # no pod runs in this group (or ever joined)
    report = json.loads(
        cli(
            "doctor", "--kafka", kafka_bootstrap, "--topic", topic, "--group", group, "--json"
        ).stdout
    )
    assert report["ok"] is True
    assert {c["check"] for c in report["checks"]} >= {
        "broker",
        "cleanup.policy",
        "partitions",
        "replication",
        "min.insync.replicas",
        "requests topic",
        "group",
        "clock",
    }


@pytest.mark.parametrize("policy", ["delete", "compact,delete"])
def test_a_topic_that_is_not_only_compacted_is_a_problem_with_its_fix(
    kafka_bootstrap: str, policy: str
) -> None:
    topic = _name("doctor-bad")
    _create_with_policy(kafka_bootstrap, topic, policy)
    proc = cli("doctor", "--kafka", kafka_bootstrap, "--topic", topic, check=False)
    assert proc.returncode == 1, proc.stdout
    assert f"PROBLEM  cleanup.policy: '{topic}' has cleanup.policy={policy}:" in proc.stdout
    fix = (
        f"fix: kafka-configs.sh --bootstrap-server {kafka_bootstrap} --entity-type topics "
        f"--entity-name {topic} --alter --add-config cleanup.policy=compact"
    )
    assert fix in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("problems found: ")


def test_a_missing_topic_is_a_problem_and_nothing_is_created(kafka_bootstrap: str) -> None:
    topic = _name("doctor-missing")
    proc = cli("doctor", "--kafka", kafka_bootstrap, "--topic", topic, check=False)
    assert proc.returncode == 1
    assert f"PROBLEM  topic: '{topic}' does not exist" in proc.stdout
    assert f"schedulerx topic create --kafka {kafka_bootstrap} --topic {topic}" in proc.stdout
    again = cli("doctor", "--kafka", kafka_bootstrap, "--topic", topic, check=False)
    assert f"'{topic}' does not exist" in again.stdout  # doctor did not create it


def test_a_topic_a_pod_created_on_first_start_passes(kafka_bootstrap: str) -> None:
    from schedulerx.backends.kafka import KafkaLog

    topic = _name("doctor-first-start")
    KafkaLog(kafka_bootstrap, topic=topic, partitions=3).close()  # what `run` does on start
    proc = cli("doctor", "--kafka", kafka_bootstrap, "--topic", topic, check=False)
    assert proc.returncode == 0, proc.stdout
    assert "PROBLEM" not in proc.stdout


@pytest.mark.parametrize("how", ["flag", "env"])
def test_run_without_topic_creation_on_a_missing_topic_is_one_line_and_creates_nothing(
    kafka_bootstrap: str, how: str
) -> None:
    topic = _name("run-no-create")
    flags = ["--no-create-topic"] if how == "flag" else []
    env = {"SCHEDULERX_CREATE_TOPIC": "0"} if how == "env" else {}
    run = ["run", "examples/demo.py", "--kafka", kafka_bootstrap, "--topic", topic, *flags]
    proc = cli(*run, env=env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"'{topic}'" in lines[0] and "schedulerx topic create" in lines[0]
    doctor = cli("doctor", "--kafka", kafka_bootstrap, "--topic", topic, check=False)
    assert f"'{topic}' does not exist" in doctor.stdout
