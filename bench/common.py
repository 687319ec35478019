"""What every benchmark row shares: the run context, one Kafka broker, pods as processes,
percentiles and the ledger.

- ``Context``: one benchmark run (quick or full): a temp work dir, the one broker of the run
  (started on first use, stopped by ``close``), every process a row started (stopped by pid in
  ``close``, whatever happened) and the ledger verdicts of every row.
- ``Proc`` (``Context.pod`` / ``Context.aps``): a schedulerx pod (``schedulerx run
  bench.app:make_scheduler``) or the APScheduler app (``python -m bench.aps_app``) as an OS
  process, with its CPU and RSS. Starting whole systems and measuring them: ``bench.systems``.
- ``read_ledger`` / ``Context.check_ledger``: the ledger the commands write themselves is the
  evidence; every row that runs commands checks it for duplicate job ids and reports the count.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
POD_APP = "bench.app:make_scheduler"
JOINED = "owns partitions"
"""What a pod logs once it fenced and caught up partitions it was assigned."""

Row = dict[str, Any]
"""One row's result: ``title``, ``tables`` (name -> list of dicts), ``targets``, ``notes``,
``ledger`` and ``raw`` (all JSON-able)."""


# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linear between closest ranks; NaN if
    empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """n, p50, p99, p99.9, max and mean of ``seconds``, the times in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "p99.9": percentile(ms, 99.9),
        "max": ms[-1] if ms else math.nan,
        "mean": sum(ms) / len(ms) if ms else math.nan,
    }


def ratio(a: float, b: float) -> float:
    """``a / b`` (NaN when either is missing or ``b`` is 0)."""
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return a / b


# -- the ledger ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """One ledger line: ``job_id`` started by ``pod`` at ``at`` (Unix s), ``lag`` s late."""

    job_id: str
    pod: str
    at: float
    lag: float

    @property
    def command_id(self) -> str:
        """The command id (the job id before its last ``@``)."""
        return self.job_id.rsplit("@", 1)[0]

    @property
    def scheduled(self) -> float:
        """The scheduled time (Unix s): start minus lag."""
        return self.at - self.lag


def read_ledger(path: Path) -> list[Run]:
    """Every whole ledger line of ``path`` (a torn last line is ignored)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 4:
            out.append(Run(parts[0], parts[1], float(parts[2]), float(parts[3])))
    return out


def duplicates(runs: Iterable[Run]) -> dict[str, int]:
    """Job ids started more than once, with their counts."""
    counts = Counter(r.job_id for r in runs)
    return {k: v for k, v in counts.items() if v > 1}


# -- processes -----------------------------------------------------------------------------


class Proc:
    """A benchmark child process with its log file, CPU time and resident memory."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                cwd=ROOT,
            )
        self.ps = psutil.Process(self.proc.pid)
        self.kafka: Kafka | None = None
        """The topic of a Kafka pod."""
        self.data_dir: Path | None = None
        """A pod's ``--data-dir``."""
        self._scan = 0
        self._keys: list[str] = []
        self._counts: Counter[str] = Counter()

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """True until the process exited."""
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far (threads included)."""
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def rss_mb(self) -> float:
        """Resident memory in MiB."""
        return float(self.ps.memory_info().rss) / 2**20

    def count(self, text: str) -> int:
        """How many log lines so far contain ``text`` (the log is scanned incrementally; a
        new ``text`` rescans it from the start)."""
        if text not in self._keys:
            self._keys.append(text)
            self._scan, self._counts = 0, Counter()
        with open(self.log_path, "rb") as f:
            f.seek(self._scan)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].decode(errors="replace").splitlines():
            for key in self._keys:
                if key in line:
                    self._counts[key] += 1
        self._scan += end
        return self._counts[text]

    def wait_log(self, text: str, times: int = 1, timeout: float = 120) -> float:
        """Wait until ``text`` appeared in ``times`` log lines; returns when (Unix s)."""
        return wait_until(
            f"{self.name} to log {text!r} x{times}",
            lambda: self.count(text) >= times or self._dead(),
            timeout,
        )

    def _dead(self) -> bool:
        if self.alive:
            return False
        raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        """The end of the log."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, wait (SIGKILL after ``timeout`` s); returns the exit code."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """kill -9 and reap."""
        if self.alive:
            self.proc.kill()
        self.proc.wait()


