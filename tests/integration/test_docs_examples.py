"""The examples in the README and docs/ run: they are what a newcomer copies first."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedulerx.cli.main import build_parser
from schedulerx.domain.events import decode, encode
from schedulerx.domain.requests import decode_request
from tests.support.procs import ROOT

README = (ROOT / "README.md").read_text()
EVENTS = (ROOT / "docs" / "events.md").read_text()


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_every_event_example_in_the_schema_doc_decodes_exactly() -> None:
    examples = [b for b in blocks(EVENTS, "json") if '"type"' in b]
    assert len(examples) >= 5
    for text in examples:
        event = decode(text.encode())
        assert json.loads(encode(event)) == json.loads(text)


def test_every_request_example_in_the_schema_doc_is_a_valid_request() -> None:
    lines = [
        line
        for b in blocks(EVENTS, "json")
        if '"type"' not in b
        for line in b.splitlines()
        if line.strip()
    ]
    assert len(lines) >= 5
    for line in lines:
        assert decode_request(line.encode()).command_id == "backup"


def _subcommands() -> list[list[str]]:
    out: list[list[str]] = []
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
            if nested:
                out.extend([name, child] for child in nested[0].choices)
            else:
                out.append([name])
    return out


@pytest.mark.parametrize("words", _subcommands(), ids=" ".join)
def test_every_subcommand_help_has_an_example(words: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "schedulerx", *words, "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "examples:" in proc.stdout
    assert f"schedulerx {words[0]}" in proc.stdout.split("examples:", 1)[1]


@pytest.mark.slow
def test_readme_quick_start_runs(tmp_path: Path) -> None:
    (python,) = blocks(README, "python")
    (tmp_path / "app.py").write_text(python)
    shell = blocks(README, "bash")
    quick = next(b for b in shell if "schedulerx run app.py" in b)
    commands = [line.split("#", 1)[0].strip() for line in quick.splitlines()]
    commands = [c for c in commands if c.startswith("schedulerx ")]
    assert commands[0] == "schedulerx run app.py"
    exe = [sys.executable, "-m", "schedulerx"]
    pod = subprocess.Popen(
        [*exe, "run", "app.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(4)
        for command in commands[1:]:
            args = [a.strip("'") for a in re.findall(r"'[^']*'|\S+", command)][1:]
            proc = subprocess.run(
                [*exe, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0, (command, proc.stderr)
        listed = json.loads(
            subprocess.run(
                [*exe, "jobs", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True
            ).stdout
        )
        assert {j["command_id"] for j in listed if j["status"] == "scheduled"} == {
            "backup",
            "heartbeat",
        }
    finally:
        pod.terminate()
        out, _ = pod.communicate(timeout=30)
    assert pod.returncode == 0, out
    assert "Traceback" not in out
