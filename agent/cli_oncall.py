"""``alert-agent oncall TEAM``: a team's on-call shifts and overrides for the coming days, read
from the rule files as ``alert-agent check`` reads them (no running daemon needed)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.directory import Directory
from agent.domain import parse_iso
from agent.oncall import Rotation, Segment, local_time, segments, utc_time

MAX_DAYS = 366


def add_parser(sub: Any) -> None:
    """Register ``oncall`` on the CLI's subparsers."""
    p = sub.add_parser(
        "oncall", help="print a team's on-call shifts for the coming days (from the rule files)",
        description="Every shift and override of the team's rotation from --from for --days "
        "days: start and end on the team's wall clock and in UTC, the member's id and name.")
    p.add_argument("team", metavar="TEAM", help="the team id (team_...)")
    p.add_argument("--from", dest="from_", metavar="ISO8601",
                   help="start of the listing (default: now; without an offset: UTC)")
    p.add_argument("--days", type=int, default=14, help=f"days to list (1-{MAX_DAYS}; "
                   "default 14)")
    p.add_argument("--config", type=Path, help="YAML config file (for its rules_dir)")
    p.add_argument("--rules", type=Path, help="rules directory (default: from the config)")


def _when(t: float, rotation: Rotation) -> str:
    local = local_time(t, rotation.timezone)
    return f"{_fmt(local)} {local.tzname()}"


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M")


def _line(seg: Segment, rotation: Rotation, directory: Directory) -> str:
    member = directory.members.get(seg.member)
    name = member.name if member is not None else seg.member
    kind = "override" if seg.override else "shift"
    return (f"{_when(seg.start, rotation)} -> {_when(seg.end, rotation)}  "
            f"({_fmt(utc_time(seg.start))}Z -> {_fmt(utc_time(seg.end))}Z)  "
            f"{kind:<8}  {seg.member}  {name}")


def _problem(message: str, code: int) -> int:
    print(f"alert-agent oncall: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Print the listing; 1 when the rules do not load, 2 for a bad argument or team."""
    from agent.routing.loader import RulesError, load_rules
    from agent.settings import ConfigError, load_settings

    if not 1 <= args.days <= MAX_DAYS:
        return _problem(f"--days must be between 1 and {MAX_DAYS}", 2)
    try:
        start = time.time() if args.from_ is None else parse_iso(args.from_)
    except ValueError:
        return _problem(f"--from must be an ISO 8601 timestamp, got {args.from_!r}", 2)
    try:
        settings = load_settings(args.config)
        rules_dir = args.rules or settings.rules_dir
        rules = load_rules(rules_dir, allow_unlisted=settings.recipients.unlisted_channels)
    except ConfigError as exc:
        return _problem(f"config error: {exc}", 2)
    except RulesError as exc:
        for problem in exc.problems:
            print(f"alert-agent: rules error: {problem}", file=sys.stderr)
        return 1
    team = rules.directory.teams.get(args.team)
    if team is None:
        return _problem(f"no such team '{args.team}' in {rules_dir}", 2)
    rotation = team.oncall
    if rotation is None:
        return _problem(f"team '{team.id}' has no on-call rotation (oncall: in its rule file)", 2)
    end = start + args.days * 86400
    try:
        listed = list(segments(rotation, start, end))
    except ValueError as exc:
        return _problem(str(exc), 2)
    print(f"{team.id} ({team.name}): on call from {_when(start, rotation)} for {args.days} "
          f"day(s), times in {rotation.timezone} and UTC")
    for seg in listed:
        print(_line(seg, rotation, rules.directory))
    return 0