@dataclass
class Context:
    """One benchmark run. ``close`` stops the broker and every process it started."""

    quick: bool
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="schedulerx-bench-"))
    )
    procs: list[Proc] = field(default_factory=list)
    ledgers: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    """Things that went wrong on the way (a group that did not spread ...), for the report."""
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """In-memory raw samples for plots (not written to JSON): row -> label -> seconds."""
    kafka_version: str = ""
    load_start: tuple[float, float, float] = field(default_factory=os.getloadavg)
    """The machine's load average when the run began (other users share it)."""
    external_bootstrap: str | None = None
    """A broker the user runs (``--kafka``): used instead of starting one."""
    _broker: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    # -- broker -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """The run's one broker (started on first use, in ``workdir/kafka``)."""
        if self.external_bootstrap:
            self.kafka_version = f"external ({self.external_bootstrap})"
            return self.external_bootstrap
        if self._broker is None:
            from schedulerx.testing.kafka_broker import KafkaBroker

            self._broker = KafkaBroker.start(self.workdir / "kafka")
            self.kafka_version = self._broker.version
        return str(self._broker.bootstrap)

    @property
    def broker_pids(self) -> list[int]:
        """Pids of the broker's JVMs (empty when none was started)."""
        return [n.pid for n in self._broker.nodes] if self._broker is not None else []

    def close(self) -> None:
        """Stop every process of this run (by pid), then the broker; remove the work dir
        (kept when ``BENCH_KEEP`` is set). A row thread still running afterwards cannot
        start another process (``RuntimeError``)."""
        with self._lock:
            self._closed = True
        for p in self.procs:
            if p.alive:
                p.kill()
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if not os.environ.get("BENCH_KEEP"):  # keep logs and ledgers for a post-mortem
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- processes ----------------------------------------------------------------------

    def dir(self, name: str) -> Path:
        """A fresh directory ``workdir/<name>``."""
        d = self.workdir / name
        d.mkdir(parents=True, exist_ok=False)
        return d

    def pod(self, name: str, workdir: Path, env: Mapping[str, str], kafka: Kafka | None) -> Proc:
        """Start a schedulerx pod of ``bench.app`` (embedded log in ``workdir/data`` when
        ``kafka`` is None, else on its topic with a data dir of its own)."""
        data_dir = workdir / ("data" if kafka is None else f"data-{name}")
        flags = ["--pod-id", name, "--data-dir", str(data_dir)]
        if kafka is not None:
            flags += ["--kafka", kafka.bootstrap, "--topic", kafka.topic, "--group", kafka.group]
            env = {"SCHEDULERX_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms), **env}
        argv = [sys.executable, "-m", "schedulerx", "run", POD_APP, *flags]
        p = self._start(name, argv, {"SCHEDULERX_POD_ID": name, **env}, workdir)
        p.kafka = kafka
        p.data_dir = data_dir
        return p

    def aps(self, name: str, workdir: Path, env: Mapping[str, str]) -> Proc:
        """Start the APScheduler app (``bench.aps_app``)."""
        argv = [sys.executable, "-m", "bench.aps_app"]
        return self._start(name, argv, {"BENCH_POD": name, **env}, workdir)

    def _start(self, name: str, argv: list[str], env: Mapping[str, str], workdir: Path) -> Proc:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the run is over: {name} not started")
            p = Proc(name, argv, env, workdir / f"{name}.log")
            self.procs.append(p)
            return p

    def kafka(self, partitions: int = 12, session_timeout_ms: int = 10_000) -> Kafka:
        """A fresh topic and group on the run's broker."""
        tag = uuid.uuid4().hex[:8]
        return Kafka(self.bootstrap, f"bench-{tag}", f"bench-{tag}", partitions, session_timeout_ms)

    def incident(self, text: str) -> None:
        """Record something that went wrong but did not end the row."""
        self.incidents.append(text)
        print(f"[bench] incident: {text}", file=sys.stderr, flush=True)

    # -- ledger -------------------------------------------------------------------------

    def check_ledger(self, row: str, label: str, runs: Sequence[Run]) -> dict[str, Any]:
        """Record the duplicate check of one ledger; returns it (``runs``, ``duplicates``)."""
        dupes = duplicates(runs)
        verdict = {
            "row": row,
            "label": label,
            "runs": len(runs),
            "duplicates": len(dupes),
            "examples": sorted(dupes)[:5],
        }
        self.ledgers.append(verdict)
        return verdict


@dataclass(frozen=True)
class Kafka:
    """A topic and group of the run's broker."""

    bootstrap: str
    topic: str
    group: str
    partitions: int
    session_timeout_ms: int

    def create(self) -> None:
        """Create the topics (the way ``schedulerx topic create`` does)."""
        from schedulerx.backends.kafka import KafkaLog

        KafkaLog(
            self.bootstrap, topic=self.topic, group=self.group, partitions=self.partitions
        ).close()


# -- helpers -------------------------------------------------------------------------------


def wait_until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.1) -> float:
    """Poll ``check`` until true; returns when (Unix s). TimeoutError naming ``what``."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)
    return time.time()


def sleep_until(t: float) -> None:
    """Sleep until Unix time ``t``."""
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def next_second(t: float) -> float:
    """The first whole Unix second strictly after ``t``."""
    return float(math.floor(t) + 1)


def window_runs(runs: Iterable[Run], start: float, end: float) -> list[Run]:
    """Runs whose scheduled time is in ``[start, end)``."""
    return [r for r in runs if start - 1e-3 <= r.scheduled < end - 1e-3]


def mean(values: Sequence[float]) -> float:
    """The mean (NaN when empty)."""
    return sum(values) / len(values) if values else math.nan
