"""Regenerate, or check, the ``--help`` blocks in docs/cli.md.

    .venv/bin/python tools/cli_docs.py           # rewrite stale help blocks in place
    .venv/bin/python tools/cli_docs.py --check   # exit 1 and list what is stale or missing

A help block is a fenced ``text`` block whose first line is ``$ schedulerx WORDS --help``.
Its body is what ``schedulerx WORDS --help`` prints with ``COLUMNS=100`` (argparse wraps to
that width; colour off), rendered from the same parser the console script builds. Only the
bodies are rewritten; the prose around them is left alone. The top-level command and every
leaf subcommand must have a block (a missing one is reported, not invented); group commands
(``schedule``, ``topic``) may have one. tests/integration/test_docs_examples.py fails when
this script would change the page.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from schedulerx.cli.main import build_parser  # noqa: E402

DOC = ROOT / "docs" / "cli.md"
COLUMNS = 100
REGENERATE = ".venv/bin/python tools/cli_docs.py"

Words = tuple[str, ...]

HELP_BLOCK = re.compile(
    r"^```text\n\$ schedulerx(?P<words>(?: [a-z][a-z-]*)*) --help\n(?P<body>.*?)^```$",
    re.M | re.S,
)


@contextlib.contextmanager
def _help_environment() -> Iterator[None]:
    """COLUMNS=100 and no colour while the parser is built and formats help."""
    wanted = {"COLUMNS": str(COLUMNS), "NO_COLOR": "1", "PYTHON_COLORS": "0"}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser, words: Words) -> Iterator[tuple[Words, bool]]:
    children = _children(parser)
    yield words, not children
    for name, child in children.items():
        yield from _walk(child, (*words, name))


def commands() -> list[Words]:
    """Every command path with its own ``--help``, parents first (``()`` is ``schedulerx``)."""
    return [words for words, _ in _walk(build_parser(), ())]


def required() -> list[Words]:
    """The command paths docs/cli.md must show the help of: the top level and every leaf."""
    return [words for words, leaf in _walk(build_parser(), ()) if leaf or not words]


def render_help(words: Sequence[str]) -> str:
    """Exactly what ``COLUMNS=100 schedulerx WORDS --help`` prints on stdout."""
    with _help_environment():
        parser = build_parser()
        for word in words:
            parser = _children(parser)[word]
        return parser.format_help()


def help_blocks(text: str) -> dict[Words, str]:
    """The help blocks of ``text``: command path -> body. ValueError on a duplicate."""
    out: dict[Words, str] = {}
    for m in HELP_BLOCK.finditer(text):
        words = tuple(m["words"].split())
        if words in out:
            raise ValueError(f"two help blocks for 'schedulerx {' '.join(words)}'")
        out[words] = m["body"]
    return out


def problems(text: str) -> list[str]:
    """What is stale, missing or unknown among the help blocks of ``text`` (empty: current)."""
    known = set(commands())
    blocks = help_blocks(text)
    out: list[str] = []
    for words, body in blocks.items():
        name = " ".join(("schedulerx", *words))
        if words not in known:
            out.append(f"'{name} --help' is shown but there is no such command")
        elif body != render_help(words):
            out.append(f"'{name} --help' differs from the real output")
    for words in required():
        if words not in blocks:
            name = " ".join(("schedulerx", *words))
            out.append(f"'{name} --help' is missing (add a ```text block: '$ {name} --help')")
    return out


def regenerate(text: str) -> str:
    """``text`` with the body of every help block of a known command re-rendered."""
    known = set(commands())

    def fresh(m: re.Match[str]) -> str:
        words = tuple(m["words"].split())
        if words not in known:
            return m[0]
        return f"```text\n$ schedulerx{m['words']} --help\n{render_help(words)}```"

    return HELP_BLOCK.sub(fresh, text)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite docs/cli.md (default) or only check it (``--check``: exit 1 when stale)."""
    ap = argparse.ArgumentParser(description="regenerate the --help blocks in docs/cli.md")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    ap.add_argument("--doc", type=Path, default=DOC, help="the page (docs/cli.md)")
    args = ap.parse_args(argv)
    text = args.doc.read_text()
    shown = args.doc.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    if args.check:
        found = problems(text)
        for problem in found:
            sys.stderr.write(f"{shown}: {problem}\n")
        if found:
            sys.stderr.write(f"regenerate with: {REGENERATE}\n")
        return 1 if found else 0
    new = regenerate(text)
    if new != text:
        args.doc.write_text(new)
        sys.stdout.write(f"updated the help blocks in {shown}\n")
    remaining = problems(new)
    for problem in remaining:
        sys.stderr.write(f"{shown}: {problem}\n")
    return 1 if remaining else 0


if __name__ == "__main__":
    raise SystemExit(main())
