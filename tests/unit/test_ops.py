"""The operations layer in one process: addresses, counters, the collector, the HTTP server.

Real objects throughout: a real (unstarted) Pod on an embedded log in tmp_path, a real HTTP
server on a loopback port, metrics parsed by prometheus_client's own parser.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from projections import ProjectionStore
from schedulerx.api.fetchers import StaticScheduleFetcher
from schedulerx.api.wiring import BackendConfig
from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.domain.job import Job, JobStatus, job_id
from schedulerx.domain.planner import CommandView, plan
from schedulerx.domain.schedule import Policy
from schedulerx.engine.pod import Pod
from schedulerx.engine.stats import MISS_CLASSES, PodStats, miss_class
from schedulerx.ops import OpsServer, PodMetrics, parse_address
from schedulerx.ops.http import AddressError
from schedulerx.ops.sources import LogViewSource, owners_seen
from tests.support.http import fill_log, get, samples

T0 = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("9100", ("127.0.0.1", 9100)),
        ("0", ("127.0.0.1", 0)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:9100", ("::1", 9100)),
    ],
)
def test_parse_address_defaults_to_loopback(text: str, want: tuple[str, int]) -> None:
    assert parse_address(text) == want


@pytest.mark.parametrize("text", [":9100", "host", "host:port", "1.2.3.4:70000", "[::1]", ""])
def test_parse_address_rejects_what_it_cannot_read(text: str) -> None:
    with pytest.raises(AddressError) as err:
        parse_address(text)
    assert "\n" not in str(err.value)


def _misses(view: CommandView, now: datetime) -> list[str | None]:
    return [j.error for j in plan(view, now, timedelta(0), lambda _: None).changes if j.error]


def _view(registered: bool, jobs: tuple[Job, ...], coalesce: bool = True) -> CommandView:
    return CommandView(
        command_id="c",
        cron="0 * * * * *",
        params=(),
        timezone="UTC",
        paused=False,
        registered=registered,
        policy=Policy(misfire_grace=timedelta(seconds=90), coalesce=coalesce),
        open_jobs=jobs,
    )


def _due(minutes_ago: int) -> Job:
    at = T0.replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    return Job(id=job_id("c", at), command_id="c", scheduled_at=at, status=JobStatus.SCHEDULED)


def test_miss_class_reads_the_reasons_the_planner_writes() -> None:
    late = _misses(_view(True, (_due(5),)), T0)
    assert late and all(miss_class(r) == "late" for r in late)
    unregistered = _misses(_view(False, (_due(5),)), T0)
    assert unregistered and all(miss_class(r) == "unregistered" for r in unregistered)
    coalesced = _misses(_view(True, (_due(1), _due(0))), T0)
    assert coalesced and all(miss_class(r) == "coalesced" for r in coalesced)
    assert miss_class("overlap: previous run c@x still running") == "overlap"
    assert miss_class(None) == miss_class("something new") == "other"
    assert set(MISS_CLASSES) == {"late", "coalesced", "overlap", "unregistered", "other"}


def test_pod_stats_counts_jobs_by_status_and_miss_class_and_feeds_observers() -> None:
    stats = PodStats()
    seen: list[float] = []
    stats.observe_lag(seen.append)
    stats.job("succeeded")
    stats.job("missed", "coalesced into c@1")
    stats.job("missed", "late by 3.000s (misfire_grace 1.000s)")
    stats.lag(0.004)
    counts = stats.snapshot()
    assert counts["jobs_succeeded"] == 1 and counts["jobs_missed"] == 2
    assert counts["missed_coalesced"] == counts["missed_late"] == 1
    assert seen == [0.004] and stats.fire_lag_s == [0.004]


def _pod(tmp_path: Path) -> Pod:
    log = EmbeddedLog(tmp_path / "data")
    return Pod(
        log,
        lambda: ProjectionStore(tmp_path / "data" / "projection", log.partitions),
        {},
        StaticScheduleFetcher({}),
    )


def test_pod_metrics_read_pod_stats_at_scrape_time(tmp_path: Path) -> None:
    pod = _pod(tmp_path)
    metrics = PodMetrics(pod, process_metrics=False)
    before = samples(metrics.render().decode())
    assert before[("schedulerx_up", ())] == 0 and before[("schedulerx_ready", ())] == 0
    assert before[("schedulerx_owned_partitions", ())] == 0
    for status in ("succeeded", "failed", "missed", "canceled"):
        assert before[("schedulerx_jobs_total", (("status", status),))] == 0
    pod.stats.job("failed", "boom")
    pod.stats.job("missed", "overlap: previous run c@x still running")
    pod.stats.add("requests_rejected")
    pod.stats.add("requests_schedule.rejected", 2)
    pod.stats.add("partition_revocations")
    pod.stats.lag(0.0015)
    pod.stats.lag(3.0)
    after = samples(metrics.render().decode())
    assert after[("schedulerx_jobs_total", (("status", "failed"),))] == 1
    assert after[("schedulerx_missed_jobs_total", (("reason", "overlap"),))] == 1
    assert after[("schedulerx_requests_rejected_total", (("reason", "malformed"),))] == 1
    assert after[("schedulerx_requests_rejected_total", (("reason", "invalid"),))] == 2
    assert after[("schedulerx_partition_revocations_total", ())] == 1
    assert after[("schedulerx_fire_lag_seconds_count", ())] == 2
    assert after[("schedulerx_fire_lag_seconds_bucket", (("le", "0.001"),))] == 0
    assert after[("schedulerx_fire_lag_seconds_bucket", (("le", "0.0025"),))] == 1
    assert after[("schedulerx_fire_lag_seconds_bucket", (("le", "5.0"),))] == 2
    metrics.close()
    pod.log.close()


def test_owners_seen_gives_each_partition_to_its_latest_owner() -> None:
    def ran(cid: str, minute: int, owner: str) -> Job:
        at = T0 + timedelta(minutes=minute)
        return Job(
            id=job_id(cid, at),
            command_id=cid,
            scheduled_at=at,
            status=JobStatus.SUCCEEDED,
            owner=owner,
            started_at=at,
            finished_at=at,
        )

    scheduled = Job(id="z@1", command_id="z", scheduled_at=T0, status=JobStatus.SCHEDULED)
    pods = owners_seen([ran("a", 0, "pod-1"), ran("a", 5, "pod-2"), scheduled], partitions=1)
    assert [(p["pod_id"], p["partitions"]) for p in pods] == [("pod-2", [0])]


def test_dashboard_server_serves_the_log_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill_log(data, 3, command_id="bulk")
    source = LogViewSource(BackendConfig(data_dir=data), refresh_s=0)  # every request
    server = OpsServer(("127.0.0.1", 0), source)
    base = server.url
    try:
        assert base.startswith("http://127.0.0.1:")
        status, body, _ = get(base + "api/jobs?command=bulk&limit=2")
        jobs = json.loads(body)
        assert status == 200 and [j["status"] for j in jobs] == ["canceled", "canceled"]
        assert jobs[-1]["id"] == "bulk@2020-01-01T00:00:02Z"  # the newest 2
        assert json.loads(get(base + "api/status")[1])["kind"] == "dashboard"
        assert get(base + "metrics")[0] == 404
        assert get(base + "healthz")[0] == get(base + "readyz")[0] == 200
        fill_log(data, 5, command_id="more")  # written while the dashboard runs
        assert len(json.loads(get(base + "api/jobs?command=more")[1])) == 5
        head = urllib.request.Request(base + "api/jobs", method="HEAD")
        with urllib.request.urlopen(head, timeout=5) as r:
            assert r.status == 200 and r.read() == b""
        post = urllib.request.Request(base + "api/jobs", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(post, timeout=5)
        with err.value:
            assert err.value.code == 405
    finally:
        server.close()
        source.close()
    assert not (data / "LOCK").read_bytes()  # never took the data-dir lock


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    source = LogViewSource(BackendConfig(data_dir=_filled(tmp_path)))
    first = OpsServer(("127.0.0.1", 0), source)
    try:
        with pytest.raises(OSError, match=r"^cannot serve HTTP on 127\.0\.0\.1:\d+: ") as err:
            OpsServer(first.address, source)
        assert "\n" not in str(err.value)
    finally:
        first.close()
        source.close()


def _filled(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    fill_log(data, 1)
    return data
