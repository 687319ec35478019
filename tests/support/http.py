"""HTTP helpers for tests of the ops endpoints: free ports, GETs, Prometheus samples, a big log."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.domain.events import JobChanged, encode, key_of, new_event_id
from schedulerx.domain.job import Job, JobStatus, job_id
from schedulerx.domain.partitioning import partition_for


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, timeout: float = 5) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of GET ``url``; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers.items())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read(), dict(e.headers.items())


def get_json(url: str) -> object:
    """GET ``url`` and parse its JSON body (which must come with a 200)."""
    status, body, _ = get(url)
    assert status == 200, f"GET {url}: {status} {body[:200]!r}"
    return json.loads(body)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted labels): value}, parsed by prometheus_client."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def fill_log(data_dir: Path, jobs: int, command_id: str = "bulk") -> int:
    """Append ``jobs`` finished (scheduled -> canceled) jobs of an unscheduled command straight
    to an embedded log: 2 records per job, none of which a pod must act on. Returns records."""
    log = EmbeddedLog(data_dir)
    session = log.join("filler")
    try:
        p = partition_for(command_id, log.partitions)
        t0 = datetime(2020, 1, 1, tzinfo=UTC)
        now = datetime.now(UTC)
        batch: list[tuple[bytes, bytes | None]] = []
        for i in range(jobs):
            at = t0 + timedelta(seconds=i)
            job = Job(
                id=job_id(command_id, at),
                command_id=command_id,
                scheduled_at=at,
                status=JobStatus.SCHEDULED,
            )
            for state in (job, job.to(JobStatus.CANCELED, error="bulk", finished_at=at)):
                event = JobChanged(event_id=new_event_id(), pod="filler", ts=now, job=state)
                batch.append((key_of(event), encode(event)))
            if len(batch) >= 5000:
                session.append(p, batch)
                batch = []
        if batch:
            session.append(p, batch)
    finally:
        session.close()
        log.close()
    return 2 * jobs
