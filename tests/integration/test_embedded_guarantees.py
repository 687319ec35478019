"""The guarantees on the embedded log, with a real clock, a real pod process and a ledger.

Judged by the ledger the commands wrote themselves (job id, pod per run) and by what
``schedulerx jobs --json`` (another process) reports.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.procs import PodProcess, duplicates, jobs_json, read_ledger

pytestmark = pytest.mark.slow


def _second(job_id: str) -> datetime:
    stamp = job_id.rsplit("@", 1)[1]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _by_command(job_ids: list[str]) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = defaultdict(list)
    for jid in job_ids:
        out[jid.rsplit("@", 1)[0]].append(_second(jid))
    return out


def test_three_commands_every_second_for_20s_run_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = tmp_path / "ledger"
    env = {"LEDGER": str(ledger), "COMMANDS": "3"}
    pod = PodProcess.start(tmp_path, "pod-a", ["--data-dir", str(data)], env)
    try:
        pod.wait_for_log("owns partitions")
        started = datetime.now(UTC)
        time.sleep(20)
        stopped = datetime.now(UTC)
        assert pod.stop() == 0, pod.tail()
    finally:
        if pod.proc.poll() is None:
            pod.kill()
    entries = read_ledger(ledger)
    assert duplicates(entries) == {}
    runs = _by_command([jid for jid, _ in entries])
    assert sorted(runs) == ["c0", "c1", "c2"]
    # Every whole second strictly inside the window ran once per command: no gaps.
    first = started.replace(microsecond=0) + timedelta(seconds=2)
    last = stopped.replace(microsecond=0) - timedelta(seconds=1)
    expected = [first + timedelta(seconds=i) for i in range(int((last - first).total_seconds()))]
    assert len(expected) >= 16
    for cid, seconds in runs.items():
        missing = sorted(set(expected) - set(seconds))
        assert missing == [], f"{cid} has gaps: {missing}"

    listed = jobs_json("--data-dir", str(data))
    status = {j["id"]: j["status"] for j in listed}
    for jid, _ in entries:
        assert status.get(jid) == "succeeded", (jid, status.get(jid))
    succeeded = {j["id"] for j in listed if j["status"] == "succeeded"}
    assert succeeded == {jid for jid, _ in entries}, "a succeeded job the ledger never saw"
    for cid in ("c0", "c1", "c2"):
        nxt = [j for j in listed if j["command_id"] == cid and j["status"] == "scheduled"]
        assert len(nxt) == 2, (cid, nxt)
        assert all(_second(str(j["id"])) > stopped - timedelta(seconds=1) for j in nxt)
    assert not [j for j in listed if j["status"] in ("claimed", "running")]


def test_kill_9_mid_run_then_restart_reports_not_repeats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = tmp_path / "ledger"
    # Each run takes 0.6 s, so a kill at a random moment often hits a running job.
    env = {"LEDGER": str(ledger), "COMMANDS": "2", "SLEEP": "0.6", "MISFIRE_GRACE": "2"}
    flags = ["--data-dir", str(data)]
    pod = PodProcess.start(tmp_path, "pod-a", flags, env)
    pod.wait_for_log("owns partitions")
    time.sleep(4.3)  # mid-run: runs start on the second and last 0.6 s
    pod.kill()
    killed = datetime.now(UTC)
    time.sleep(5)  # seconds missed while down, beyond the 2 s grace
    again = PodProcess.start(tmp_path, "pod-a2", flags, env)
    try:
        again.wait_for_log("owns partitions")
        time.sleep(4)
        assert again.stop() == 0, again.tail()
    finally:
        if again.proc.poll() is None:
            again.kill()

    entries = read_ledger(ledger)
    assert duplicates(entries) == {}, "a job ran twice"
    listed = {str(j["id"]): j for j in jobs_json("--data-dir", str(data))}
    # Every run the ledger saw is on record, none still open.
    for jid, pod_id in entries:
        job = listed[jid]
        assert job["status"] in ("succeeded", "failed"), job
        if job["status"] == "failed":
            assert pod_id == "pod-a" and "owner lost" in str(job["error"]), job
    lost = [j for j in listed.values() if "owner lost" in str(j.get("error"))]
    assert lost, "the job running at kill -9 must end failed: owner lost"
    # No silent miss: every second from the first run to the restart's last has a terminal
    # job (run, failed, or missed with its reason) for each command.
    for cid in ("c0", "c1"):
        mine = {str(j["id"]): j for j in listed.values() if j["command_id"] == cid}
        ran = sorted(_second(jid) for jid, _ in entries if jid.startswith(cid + "@"))
        t = ran[0]
        while t <= ran[-1]:
            jid = f"{cid}@{t:%Y-%m-%dT%H:%M:%SZ}"
            assert jid in mine, f"{jid} silently absent"
            job = mine[jid]
            assert job["status"] in ("succeeded", "failed", "missed"), job
            if job["status"] == "missed":
                assert job["error"], job
            t += timedelta(seconds=1)
        missed = [j for j in mine.values() if j["status"] == "missed"]
        assert any(_second(str(j["id"])) > killed for j in missed), "down-time not recorded"
