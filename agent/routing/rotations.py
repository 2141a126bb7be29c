"""A team's ``oncall:`` block -> ``oncall.Rotation``, with every cross-reference problem.

The schema checked each field alone (length, time zone, handoff without an offset); this checks
what needs the directory and the time zone: members, override times, overlaps.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from agent.oncall import Override, Rotation, instant
from agent.routing.schema import OnCallSpec

# A problem's message and its place under the team's ``oncall`` key.
Problem = tuple[str, tuple[int | str, ...]]


def _when(value: datetime, zone: ZoneInfo) -> float:
    # Naive: the team's wall clock (as the handoff); with an offset: that instant.
    return instant(value, zone) if value.tzinfo is None else value.timestamp()


def _member(mid: str, team: Collection[str], known: Collection[str]) -> str | None:
    # Whoever is on call must be able to acknowledge the team's alerts, which only the team's
    # members may: a rotation or an override names members of the team.
    if mid not in known:
        return f"unknown member '{mid}'"
    if mid not in team:
        return f"member '{mid}' is not in the team (list it in the team's members)"
    return None


def compile_rotation(spec: OnCallSpec, team: Collection[str], known: Collection[str]
                     ) -> tuple[Rotation | None, list[Problem]]:
    """The rotation of ``spec`` for a team with members ``team``, among the directory's
    ``known`` member ids; None with the problems when there is any."""
    problems: list[Problem] = []
    for i, mid in enumerate(spec.members):
        why = _member(mid, team, known)
        if why is not None:
            problems.append((f"oncall: {why}", ("members", i)))
    zone = ZoneInfo(spec.timezone)
    placed: list[tuple[float, float, int]] = []
    overrides: list[Override] = []
    for i, o in enumerate(spec.overrides):
        why = _member(o.member, team, known)
        if why is not None:
            problems.append((f"oncall: overrides[{i}]: {why}", ("overrides", i, "member")))
        start, end = _when(o.start, zone), _when(o.end, zone)
        if end <= start:
            problems.append((f"oncall: overrides[{i}]: end must be after start",
                             ("overrides", i, "end")))
            continue
        placed.append((start, end, i))
        overrides.append(Override(o.member, start, end))
    placed.sort()
    reach: tuple[float, int] | None = None  # the latest end so far, and whose
    for start, end, i in placed:
        if reach is not None and start < reach[0]:
            # Refused rather than picking one: who was meant to be on call is the author's call.
            first, second = sorted((reach[1], i))
            problems.append((f"oncall: overrides[{second}] overlaps overrides[{first}]",
                             ("overrides", second)))
        if reach is None or end > reach[0]:
            reach = (end, i)
    if problems:
        return None, problems
    return Rotation(tuple(spec.members), timedelta(seconds=spec.length), spec.handoff,
                    spec.timezone, tuple(sorted(overrides, key=lambda o: o.start))), []
