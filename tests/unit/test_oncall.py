"""On-call rotation maths (agent/oncall.py): who is on call at an instant, since and until when,
who is next; handoffs at the same local wall-clock time across daylight-saving changes, the
rotation extending backwards before its first handoff, and overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.oncall import OnCall, Override, Rotation, instant, segments, who

LISBON = "Europe/Lisbon"
NEW_YORK = "America/New_York"


def utc(text: str) -> float:
    """An instant written in UTC ('2026-12-07T09:00')."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def shown(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def rotation(members: str = "a b c", length: timedelta = timedelta(weeks=1),
             handoff: str = "2026-12-07T09:00", zone: str = LISBON,
             overrides: tuple[Override, ...] = ()) -> Rotation:
    return Rotation(tuple(members.split()), length, datetime.fromisoformat(handoff), zone,
                    overrides)


def on(r: Rotation, at: str) -> tuple[str, str | None, str | None, str]:
    """(on call, since, until, next) at the UTC instant ``at``, as short text."""
    found = who(r, utc(at))
    assert len(found.members) == 1 and len(found.next) <= 1
    return (found.members[0], shown(found.since), shown(found.until), "".join(found.next))


# --- the rotation alone -------------------------------------------------------------------------


def test_a_weekly_rotation_hands_off_at_the_boundary_instant() -> None:
    r = rotation()  # Lisbon is UTC+0 in December: 09:00 local is 09:00Z
    assert on(r, "2026-12-07T09:00:00") == (
        "a", "2026-12-07T09:00:00", "2026-12-14T09:00:00", "b")
    # The instant before the handoff still belongs to the previous shift.
    found = who(r, utc("2026-12-07T09:00:00") - 0.001)
    assert (found.members, shown(found.until), found.next) == (("c",), "2026-12-07T09:00:00",
                                                               ("a",))
    assert on(r, "2026-12-14T08:59:59") == (
        "a", "2026-12-07T09:00:00", "2026-12-14T09:00:00", "b")
    assert on(r, "2026-12-14T09:00:00")[0] == "b"
    assert on(r, "2026-12-21T09:00:00") == (
        "c", "2026-12-21T09:00:00", "2026-12-28T09:00:00", "a")
    assert on(r, "2026-12-28T09:00:00")[0] == "a"  # and round again


def test_before_the_first_handoff_the_rotation_extends_backwards() -> None:
    r = rotation()
    # The shift before the first is the last member's, and so on backwards.
    assert on(r, "2026-12-01T00:00:00") == (
        "c", "2026-11-30T09:00:00", "2026-12-07T09:00:00", "a")
    assert on(r, "2026-11-29T00:00:00") == (
        "b", "2026-11-23T09:00:00", "2026-11-30T09:00:00", "c")
    assert on(r, "2020-01-01T00:00:00")[0] in "abc"


def test_far_future_keeps_the_local_handoff_time() -> None:
    r = rotation()
    # 2100-06-07 is a Monday, 3,835 weeks after the first handoff (3835 % 3 == 1: 'b');
    # Lisbon is on summer time (UTC+1) then, so 09:00 local is 08:00Z.
    assert (datetime(2100, 6, 7) - datetime(2026, 12, 7)).days == 3835 * 7
    assert on(r, "2100-06-07T08:00:00") == (
        "b", "2100-06-07T08:00:00", "2100-06-14T08:00:00", "c")


def test_an_instant_beyond_the_calendar_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="outside the years"):
        who(rotation(), utc("9999-12-30T00:00:00"))


def test_daily_and_twelve_hour_lengths() -> None:
    daily = rotation("a b", timedelta(days=1), "2026-12-07T09:00")
    assert on(daily, "2026-12-08T12:00:00") == (
        "b", "2026-12-08T09:00:00", "2026-12-09T09:00:00", "a")
    half = rotation("a b c", timedelta(hours=12), "2026-12-07T09:00")
    assert on(half, "2026-12-07T20:59:59") == (
        "a", "2026-12-07T09:00:00", "2026-12-07T21:00:00", "b")
    assert on(half, "2026-12-07T21:00:00") == (
        "b", "2026-12-07T21:00:00", "2026-12-08T09:00:00", "c")
    assert on(half, "2026-12-08T09:00:00")[0] == "c"


def test_one_member_never_hands_over() -> None:
    found = who(rotation("a"), utc("2026-12-10T00:00:00"))
    assert found == OnCall(("a",), None, None, ())


def test_the_same_member_twice_in_a_row_is_one_stretch() -> None:
    r = rotation("a a b")
    assert on(r, "2026-12-15T00:00:00") == (
        "a", "2026-12-07T09:00:00", "2026-12-21T09:00:00", "b")


# --- daylight saving ----------------------------------------------------------------------------


