"""On-call rotations: who of a team is on call at an instant, since when, until when, who next.

Pure (no clock: the instant is always passed in), shared like ``agent/directory.py``: the API,
the CLI and the code resolving ``to: oncall:team_x`` ask it the same questions.

Semantics (README: "On-call rotations"):

- Shift ``k`` belongs to ``members[k mod n]`` and starts at ``handoff + k × length`` on the
  team's LOCAL wall clock, for every length: a 1w or 1d rotation at 09:00 hands off at 09:00
  local in winter and in summer, a 12h one at 09:00 and 21:00. The shift spanning a
  daylight-saving change is an hour shorter or longer in real time.
- A handoff at a local time the clocks skip (spring forward) happens at the jump; one at a time
  that occurs twice (fall back) at its first occurrence. A shift lying wholly in the skipped
  hour (1h lengths only) does not happen.
- The rotation extends backwards: before the first handoff the last member is on call (as
  PagerDuty does), so a rotation declared ahead of its start still answers.
- An override puts its member on call from its start to its end instead of the rotation's.
  Overrides never overlap (the loader refuses it).
- ``until`` is the next instant at which someone else comes on call: a handoff or an override
  boundary that leaves the same person on call is no change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["OnCall", "Override", "Rotation", "Segment", "instant", "local_time", "segments",
           "utc_time", "who"]


@dataclass(frozen=True, slots=True)
class Override:
    """``member`` on call from ``start`` to ``end`` (unix seconds, end excluded)."""

    member: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Rotation:
    members: tuple[str, ...]
    length: timedelta
    # The first shift's start, a wall-clock time in ``timezone`` (naive).
    handoff: datetime
    timezone: str
    # Sorted by start, never overlapping.
    overrides: tuple[Override, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch with one person on call: a (part of a) shift or an override."""

    member: str
    start: float
    end: float
    override: bool


@dataclass(frozen=True, slots=True)
class OnCall:
    """Who is on call at an instant. ``until`` is None (and ``next`` empty) when nobody else
    ever takes over: a rotation of one person with no override ahead."""

    members: tuple[str, ...]
    since: float | None
    until: float | None
    next: tuple[str, ...]


def instant(local: datetime, zone: ZoneInfo) -> float:
    """Unix seconds of the naive wall-clock time ``local`` in ``zone``: in a skipped hour, the
    moment of the jump; in a repeated hour, the first occurrence. Monotonic in ``local``."""
    first = local.replace(tzinfo=zone, fold=0).timestamp()
    back = datetime.fromtimestamp(first, zone).replace(tzinfo=None)
    if back == local:
        return first
    # Skipped: fold=0 read it with the offset before the jump, fold=1 with the one after; the
    # jump lies between. Transitions fall on whole seconds.
    lo = math.floor(local.replace(tzinfo=zone, fold=1).timestamp())
    hi = math.ceil(first)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == datetime.fromtimestamp(
                lo, zone).utcoffset():
            lo = mid
        else:
            hi = mid
    return float(hi)


def _shift_start(r: Rotation, zone: ZoneInfo, k: int) -> float:
    try:
        return instant(r.handoff + k * r.length, zone)
    except (OverflowError, ValueError, OSError) as exc:
        raise ValueError("the instant is outside the years a rotation can be computed for"
                         ) from exc


def _shift_at(r: Rotation, zone: ZoneInfo, t: float) -> int:
    """The shift ``k`` with start(k) <= t < start(k+1)."""
    try:
        local = datetime.fromtimestamp(t, zone).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError) as exc:
        raise ValueError("the instant is outside the years a rotation can be computed for"
                         ) from exc
    k = math.floor((local - r.handoff) / r.length)
    # The wall-clock estimate is off by at most the hour or so of a DST change.
    while _shift_start(r, zone, k) > t:
        k -= 1
    while _shift_start(r, zone, k + 1) <= t:
        k += 1
    return k


def _override_at(r: Rotation, t: float) -> Override | None:
    for o in r.overrides:
        if o.start <= t < o.end:
            return o
    return None


def _segment(r: Rotation, zone: ZoneInfo, t: float) -> Segment:
    """The segment holding ``t``: the override covering it, else the part of its shift that no
    override cuts off."""
    o = _override_at(r, t)
    if o is not None:
        return Segment(o.member, o.start, o.end, True)
    k = _shift_at(r, zone, t)
    start, end = _shift_start(r, zone, k), _shift_start(r, zone, k + 1)
    for o in r.overrides:
        if start < o.end <= t:
            start = o.end
        if t < o.start < end:
            end = o.start
    return Segment(r.members[k % len(r.members)], start, end, False)


def _segment_before(r: Rotation, zone: ZoneInfo, t: float) -> Segment:
    """The segment ending at ``t`` (the one holding the instants just before it)."""
    o = next((o for o in r.overrides if o.end == t), None)
    if o is not None:
        return Segment(o.member, o.start, o.end, True)
    k = _shift_at(r, zone, t)
    start = _shift_start(r, zone, k)
    if start == t:  # t is a handoff: the segment before ends the previous non-empty shift
        k -= 1
        while _shift_start(r, zone, k) == t:
            k -= 1
        start = _shift_start(r, zone, k)
    for o in r.overrides:
        if start < o.end < t:
            start = o.end
    return Segment(r.members[k % len(r.members)], start, t, False)


def _steps(r: Rotation) -> int:
    # After this many segments without a change, none will come: n shifts of the rotation
    # show every member, each override adds at most two boundaries.
    return len(r.members) + 2 * len(r.overrides) + 2


def who(r: Rotation, t: float) -> OnCall:
    """Who is on call at ``t``: since when, until the next change, and who takes over then.
    Raises ValueError for an instant outside the years ``datetime`` can hold."""
    zone = r.zone
    here = _segment(r, zone, t)
    since: float | None = here.start
    for _ in range(_steps(r)):
        assert since is not None
        before = _segment_before(r, zone, since)
        if before.member != here.member:
            break
        since = before.start
    else:
        since = None  # the same person all the way back
    until = here.end
    for _ in range(_steps(r)):
        after = _segment(r, zone, until)
        if after.member != here.member:
            return OnCall((here.member,), since, until, (after.member,))
        until = after.end
    return OnCall((here.member,), since, None, ())


def segments(r: Rotation, start: float, end: float) -> Iterator[Segment]:
    """Every shift and override overlapping ``[start, end)``, in order, each whole (the first
    may begin before ``start``); empty shifts (in a skipped hour) left out."""
    zone = r.zone
    t = start
    while t < end:
        seg = _segment(r, zone, t)
        yield seg
        t = seg.end


def local_time(t: float, timezone: str) -> datetime:
    """``t`` on the wall clock of ``timezone`` (aware)."""
    return datetime.fromtimestamp(t, ZoneInfo(timezone))


def utc_time(t: float) -> datetime:
    """``t`` in UTC (aware)."""
    return datetime.fromtimestamp(t, UTC)
