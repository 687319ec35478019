"""Session fixtures: a real Kafka broker (started on demand), per-test data dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real single-node KRaft broker for the session (or ``SCHEDULERX_TEST_KAFKA``)."""
    existing = os.environ.get("SCHEDULERX_TEST_KAFKA")
    if existing:
        yield existing
        return
    from schedulerx.testing.kafka_broker import KafkaBroker

    with KafkaBroker.start(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty embedded data dir."""
    d = tmp_path / "data"
    d.mkdir()
    return d
