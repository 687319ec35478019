"""Pod configuration: one frozen value, built at the edge (CLI, Scheduler arguments)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta


def default_pod_id() -> str:
    """``<hostname>-<pid>``: unique per process on a machine."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class PodConfig:
    """How a pod runs."""

    pod_id: str = field(default_factory=default_pod_id)
    workers: int = 8
    """Executor threads: at most this many jobs run at once on the pod."""
    refresh_interval: timedelta = timedelta(seconds=10)
    """How often schedules are fetched again from the fetcher."""
    claim_lead: timedelta = timedelta(milliseconds=500)
    """Claims are committed this long before the due time so the start is a local timer."""
    stop_grace: timedelta = timedelta(seconds=30)
    """On stop, running jobs get this long to finish before they are recorded as failed."""
    poll_interval: timedelta = timedelta(milliseconds=50)
    """Longest the loop sleeps between looks at outcomes, requests and the log."""
    retention_sweep: timedelta = timedelta(seconds=30)
    """How often finished jobs beyond each command's ``history_limit`` get tombstones."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.refresh_interval <= timedelta(0):
            raise ValueError("refresh_interval must be > 0")
        if self.claim_lead < timedelta(0):
            raise ValueError("claim_lead must be >= 0")
