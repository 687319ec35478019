"""A fleet of pods (real OS processes) on one Kafka topic, and the evidence the tests judge by.

The evidence is the ledger the commands write themselves (``tests/apps/ledger_app.py``: job id,
pod, wall-clock start per run) and the job list another process reads from the topic
(``schedulerx jobs --kafka ... --json`` from a fresh data dir). A pod's own log is only used to
know *when* it has joined and where it serves HTTP, never to decide whether a guarantee held.
What a pod serves (``/api/jobs``, ``/metrics``; pods started with ``http=True``) is its
opinion: tests compare it with the evidence, they do not judge by it alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import TracebackType

from tests.support.procs import PodProcess, Run, cli, jobs_json, read_runs

SESSION_TIMEOUT_S = 6.0
"""The pods' group session timeout (``SCHEDULERX_SESSION_TIMEOUT_MS``)."""
JOINED = "owns partitions"
"""What a pod logs once it has fenced and caught up partitions it was assigned."""
TERMINAL = ("succeeded", "failed", "canceled", "missed")
SERVING = re.compile(r"serving metrics, health and the dashboard on (http://\S+/)")
"""What a pod started with ``--http`` logs once it serves (the URL: port 0 picks a free one)."""

Job = dict[str, object]


def second_of(job_id: str) -> datetime:
    """The scheduled second inside a job id (``c3@2026-12-04T10:15:00Z``)."""
    stamp = job_id.rsplit("@", 1)[1]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def job_id(command_id: str, second: datetime) -> str:
    """The deterministic id of ``command_id``'s job at ``second``."""
    return f"{command_id}@{second:%Y-%m-%dT%H:%M:%SZ}"


