"""``schedulerx schedule set|list|pause|resume|remove`` and ``schedulerx trigger``.

Each change is a request, exactly as another system would send one; the owning pod (or, with
none running on an embedded data dir, this command in its place) validates and records it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from schedulerx.api.admin import RequestRejected, submit
from schedulerx.api.query import open_query
from schedulerx.api.wiring import BackendConfig
from schedulerx.cli.common import (
    HelpFormatter,
    UserError,
    add_connection_flags,
    backend_of,
    print_json,
    table,
)
from schedulerx.domain.cron import Cron, CronError
from schedulerx.domain.requests import Request

EXAMPLES = """examples:
  schedulerx schedule set backup '0 3 * * *' --timezone Europe/Berlin -- --full
  schedulerx schedule set heartbeat '*/5 * * * * *'
  schedulerx schedule list --json
  schedulerx schedule pause backup
  schedulerx schedule resume backup
  schedulerx schedule remove backup"""

TRIGGER_EXAMPLES = """examples:
  schedulerx trigger backup
  schedulerx trigger report -- --since yesterday"""


def add_parser(sub: Any) -> None:
    """Register ``schedule`` (with its actions) and ``trigger``."""
    p = sub.add_parser(
        "schedule",
        help="show or change schedules",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = actions.add_parser(
        "set",
        help="set a command's cron schedule and params",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(s)
    _json_flag(s)
    s.add_argument("command_id", metavar="ID")
    s.add_argument("cron", metavar="CRON", help="5 fields, or 6 with seconds first, or @daily")
    s.add_argument(
        "params",
        metavar="PARAM",
        nargs="*",
        default=[],  # so a usage error does not list PARAM as required
        help="params (put them after -- when they start with '-')",
    )
    s.add_argument("--timezone", default="UTC", help="IANA time zone (UTC)")
    s.set_defaults(handler=handle_set)
    ls = actions.add_parser(
        "list",
        help="every command's schedule",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(ls)
    ls.add_argument("--json", action="store_true", help="a JSON array of schedule objects")
    ls.set_defaults(handler=handle_list)
    for name, doc in (
        ("pause", "stop planning new jobs (future ones are canceled)"),
        ("resume", "plan again"),
        ("remove", "delete the schedule"),
    ):
        a = actions.add_parser(name, help=doc, epilog=EXAMPLES, formatter_class=HelpFormatter)
        add_connection_flags(a)
        _json_flag(a)
        a.add_argument("command_id", metavar="ID")
        a.set_defaults(handler=handle_change, action=name)
    t = sub.add_parser(
        "trigger",
        help="run a command now, once",
        epilog=TRIGGER_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_connection_flags(t)
    _json_flag(t)
    t.add_argument("command_id", metavar="ID")
    t.add_argument(
        "params", metavar="PARAM", nargs="*", default=[], help="params (default: the schedule's)"
    )
    t.set_defaults(handler=handle_trigger)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def _send(backend: BackendConfig, request: Request, as_json: bool = False) -> int:
    try:
        outcome = submit(backend, request)
    except RequestRejected as exc:
        raise UserError(str(exc)) from None
    if as_json:
        print_json({"command_id": request.command_id, "outcome": outcome})
    else:
        sys.stdout.write(f"{request.command_id}: {outcome}\n")
    return 0


def _known(backend: BackendConfig) -> dict[str, Any]:
    with open_query(backend) as view:
        return {s.command_id: s for s in view.schedules() if not s.removed}


def _require_known(backend: BackendConfig, command_id: str) -> None:
    known = _known(backend)
    if command_id not in known:
        names = ", ".join(sorted(known)[:10]) or "none"
        raise UserError(f"unknown command {command_id!r} (known: {names})")


def handle_set(args: argparse.Namespace) -> int:
    """Validate the cron here (a clear error at once), then send the request."""
    try:
        Cron.parse(args.cron, args.timezone)
    except CronError as exc:
        raise UserError(str(exc)) from None
    request = Request(
        command_id=args.command_id,
        cron=args.cron,
        params=tuple(args.params),
        timezone=args.timezone,
        source="cli",
    )
    return _send(backend_of(args), request, args.json)


def handle_change(args: argparse.Namespace) -> int:
    """pause / resume / remove."""
    backend = backend_of(args)
    _require_known(backend, args.command_id)
    if args.action == "remove":
        request = Request(command_id=args.command_id, remove=True, source="cli")
    else:
        request = Request(command_id=args.command_id, paused=args.action == "pause", source="cli")
    return _send(backend, request, args.json)


def handle_trigger(args: argparse.Namespace) -> int:
    """Run once now."""
    backend = backend_of(args)
    _require_known(backend, args.command_id)
    params = tuple(args.params) if args.params else None
    request = Request(command_id=args.command_id, trigger=True, params=params, source="cli")
    return _send(backend, request, args.json)


def handle_list(args: argparse.Namespace) -> int:
    """Print every schedule."""
    rows = sorted(_known(backend_of(args)).values(), key=lambda s: s.command_id)
    if args.json:
        print_json(
            [
                {
                    "command_id": s.command_id,
                    "cron": s.cron,
                    "params": list(s.params),
                    "timezone": s.timezone,
                    "paused": s.paused,
                }
                for s in rows
            ]
        )
        return 0
    sys.stdout.write(
        table(
            ["command", "cron", "timezone", "paused", "params"],
            [
                (s.command_id, s.cron, s.timezone, "yes" if s.paused else "", " ".join(s.params))
                for s in rows
            ],
        )
        + "\n"
    )
    return 0
