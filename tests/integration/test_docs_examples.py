"""The examples in the README and docs/ run: they are what a newcomer copies first.

docs/cli.md is checked two ways. Its ``--help`` blocks must be the real output
(``tools/cli_docs.py`` regenerates them). Its other fenced blocks are examples, run in page
order by the rule written at the top of that page: every command line must exit 0 against a
fresh embedded data dir, unless the block is marked ``<!-- example: skip REASON -->`` (Kafka,
long-running); skipped commands and the ``examples:`` in every help block are still parsed
by the real parser, so a renamed flag breaks the test.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from schedulerx.backends.embedded import EmbeddedLog
from schedulerx.cli.main import build_parser, parse_args
from schedulerx.domain.events import decode, encode
from schedulerx.domain.requests import decode_request
from tests.support.procs import ROOT
from tools import cli_docs

README = (ROOT / "README.md").read_text()
EVENTS = (ROOT / "docs" / "events.md").read_text()
CLI_DOC = cli_docs.DOC.read_text()


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
    out = _console_help(words)
    assert "examples:" in out
    assert f"schedulerx {words[0]}" in out.split("examples:", 1)[1]


def _console_help(words: Sequence[str], env: dict[str, str] | None = None) -> str:
    """What ``schedulerx WORDS --help`` prints, run as a process."""
    proc = subprocess.run(
        [sys.executable, "-m", "schedulerx", *words, "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    return proc.stdout


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


# -- docs/cli.md: help blocks -------------------------------------------------------------

_HELP_BLOCKS = cli_docs.help_blocks(CLI_DOC)


def _name(words: tuple[str, ...]) -> str:
    return " ".join(("schedulerx", *words))


@pytest.mark.parametrize(
    "words", sorted(set(cli_docs.required()) | set(_HELP_BLOCKS)), ids=lambda w: _name(w)
)
def test_cli_doc_help_block_is_the_real_help(words: tuple[str, ...]) -> None:
    fix = f"regenerate docs/cli.md with: {cli_docs.REGENERATE}"
    assert words in cli_docs.commands(), (
        f"docs/cli.md shows '{_name(words)} --help': no such command"
    )
    assert words in _HELP_BLOCKS, f"docs/cli.md has no '$ {_name(words)} --help' block; add one"
    real = cli_docs.render_help(words)
    assert _HELP_BLOCKS[words] == real, f"'{_name(words)} --help' in docs/cli.md is stale; {fix}"


@pytest.mark.parametrize("words", [(), ("schedule", "set"), ("replay",)], ids=_name)
def test_rendered_help_is_what_the_console_command_prints(words: tuple[str, ...]) -> None:
    env = {**os.environ, "COLUMNS": "100", "PYTHON_COLORS": "0", "NO_COLOR": "1"}
    assert _console_help(words, env) == cli_docs.render_help(words)


def test_the_help_check_catches_a_stale_block_and_regenerating_fixes_it() -> None:
    assert cli_docs.problems(CLI_DOC) == []
    stale = re.sub(r"\n +--follow +keep printing new events\n", "\n", CLI_DOC, count=1)
    assert stale != CLI_DOC
    assert cli_docs.problems(stale) == ["'schedulerx replay --help' differs from the real output"]
    assert cli_docs.regenerate(stale) == CLI_DOC
    missing = re.sub(r"```text\n\$ schedulerx compact --help\n.*?```\n", "", CLI_DOC, flags=re.S)
    (problem,) = cli_docs.problems(missing)
    assert problem.startswith("'schedulerx compact --help' is missing")


# -- docs/cli.md: examples ----------------------------------------------------------------

_FENCE = re.compile(
    r"(?:^<!-- example: (?P<marker>[^\n]*?) -->\n)?^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$",
    re.M | re.S,
)
_SHELL_OPERATORS = {"<", ">", ">>", "|", "||", "&", "&&", ";", "<(", "(", ")"}
_NEEDS_MORE = ("run", "dashboard")  # run until stopped
_NEEDS_MORE_FLAGS = ("--kafka", "--follow")  # a broker; runs until stopped


@dataclass
class Command:
    """One example command line, and the output the page shows after it (``$`` blocks)."""

    line: str
    output: str = ""


@dataclass
class Example:
    """A fenced block of docs/cli.md that is not a help block."""

    line_no: int
    marker: str | None
    commands: list[Command] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"docs/cli.md:{self.line_no}"


def _examples(text: str) -> list[Example]:
    out: list[Example] = []
    for m in _FENCE.finditer(text):
        body = m["body"]
        if m["lang"] == "text" and cli_docs.HELP_BLOCK.match(m[0][m[0].index("```") :]):
            continue
        example = Example(text.count("\n", 0, m.start("body")), m["marker"])
        lines = body.splitlines()
        if any(line.startswith("$ ") for line in lines):
            for line in lines:
                if line.startswith("$ "):
                    example.commands.append(Command(line[2:]))
                elif example.commands:
                    example.commands[-1].output += line + "\n"
        else:
            example.commands = [Command(line) for line in lines if line.strip()]
        out.append(example)
    return out


def _argv(line: str) -> list[str]:
    """The schedulerx arguments of a shell line: after env assignments, before redirections."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    assert "schedulerx" in tokens, f"not a schedulerx command: {line!r}"
    rest = tokens[tokens.index("schedulerx") + 1 :]
    cut = next((i for i, t in enumerate(rest) if t in _SHELL_OPERATORS), len(rest))
    return rest[:cut]


