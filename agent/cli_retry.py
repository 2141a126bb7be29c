"""``alert-agent retry``: re-drive failed notifications (dead letters) through a running
daemon's API, as ``alert-agent send`` sends: by id, or ``--all`` failed ones matching filters."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from agent import CLI_USER_AGENT

_FILTERS = ("channel", "failure_class", "failure_reason", "from", "to", "limit")


def add_parser(sub: Any) -> None:
    """Register ``retry`` on the CLI's subparsers."""
    p = sub.add_parser(
        "retry", help="re-drive failed notifications through a running daemon's API",
        description="Queue failed notifications again (same id, new attempts): the ones "
        "named, or with --all every failed one matching the filters (at most --limit per "
        "call; the answer's has_more says whether more match).")
    p.add_argument("--url", default=os.environ.get("ALERT_AGENT_URL", "http://127.0.0.1:9095"))
    p.add_argument("--api-key", default=os.environ.get("ALERT_AGENT_API_KEY"),
                   help="defaults to $ALERT_AGENT_API_KEY")
    p.add_argument("ids", nargs="*", metavar="ID", help="notification ids (ntf_...)")
    p.add_argument("--all", action="store_true",
                   help="every failed notification matching the filters below")
    p.add_argument("--channel")
    p.add_argument("--failure-class", help="permanent | temporary | technical")
    p.add_argument("--failure-reason", help="e.g. provider_unavailable, timeout")
    p.add_argument("--from", dest="from_", metavar="ISO8601", help="created at or after")
    p.add_argument("--to", metavar="ISO8601", help="created at or before")
    p.add_argument("--limit", type=int, help="at most this many (default 1000, max 10000)")


def post(url: str, key: str, path: str, body: dict[str, Any] | None) -> tuple[bool, str]:
    """POST ``body`` to the daemon at ``url``; (accepted, the answer's text)."""
    req = urllib.request.Request(
        url.rstrip("/") + path, data=json.dumps(body or {}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                 "User-Agent": CLI_USER_AGENT},
        method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return True, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode()


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every re-drive was accepted, 1 when the API refused one, 2 on bad usage."""
    filters = {name: getattr(args, "from_" if name == "from" else name) for name in _FILTERS}
    filters = {k: v for k, v in filters.items() if v is not None}
    if not args.api_key:
        print("alert-agent retry: no API key (use --api-key or $ALERT_AGENT_API_KEY)",
              file=sys.stderr)
        return 2
    if bool(args.ids) == args.all or (args.ids and filters):
        print("alert-agent retry: name notification ids, or --all with optional filters",
              file=sys.stderr)
        return 2
    try:
        if args.all:
            ok, text = post(args.url, args.api_key, "/v1/notifications/retry", filters)
            print(text, file=sys.stdout if ok else sys.stderr)
            return 0 if ok else 1
        code = 0
        for nid in args.ids:
            path = f"/v1/notifications/{urllib.parse.quote(nid, safe='')}/retry"
            ok, text = post(args.url, args.api_key, path, None)
            print(text, file=sys.stdout if ok else sys.stderr)
            code = code if ok else 1
        return code
    except urllib.error.URLError as exc:
        print(f"alert-agent retry: cannot reach {args.url}: {exc.reason}", file=sys.stderr)
        return 1
