"""Operating a pod as an operator does: ``run --http`` endpoints, ``schedulerx doctor``.

Pods run as real processes (``schedulerx run`` of the ledger app) on real data dirs; the
endpoints are read over HTTP and the metrics parsed by prometheus_client's own parser.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.domain.partitioning import partition_for
from tests.support.http import fill_log, free_port, get, get_json, samples
from tests.support.procs import PodProcess, cli, jobs_json

SUCCEEDED = ("schedulerx_jobs_total", (("status", "succeeded"),))
LAG_COUNT = ("schedulerx_fire_lag_seconds_count", ())


def _wait_status(url: str, want: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = get(url, timeout=2)[0]
        except OSError:
            last = None
        if last == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered {want} (last: {last})")


@pytest.mark.slow
def test_metrics_health_and_api_of_a_running_pod(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"LEDGER": str(tmp_path / "ledger"), "COMMANDS": "2", "CRON": "*/1 * * * * *"}
    pod = PodProcess.start(tmp_path, "pod-a", ["--data-dir", str(data), "--http", str(port)], env)
    try:
        _wait_status(f"{base}/readyz", 200)
        assert get(f"{base}/healthz")[0] == 200
        time.sleep(2)
        status, body, headers = get(f"{base}/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        first = samples(body.decode())
        time.sleep(3)
        second = samples(get(f"{base}/metrics")[1].decode())
        assert second[LAG_COUNT] > first[LAG_COUNT] > 0
        assert second[SUCCEEDED] > first[SUCCEEDED] > 0
        assert second[("schedulerx_ready", ())] == 1
        assert second[("schedulerx_up", ())] == 1
        assert second[("schedulerx_owned_partitions", ())] == 12
        assert second[("schedulerx_partition_assignments_total", ())] == 1
        assert second[("schedulerx_projection_lag_records", ())] == 0
        assert second[("schedulerx_pod_info", (("pod_id", "pod-a"),))] == 1
        assert ("schedulerx_fire_lag_seconds_bucket", (("le", "0.001"),)) in second
        assert ("schedulerx_missed_jobs_total", (("reason", "late"),)) in second
        # /api/jobs has the shape of `schedulerx jobs --json`: the succeeded jobs the CLI
        # lists (taken first) are in the API's answer, field for field.
        flags = ("--data-dir", str(data), "--command", "c0", "--status", "succeeded")
        from_cli = jobs_json(*flags)
        from_api = get_json(f"{base}/api/jobs?command=c0&status=succeeded")
        assert isinstance(from_api, list) and from_cli
        assert [j for j in from_api if j in from_cli] == from_cli
        assert all(j["command_id"] == "c0" and j["status"] == "succeeded" for j in from_api)
        limited = get_json(f"{base}/api/jobs?limit=3")
        assert isinstance(limited, list) and len(limited) == 3
        schedules = get_json(f"{base}/api/schedules")
        assert isinstance(schedules, list)
        assert [s["command_id"] for s in schedules] == ["c0", "c1"]
        assert schedules[0]["partition"] == partition_for("c0", 12)
        pods = get_json(f"{base}/api/pods")
        assert pods == [
            {
                "pod_id": "pod-a",
                "partitions": list(range(12)),
                "ready": True,
                "live": True,
                "seen": "this pod",
            }
        ]
        # Bad input is a 400 with a one-line reason, never evaluated.
        for query, needle in (
            ("status=bogus", "status must be one of"),
            ("limit=-1", "limit must be"),
            ("limit=1e9", "limit must be"),
            ("evil=1", "unknown query parameter"),
        ):
            code, body, _ = get(f"{base}/api/jobs?{query}")
            assert code == 400 and needle in json.loads(body)["error"]
        assert get(f"{base}/nope")[0] == 404
        page_status, page, page_headers = get(f"{base}/")
        assert page_status == 200 and b"<title>schedulerx</title>" in page
        assert "script-src 'sha256-" in page_headers["Content-Security-Policy"]
        # doctor sees the running pod holding the lock.
        doctor = cli("doctor", "--data-dir", str(data), check=False)
        assert doctor.returncode == 0, doctor.stdout
        assert "held by pod 'pod-a'" in doctor.stdout
        assert pod.stop() == 0, pod.tail()
    finally:
        if pod.proc.poll() is None:
            pod.kill()


@pytest.mark.slow
def test_readiness_flips_only_after_catch_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill_log(data, 50_000)  # 100k records the pod must project before it is ready
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"LEDGER": str(tmp_path / "ledger"), "COMMANDS": "1"}
    pod = PodProcess.start(tmp_path, "pod-a", ["--data-dir", str(data), "--http", str(port)], env)
    try:
        seen: list[tuple[int, int]] = []
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                ready = get(f"{base}/readyz", timeout=2)[0]
                live = get(f"{base}/healthz", timeout=2)[0]
            except OSError:
                time.sleep(0.02)
                continue  # not listening yet
            if not seen or seen[-1] != (ready, live):
                seen.append((ready, live))
            if ready == 200:
                break
            time.sleep(0.02)
        assert seen and seen[0][0] == 503, seen
        assert seen[-1] == (200, 200), f"never ready: {seen}\n{pod.tail()}"
        # Readiness went 503 -> 200 once, never back; while it caught up, the loop ran
        # (live) but the pod was not ready.
        flips = [r for i, (r, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != r]
        assert flips == [503, 200], seen
        assert (503, 200) in seen, seen
        metrics = samples(get(f"{base}/metrics")[1].decode())
        assert metrics[("schedulerx_ready", ())] == 1
        assert pod.stop() == 0, pod.tail()
    finally:
        if pod.proc.poll() is None:
            pod.kill()


def test_run_http_rejects_a_bad_address_in_one_line(tmp_path: Path) -> None:
    proc = cli(
        "run",
        "tests/apps/ledger_app.py:make_scheduler",
        "--data-dir",
        str(tmp_path / "data"),
        "--http",
        ":9100",
        env={"LEDGER": str(tmp_path / "ledger")},
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "give PORT (loopback) or HOST:PORT" in lines[0]


def test_doctor_embedded_reports_problems_and_exit_codes(tmp_path: Path) -> None:
    missing = cli("doctor", "--data-dir", str(tmp_path / "nothing"), check=False)
    assert missing.returncode == 1
    assert "PROBLEM  data dir:" in missing.stdout
    assert not (tmp_path / "nothing").exists()  # doctor creates nothing

    data = tmp_path / "data"
    cli("schedule", "set", "a", "*/5 * * * *", "--data-dir", str(data))
    healthy = cli("doctor", "--data-dir", str(data), "--json", check=False)
    assert healthy.returncode == 0
    report = json.loads(healthy.stdout)
    levels = {c["check"]: c["level"] for c in report["checks"]}
    assert report["ok"] is True
    assert levels["log"] == levels["corrupt records"] == levels["projection"] == "OK"
    assert levels["lock"] == "WARN"  # no pod is running

    # A poison record and a corrupt (CRC-failing) record are each found and named.
    log = EmbeddedLog(data)
    session = log.join("test")
    p = partition_for("a", log.partitions)
    try:
        for value in (b"\x00poison", b"\x00to-corrupt", b"\x00poison-too"):
            session.append(p, [(b"job/a@x", value)])
    finally:
        session.close()
        log.close()
    path = data / "log" / f"{p:05d}.log"
    raw = bytearray(path.read_bytes())
    raw[raw.find(b"to-corrupt")] ^= 0xFF  # the middle record's CRC no longer matches
    path.write_bytes(bytes(raw))
    damaged = cli("doctor", "--data-dir", str(data), check=False)
    assert damaged.returncode == 0, damaged.stdout  # warnings, not problems
    assert "WARN     corrupt records: 1 record(s)" in damaged.stdout
    assert "WARN     poison records: 2 record(s)" in damaged.stdout
    cli("compact", "--data-dir", str(data))  # the fix doctor names
    fixed = cli("doctor", "--data-dir", str(data), check=False)
    assert "OK       corrupt records: none" in fixed.stdout, fixed.stdout

    usage = cli("doctor", "--no-such-flag", check=False)
    assert usage.returncode == 2
