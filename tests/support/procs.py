"""Pods as real OS processes, the CLI as a subprocess, and reading ledgers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "apps" / "ledger_app.py"
SCHEDULERX = [sys.executable, "-m", "schedulerx"]


def cli(
    *args: str, env: Mapping[str, str] | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``schedulerx ARGS``; with ``check`` a non-zero exit fails with its stderr."""
    proc = subprocess.run(
        [*SCHEDULERX, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"schedulerx {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc


def jobs_json(*flags: str, env: Mapping[str, str] | None = None) -> list[dict[str, object]]:
    """``schedulerx jobs --json FLAGS`` parsed."""
    out: list[dict[str, object]] = json.loads(cli("jobs", "--json", *flags, env=env).stdout)
    return out


@dataclass
class PodProcess:
    """``schedulerx run`` of the ledger app in its own process."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    pod_id: str

    @classmethod
    def start(
        cls,
        workdir: Path,
        pod_id: str,
        flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> PodProcess:
        log_path = workdir / f"{pod_id}.log"
        full_env = {**os.environ, "SCHEDULERX_POD_ID": pod_id, **(env or {})}
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [*SCHEDULERX, "run", f"{APP}:make_scheduler", "--pod-id", pod_id, *flags],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=ROOT,
            )
        return cls(proc, log_path, pod_id)

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        """Wait until the pod's log contains ``text``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"pod {self.pod_id} never logged {text!r}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"pod {self.pod_id} did not stop on SIGTERM:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        """kill -9."""
        self.proc.kill()
        self.proc.wait()


@dataclass(frozen=True)
class Run:
    """One ledger line: job ``job_id`` was started by ``pod`` at wall-clock time ``at``."""

    job_id: str
    pod: str
    at: float
    """Unix seconds when ``execute`` began (NaN for a ledger written without times)."""

    @property
    def command_id(self) -> str:
        """The command of the job (the part of the job id before the last ``@``)."""
        return self.job_id.rsplit("@", 1)[0]


def read_runs(path: Path) -> list[Run]:
    """Every ledger line as a Run, in order (a torn last line is ignored)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) < 2 or not parts[1]:
            continue
        at = float(parts[2]) if len(parts) > 2 and parts[2] else float("nan")
        out.append(Run(parts[0], parts[1], at))
    return out


def read_ledger(path: Path) -> list[tuple[str, str]]:
    """(job id, pod id) per ledger line, in order."""
    return [(r.job_id, r.pod) for r in read_runs(path)]


def duplicates(entries: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Job ids run more than once, with their counts."""
    counts = Counter(job_id for job_id, _ in entries)
    return {k: v for k, v in counts.items() if v > 1}