def utc(ts: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def whole_seconds(start: float, end: float) -> list[datetime]:
    """Every whole second ``t`` with ``start <= t <= end`` (Unix times), as UTC datetimes."""
    first = utc(start).replace(microsecond=0)
    if first.timestamp() < start:
        first += timedelta(seconds=1)
    out = []
    t = first
    while t.timestamp() <= end:
        out.append(t)
        t += timedelta(seconds=1)
    return out


def by_command(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs grouped by command, each list in ledger order."""
    out: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        out[r.command_id].append(r)
    return out


def longest_gap(seconds: Iterable[datetime]) -> float:
    """The longest distance in seconds between consecutive scheduled seconds that ran."""
    ordered = sorted(set(seconds))
    gaps = [(b - a).total_seconds() for a, b in pairwise(ordered)]
    return max(gaps, default=0.0)


def wait_until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.2) -> float:
    """Poll ``check`` until it is true; returns the time it became true (AssertionError after
    ``timeout`` seconds, naming ``what``)."""
    end = time.monotonic() + timeout
    while True:
        if check():
            return time.time()
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class Fleet:
    """Pods of the ledger app in one consumer group on a topic of their own.

    A context manager: on exit every pod still alive is continued (if stopped) and killed, so
    no test leaves a process behind whatever happened.
    """

    def __init__(
        self,
        workdir: Path,
        bootstrap: str,
        *,
        commands: int = 30,
        partitions: int = 12,
        replication: int = 1,
        env: Mapping[str, str] | None = None,
        create_topic: bool = True,
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.bootstrap = bootstrap
        self.topic = f"t-{tag}"
        self.group = f"g-{tag}"
        self.commands = [f"c{i}" for i in range(commands)]
        self.ledger = workdir / "ledger"
        self.env = {
            "LEDGER": str(self.ledger),
            "COMMANDS": str(commands),
            "SCHEDULERX_SESSION_TIMEOUT_MS": str(int(SESSION_TIMEOUT_S * 1000)),
            **(env or {}),
        }
        self.pods: dict[str, PodProcess] = {}
        self._urls: dict[str, str] = {}
        self._reads = 0
        if create_topic:
            self.cli(
                "topic",
                "create",
                "--partitions",
                str(partitions),
                "--replication-factor",
                str(replication),
            )

    # -- processes -------------------------------------------------------------------------

    def connection(self, bootstrap: str | None = None) -> list[str]:
        """The connection flags of this fleet's topic and group."""
        return [
            "--kafka",
            bootstrap or self.bootstrap,
            "--topic",
            self.topic,
            "--group",
            self.group,
        ]

    def cli(
        self, *args: str, bootstrap: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``schedulerx ARGS`` with this fleet's connection flags appended."""
        return cli(*args, *self.connection(bootstrap), check=check)

    def start(
        self, *pod_ids: str, env: Mapping[str, str] | None = None, http: bool = False
    ) -> list[PodProcess]:
        """Start pods (each with a data dir of its own for its local projection); with
        ``http`` each serves its API on a free loopback port (:meth:`url`)."""
        started = []
        for pod_id in pod_ids:
            flags = [*self.connection(), "--data-dir", str(self.data_dir(pod_id))]
            if http:
                flags += ["--http", "127.0.0.1:0"]
            self._urls.pop(pod_id, None)
            pod = PodProcess.start(self.workdir, pod_id, flags, {**self.env, **(env or {})})
            self.pods[pod_id] = pod
            started.append(pod)
        return started

    def data_dir(self, pod_id: str) -> Path:
        """The ``--data-dir`` of pod ``pod_id``."""
        return self.workdir / f"data-{pod_id}"

    def wait_joined(self, pods: Iterable[PodProcess] | None = None, timeout: float = 90) -> float:
        """Wait until each pod has logged that it owns partitions; returns when the last did."""
        for pod in pods if pods is not None else self.pods.values():
            pod.wait_for_log(JOINED, timeout)
        return time.time()

    def url(self, pod_id: str, timeout: float = 30) -> str:
        """``http://127.0.0.1:PORT/`` of a pod started with ``http=True`` (from its log)."""
        if pod_id not in self._urls:
            pod = self.pods[pod_id]
            end = time.monotonic() + timeout
            while not (found := SERVING.search(pod.log_path.read_text(errors="replace"))):
                if time.monotonic() > end or pod.proc.poll() is not None:
                    raise AssertionError(f"pod {pod_id} never served HTTP:\n{pod.tail()}")
                time.sleep(0.05)
            self._urls[pod_id] = found.group(1)
        return self._urls[pod_id]

    def get(self, pod_id: str, path: str) -> bytes:
        """The body of ``GET path`` on a pod's HTTP server (AssertionError unless 200)."""
        with urllib.request.urlopen(self.url(pod_id) + path.lstrip("/"), timeout=15) as resp:
            assert resp.status == 200, (pod_id, path, resp.status)
            body: bytes = resp.read()
            return body

    def pod_jobs(self, pod_id: str, query: str = "") -> dict[str, Job]:
        """The job list a running pod serves (``/api/jobs``), by id: its own projection."""
        listed = json.loads(self.get(pod_id, "api/jobs" + (f"?{query}" if query else "")))
        return {str(j["id"]): j for j in listed}

    def metric(self, pod_id: str, name: str, labels: str = "") -> float:
        """One sample of a pod's ``/metrics`` (``labels`` as written there, e.g.
        ``reason="misrouted"``); AssertionError when the pod does not export it."""
        sample = f"{name}{{{labels}}}" if labels else name
        for line in self.get(pod_id, "metrics").decode().splitlines():
            head, _, value = line.rpartition(" ")
            if head == sample:
                return float(value)
        raise AssertionError(f"pod {pod_id} exports no {sample}")

    def tails(self) -> str:
        """The end of every pod's log (for assertion messages)."""
        return "\n".join(f"--- {p.pod_id}:\n{p.tail(15)}" for p in self.pods.values())

    def alive(self) -> list[PodProcess]:
        """Pods whose process has not exited."""
        return [p for p in self.pods.values() if p.proc.poll() is None]

    def stop_all(self, timeout: float = 40) -> dict[str, int]:
        """SIGTERM every live pod at once (so none takes over from another), wait for all."""
        live = self.alive()
        for pod in live:
            pod.signal(signal.SIGTERM)
        return {pod.pod_id: self.wait_exit(pod, timeout) for pod in live}

    def wait_exit(self, pod: PodProcess, timeout: float = 40) -> int:
        """Wait for a signalled pod to exit (a second SIGTERM would not be graceful)."""
        try:
            return pod.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pod.kill()
            raise AssertionError(f"pod {pod.pod_id} did not stop:\n{pod.tail()}") from None

    def close(self) -> None:
        """Continue and kill every pod still alive."""
        for pod in self.alive():
            try:
                os.kill(pod.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                continue
            pod.kill()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- evidence --------------------------------------------------------------------------

    def runs(self) -> list[Run]:
        """The ledger so far."""
        return read_runs(self.ledger)

    def jobs(self, bootstrap: str | None = None) -> dict[str, Job]:
        """The job list by id, as a separate process sees it from a fresh data dir."""
        self._reads += 1
        fresh = self.workdir / f"reader-{self._reads}"
        listed = jobs_json(*self.connection(bootstrap), "--data-dir", str(fresh))
        return {str(j["id"]): j for j in listed}

    def settle(self, bootstrap: str | None = None, timeout: float = 30) -> float:
        """Wait until no job due more than 3 s ago is still claimed or running (what a lost
        owner left is recorded one hand-over lease after the takeover, ADR 0008)."""

        def settled() -> bool:
            cutoff = time.time() - 3
            return not [
                jid
                for jid, j in self.jobs(bootstrap).items()
                if j["status"] in ("claimed", "running") and second_of(jid).timestamp() < cutoff
            ]

        return wait_until("what the lost owner left to be recorded", settled, timeout, every=1)

    def commands_of(self, pod_id: str, since: float) -> set[str]:
        """Commands ``pod_id`` ran since ``since`` (by the ledger)."""
        return {r.command_id for r in self.runs() if r.pod == pod_id and r.at >= since}

    def first_run_after(
        self, commands: set[str], after: float, not_by: str | None = None
    ) -> Run | None:
        """The earliest ledger run of one of ``commands`` started after ``after``."""
        found = [
            r for r in self.runs() if r.command_id in commands and r.at > after and r.pod != not_by
        ]
        return min(found, key=lambda r: r.at, default=None)

    def resumed(self, commands: Iterable[str], after: float, not_by: str | None = None) -> bool:
        """True once every one of ``commands`` has a run started after ``after``."""
        wanted = set(commands)
        seen = {r.command_id for r in self.runs() if r.at > after and r.pod != not_by}
        return wanted <= seen


def unaccounted(
    jobs: Mapping[str, Job], runs: Iterable[Run], command_id: str, seconds: Iterable[datetime]
) -> list[str]:
    """Seconds of ``command_id`` in ``seconds`` that are neither in the ledger nor a job the
    list records as finished for a stated reason: the silent misses (empty when none).

    Accounted for: a ledger run (it ran, maybe late), or a job that ended ``missed`` or
    ``canceled`` with a reason, or ``failed`` with "owner lost" (its pod died after the claim).
    """
    ran = {r.job_id for r in runs}
    out = []
    for t in seconds:
        jid = job_id(command_id, t)
        if jid in ran:
            continue
        job = jobs.get(jid)
        status = job.get("status") if job else None
        error = str(job.get("error") or "") if job else ""
        if status in ("missed", "canceled") and error:
            continue
        if status == "failed" and "owner lost" in error:
            continue
        out.append(f"{jid}: {status or 'absent'} {error!r}")
    return out