def test_a_weekly_lisbon_rotation_stays_at_nine_local_across_spring_forward() -> None:
    # Lisbon moves from UTC+0 to UTC+1 on Sunday 2027-03-28.
    r = rotation("a b", handoff="2027-03-22T09:00")
    assert on(r, "2027-03-25T00:00:00") == (
        "a", "2027-03-22T09:00:00", "2027-03-29T08:00:00", "b")  # a shift of 167 hours
    assert on(r, "2027-03-29T08:00:00")[0] == "b"
    assert on(r, "2027-03-29T07:59:59")[0] == "a"


def test_a_daily_lisbon_rotation_across_fall_back() -> None:
    # Lisbon moves from UTC+1 back to UTC+0 on Sunday 2026-10-25: that day is 25 hours long.
    r = rotation("a b", timedelta(days=1), "2026-10-20T09:00")
    assert on(r, "2026-10-24T12:00:00") == (
        "a", "2026-10-24T08:00:00", "2026-10-25T09:00:00", "b")
    assert on(r, "2026-10-26T09:00:00") == (
        "a", "2026-10-26T09:00:00", "2026-10-27T09:00:00", "b")


def test_a_twelve_hour_rotation_keeps_wall_clock_times_across_dst() -> None:
    # 09:00 and 21:00 local before and after, not 10:00/22:00: the night shift spanning the
    # change is 11 hours (spring) or 13 hours (fall) long.
    spring = rotation("day night", timedelta(hours=12), "2027-03-27T09:00")
    assert on(spring, "2027-03-28T00:00:00") == (
        "night", "2027-03-27T21:00:00", "2027-03-28T08:00:00", "day")
    assert on(spring, "2027-03-28T19:59:59")[0] == "day"
    assert on(spring, "2027-03-28T20:00:00")[0] == "night"  # 21:00 WEST
    fall = rotation("day night", timedelta(hours=12), "2026-10-24T09:00")
    assert on(fall, "2026-10-25T00:00:00") == (
        "night", "2026-10-24T20:00:00", "2026-10-25T09:00:00", "day")


def test_new_york_spring_forward_and_fall_back() -> None:
    # New York: EST (UTC-5) -> EDT (UTC-4) on 2027-03-14, back on 2026-11-01.
    r = rotation("a b", timedelta(days=1), "2027-03-10T09:00", NEW_YORK)
    assert on(r, "2027-03-13T20:00:00") == (
        "b", "2027-03-13T14:00:00", "2027-03-14T13:00:00", "a")
    fall = rotation("a b", timedelta(weeks=1), "2026-10-26T09:00", NEW_YORK)
    assert on(fall, "2026-11-01T12:00:00") == (
        "a", "2026-10-26T13:00:00", "2026-11-02T14:00:00", "b")  # a shift of 169 hours


def test_a_handoff_in_the_skipped_hour_happens_at_the_jump() -> None:
    # 02:30 does not exist in New York on 2027-03-14: clocks go from 02:00 EST to 03:00 EDT
    # at 07:00Z. The next day 02:30 EDT is 06:30Z again.
    r = rotation("a b", timedelta(days=1), "2027-03-10T02:30", NEW_YORK)
    assert on(r, "2027-03-14T06:59:59") == (
        "b", "2027-03-13T07:30:00", "2027-03-14T07:00:00", "a")
    assert on(r, "2027-03-14T07:00:00") == (
        "a", "2027-03-14T07:00:00", "2027-03-15T06:30:00", "b")


def test_a_handoff_in_the_repeated_hour_happens_at_its_first_occurrence() -> None:
    # 01:30 happens twice in New York on 2026-11-01 (05:30Z as EDT, 06:30Z as EST).
    r = rotation("a b", timedelta(days=1), "2026-10-28T01:30", NEW_YORK)
    assert on(r, "2026-11-01T05:30:00") == (
        "a", "2026-11-01T05:30:00", "2026-11-02T06:30:00", "b")


def test_an_hourly_shift_inside_the_skipped_hour_does_not_happen() -> None:
    r = rotation("a b c", timedelta(hours=1), "2027-03-14T00:00", NEW_YORK)
    listed = [(s.member, shown(s.start), shown(s.end))
              for s in segments(r, utc("2027-03-14T05:00:00"), utc("2027-03-14T09:00:00"))]
    # 00:00 a, 01:00 b, (02:00 c skipped: that hour does not exist), 03:00 EDT a, 04:00 b.
    assert listed == [("a", "2027-03-14T05:00:00", "2027-03-14T06:00:00"),
                      ("b", "2027-03-14T06:00:00", "2027-03-14T07:00:00"),
                      ("a", "2027-03-14T07:00:00", "2027-03-14T08:00:00"),
                      ("b", "2027-03-14T08:00:00", "2027-03-14T09:00:00")]
    assert on(r, "2027-03-14T06:59:59")[2:] == ("2027-03-14T07:00:00", "a")


