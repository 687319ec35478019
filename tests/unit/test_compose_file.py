"""docker-compose.kafka.yml runs the broker the test suite runs: same version, same settings.

Users with Docker start that file; the suite starts ``schedulerx.testing.kafka_broker``. If
one changes without the other, users run a broker the tests never saw.
"""

from __future__ import annotations

import re
from pathlib import Path

from schedulerx.testing.kafka_broker import DEFAULT_KAFKA_VERSION, Node, _properties

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.kafka.yml"
WHERE_ONLY = {
    # Addresses, ids and paths differ by nature between a container and a test process.
    "node.id",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.voters",
    # Sized for running many test clusters on a 2-core CI machine, not for users.
    "num.network.threads",
    "num.io.threads",
}
UNORDERED = {"listener.security.protocol.map", "process.roles"}


def _compose() -> tuple[str, dict[str, str]]:
    text = COMPOSE.read_text()
    image = re.search(r"^\s*image:\s*(\S+)\s*$", text, re.M)
    assert image, "no image line"
    env = {
        m["key"].lower().replace("_", "."): m["value"].strip().strip('"')
        for m in re.finditer(r"^\s+KAFKA_(?P<key>[A-Z_]+):\s*(?P<value>.+?)\s*$", text, re.M)
    }
    return image[1], env


def _same(key: str, a: str, b: str) -> bool:
    if key in UNORDERED:
        return set(a.split(",")) == set(b.split(","))
    return a == b


def test_compose_runs_the_kafka_version_the_suite_tests() -> None:
    image, _ = _compose()
    assert image == f"apache/kafka:{DEFAULT_KAFKA_VERSION}"


def test_compose_sets_every_broker_setting_the_suite_uses_to_the_same_value() -> None:
    node = Node(1, 9092, 9093, Path("/nonexistent"))
    suite = {k: v for k, v in _properties(node, [node]).items() if k not in WHERE_ONLY}
    _, compose = _compose()
    missing = sorted(set(suite) - set(compose))
    assert missing == [], f"set in the test broker, not in {COMPOSE.name}"
    differ = {k: (compose[k], v) for k, v in suite.items() if not _same(k, compose[k], v)}
    assert differ == {}, "(compose, suite)"
    extra = sorted(set(compose) - set(suite) - WHERE_ONLY)
    assert extra == [], f"set in {COMPOSE.name}, not in the test broker"
