"""``alert-agent ack``: acknowledge alerts through a running daemon's API, as ``amtool`` talks to
Alertmanager's: ``alert-agent ack ALERT_ID [--by NAME]``; ``--undo`` clears an acknowledgment."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import urllib.error
import urllib.parse
from typing import Any

from agent.cli_retry import post


def add_parser(sub: Any) -> None:
    """Register ``ack`` on the CLI's subparsers."""
    p = sub.add_parser(
        "ack", help="acknowledge alerts through a running daemon's API",
        description="Acknowledge alerts: their escalation and repeats stop and their delivered "
        "messages say who acknowledged. The first acknowledgment is the one recorded.")
    p.add_argument("ids", nargs="+", metavar="ALERT_ID", help="alert ids (alt_...)")
    p.add_argument("--by", help="who acknowledges (default: your login name)")
    p.add_argument("--undo", action="store_true",
                   help="clear the acknowledgment instead (the alert repeats again)")
    p.add_argument("--url", default=os.environ.get("ALERT_AGENT_URL", "http://127.0.0.1:9095"))
    p.add_argument("--api-key", default=os.environ.get("ALERT_AGENT_API_KEY"),
                   help="defaults to $ALERT_AGENT_API_KEY")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every alert was acknowledged, 1 when the API refused one, 2 on bad usage."""
    if not args.api_key:
        print("alert-agent ack: no API key (use --api-key or $ALERT_AGENT_API_KEY)",
              file=sys.stderr)
        return 2
    verb = "unacknowledge" if args.undo else "acknowledge"
    body = None if args.undo else {"by": args.by or _login()}
    code = 0
    try:
        for aid in args.ids:
            path = f"/v1/alerts/{urllib.parse.quote(aid, safe='')}/{verb}"
            ok, text = post(args.url, args.api_key, path, body)
            print(text, file=sys.stdout if ok else sys.stderr)
            code = code if ok else 1
    except urllib.error.URLError as exc:
        print(f"alert-agent ack: cannot reach {args.url}: {exc.reason}", file=sys.stderr)
        return 1
    return code


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "cli"