def _parses(argv: list[str]) -> str | None:
    """None if the real parser accepts ``argv`` (as ``main`` parses it), else its message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parse_args(build_parser(), argv)
        except SystemExit as exc:
            return f"exit {exc.code}: {err.getvalue().strip()}"
    return None


_EXAMPLES = _examples(CLI_DOC)


def test_cli_doc_examples_are_marked_explicitly() -> None:
    assert len(_EXAMPLES) >= 12
    for ex in _EXAMPLES:
        marker = ex.marker or ""
        kind, _, reason = marker.partition(" ")
        assert marker in ("", "exact output", "not commands") or (kind == "skip" and reason), (
            f"{ex.where}: unknown marker <!-- example: {marker} -->"
        )
        if marker == "not commands":
            continue
        assert ex.commands, f"{ex.where}: no command lines; mark it <!-- example: not commands -->"
        if kind == "skip":
            continue
        for c in ex.commands:
            argv = _argv(c.line)
            assert argv[0] not in _NEEDS_MORE and not set(_NEEDS_MORE_FLAGS) & set(argv), (
                f"{ex.where}: {c.line!r} needs Kafka or runs until stopped; "
                "mark its block <!-- example: skip REASON -->"
            )
        if marker == "exact output":
            assert all(c.output for c in ex.commands), f"{ex.where}: no output to compare"


def test_every_example_command_in_the_cli_doc_parses() -> None:
    lines = [c.line for ex in _EXAMPLES if ex.marker != "not commands" for c in ex.commands]
    for body in _HELP_BLOCKS.values():
        epilog = body.split("\nexamples:\n", 1)[1]
        lines += [line.strip() for line in epilog.splitlines() if line.strip()]
    assert len(lines) >= 40
    failures = [f"{line!r}: {msg}" for line in lines if (msg := _parses(_argv(line)))]
    assert not failures, "\n".join(failures)


def test_cli_doc_examples_run_in_order(tmp_path: Path) -> None:
    """Each runnable example exits 0, in page order, on one fresh data dir (./.schedulerx)."""
    data = tmp_path / ".schedulerx"
    EmbeddedLog(data).close()  # an empty log, as a pod's first start leaves it
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "schedulerx"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m schedulerx "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULERX_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        SCHEDULERX_DATA_DIR=str(data),
    )
    ran = 0
    for ex in _EXAMPLES:
        if ex.marker == "not commands" or (ex.marker or "").startswith("skip "):
            continue
        for c in ex.commands:
            proc = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", c.line],
                capture_output=True,
                text=True,
                cwd=tmp_path,
                env=env,
                timeout=60,
            )
            assert proc.returncode == 0, (ex.where, c.line, proc.stderr)
            if ex.marker == "exact output":
                assert proc.stdout == c.output, (ex.where, c.line)
            ran += 1
    assert ran >= 14
