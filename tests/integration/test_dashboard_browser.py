"""The dashboard in a real headless Chromium, against a live pod's ``--http``.

The browser runs the page's own JavaScript (``--dump-dom`` after a virtual-time budget), so
what is checked is the DOM a person would see. Needs the ``chromium`` package: without it
these tests fail, unless ``SCHEDULERX_SKIP_BROWSER=1`` says to skip them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from schedulerx import Scheduler, StaticScheduleFetcher
from tests.support.http import free_port, get
from tests.support.procs import PodProcess, cli

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def _chromium() -> str:
    found = os.environ.get("SCHEDULERX_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )
    if found:
        return found
    if os.environ.get("SCHEDULERX_SKIP_BROWSER") == "1":
        pytest.skip("chromium not installed and SCHEDULERX_SKIP_BROWSER=1")
    pytest.fail(
        "chromium is not installed: apt-get install -y chromium "
        "(or set SCHEDULERX_SKIP_BROWSER=1 to skip the browser tests)",
        pytrace=False,
    )


class _Elements(HTMLParser):
    """Every element with a ``data-job`` attribute: (job id, data-status), and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[tuple[str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_title = tag == "title"
        a = dict(attrs)
        if a.get("data-job"):
            self.jobs.append((str(a["data-job"]), str(a.get("data-status"))))

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data


def dump_dom(browser: str, url: str, profile: Path, budget_ms: int = 2500) -> _Elements:
    """The DOM after the page's scripts ran for ``budget_ms`` of virtual time."""
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    parsed = _Elements()
    parsed.feed(proc.stdout)
    return parsed


def _until(
    browser: str, url: str, profile: Path, ok: object, timeout: float = 30
) -> tuple[_Elements, float]:
    """Dump the DOM until ``ok(dom)`` holds; returns it and the last dump's seconds."""
    assert callable(ok)
    end = time.monotonic() + timeout
    dom = None
    while time.monotonic() < end:
        t = time.monotonic()
        dom = dump_dom(browser, url, profile)
        took = time.monotonic() - t
        if ok(dom):
            return dom, took
        time.sleep(0.3)
    shown = dom.jobs if dom else None
    raise AssertionError(f"the page never showed what was expected; last jobs: {shown}")


def _manual(jobs: Sequence[tuple[str, str]], status: str) -> list[str]:
    return [j for j, s in jobs if j.startswith("c0@") and "~manual-" in j and s == status]


def test_page_shows_a_triggered_job_running_then_succeeded(tmp_path: Path) -> None:
    browser = _chromium()
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        "LEDGER": str(tmp_path / "ledger"),
        "COMMANDS": "1",
        "CRON": "0 0 1 1 *",  # yearly: only the triggered job runs during the test
        "SLEEP": "3",
    }
    flags = ["--data-dir", str(data), "--http", str(port)]
    pod = PodProcess.start(tmp_path, "pod-a", flags, env)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                if get(url + "readyz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        first, _ = _until(browser, url, tmp_path / "profile", lambda d: "c0" in "".join(d.text))
        scheduled = [j for j, s in first.jobs if s == "scheduled"]
        assert len(set(scheduled)) == 2, first.jobs  # the next 2 runs of c0
        assert "pod-a" in "".join(first.text)
        cli("trigger", "c0", "--data-dir", str(data))
        running, _ = _until(
            browser, url, tmp_path / "profile", lambda d: _manual(d.jobs, "running")
        )
        job = _manual(running.jobs, "running")[0]
        done, took = _until(
            browser,
            url,
            tmp_path / "profile",
            lambda d: job in _manual(d.jobs, "succeeded"),
        )
        assert job not in _manual(done.jobs, "running")
        print(f"dump-dom of the live page took {took:.2f}s")
        assert pod.stop() == 0, pod.tail()
    finally:
        if pod.proc.poll() is None:
            pod.kill()


def test_page_shows_hostile_text_as_text(tmp_path: Path) -> None:
    browser = _chromium()
    scheduler = Scheduler(
        StaticScheduleFetcher({"<b>bold": ("*/1 * * * * *", [HOSTILE])}),
        data_dir=tmp_path / "data",
        refresh_interval=timedelta(seconds=30),
    )

    @scheduler.command("<b>bold")
    def fail(params: Sequence[str]) -> None:
        raise RuntimeError(params[0])

    port = free_port()
    scheduler.start(http=f"127.0.0.1:{port}")
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and not scheduler.list_jobs(status="failed"):
            time.sleep(0.1)
        assert scheduler.list_jobs(status="failed")
        dom, _ = _until(
            browser,
            f"http://127.0.0.1:{port}/",
            tmp_path / "profile",
            lambda d: any(s == "failed" for _, s in d.jobs),
        )
    finally:
        scheduler.stop()
    text = "".join(dom.text)
    assert f"RuntimeError: {HOSTILE}" in text or HOSTILE in text
    assert "<b>bold" in text
    assert "img" not in dom.tags and "b" not in dom.tags
    assert dom.title == "schedulerx"  # the onerror handler never ran