@pytest.mark.parametrize(("zone", "day"), [
    (LISBON, "2027-03-28"), (LISBON, "2026-10-25"),
    (NEW_YORK, "2027-03-14"), (NEW_YORK, "2026-11-01")])
def test_local_times_map_to_instants_in_order(zone: str, day: str) -> None:
    tz = ZoneInfo(zone)
    start = datetime.fromisoformat(day)
    steps = [start + timedelta(minutes=5 * i) for i in range(12 * 24)]
    instants = [instant(s, tz) for s in steps]
    assert instants == sorted(instants)
    # Every local time that exists maps to the instant showing it (the first one when it
    # exists twice); the 12 five-minute steps of a skipped hour map to the jump (03:00).
    moved = [(s, datetime.fromtimestamp(t, tz).replace(tzinfo=None))
             for s, t in zip(steps, instants, strict=True)
             if datetime.fromtimestamp(t, tz).replace(tzinfo=None) != s]
    skipped = day in ("2027-03-28", "2027-03-14")
    assert len(moved) == (12 if skipped else 0)
    assert {shown.time() for _, shown in moved} <= {datetime(1, 1, 1, 3).time(),
                                                    datetime(1, 1, 1, 2).time()}


# --- overrides ----------------------------------------------------------------------------------


def test_an_override_covering_the_instant_wins() -> None:
    o = Override("z", utc("2026-12-09T00:00"), utc("2026-12-10T00:00"))
    r = rotation(overrides=(o,))
    assert on(r, "2026-12-09T12:00:00") == (
        "z", "2026-12-09T00:00:00", "2026-12-10T00:00:00", "a")
    # Around it, the shift's member: until the override, and from its end.
    assert on(r, "2026-12-08T00:00:00") == (
        "a", "2026-12-07T09:00:00", "2026-12-09T00:00:00", "z")
    assert on(r, "2026-12-10T00:00:00") == (
        "a", "2026-12-10T00:00:00", "2026-12-14T09:00:00", "b")


def test_an_override_across_a_handoff_hands_to_the_new_shift() -> None:
    o = Override("z", utc("2026-12-13T18:00"), utc("2026-12-14T12:00"))
    r = rotation(overrides=(o,))
    assert on(r, "2026-12-14T09:00:00") == (
        "z", "2026-12-13T18:00:00", "2026-12-14T12:00:00", "b")
    assert on(r, "2026-12-13T17:00:00")[2:] == ("2026-12-13T18:00:00", "z")
    assert on(r, "2026-12-14T12:00:00") == (
        "b", "2026-12-14T12:00:00", "2026-12-21T09:00:00", "c")


def test_back_to_back_overrides() -> None:
    first = Override("y", utc("2026-12-09T00:00"), utc("2026-12-10T00:00"))
    second = Override("z", utc("2026-12-10T00:00"), utc("2026-12-11T00:00"))
    r = rotation(overrides=(first, second))
    assert on(r, "2026-12-09T00:00:00") == (
        "y", "2026-12-09T00:00:00", "2026-12-10T00:00:00", "z")
    assert on(r, "2026-12-10T00:00:00") == (
        "z", "2026-12-10T00:00:00", "2026-12-11T00:00:00", "a")


def test_an_override_by_the_member_on_shift_changes_nothing_visible() -> None:
    # 'b' covers the end of 'a''s week and stays on into its own: one stretch.
    o = Override("b", utc("2026-12-12T00:00"), utc("2026-12-15T00:00"))
    r = rotation(overrides=(o,))
    assert on(r, "2026-12-14T10:00:00") == (
        "b", "2026-12-12T00:00:00", "2026-12-21T09:00:00", "c")


def test_a_one_member_rotation_with_an_override_ahead() -> None:
    o = Override("z", utc("2026-12-09T00:00"), utc("2026-12-10T00:00"))
    r = rotation("a", overrides=(o,))
    assert on(r, "2026-12-08T00:00:00") == ("a", None, "2026-12-09T00:00:00", "z")
    assert on(r, "2026-12-10T00:00:00") == ("a", "2026-12-10T00:00:00", None, "")


def test_segments_list_shifts_and_overrides_in_order() -> None:
    o = Override("z", utc("2026-12-09T00:00"), utc("2026-12-10T00:00"))
    r = rotation(overrides=(o,))
    listed = [(s.member, shown(s.start), shown(s.end), s.override)
              for s in segments(r, utc("2026-12-08T00:00"), utc("2026-12-15T00:00"))]
    assert listed == [
        ("a", "2026-12-07T09:00:00", "2026-12-09T00:00:00", False),
        ("z", "2026-12-09T00:00:00", "2026-12-10T00:00:00", True),
        ("a", "2026-12-10T00:00:00", "2026-12-14T09:00:00", False),
        ("b", "2026-12-14T09:00:00", "2026-12-21T09:00:00", False)]
