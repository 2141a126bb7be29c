"""Time intervals (agent.routing.timeintervals); cases ported from Alertmanager's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.routing.timeintervals import (
    InclusiveRange,
    TimeInterval,
    TimeIntervalError,
    TimeRange,
    in_any,
    parse_time_interval,
)

BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")


def at(text: str) -> datetime:
    """Go's RFC822Z layout, as used by the Alertmanager tests: '02 Jan 06 15:04 -0700'."""
    return datetime.strptime(text, "%d %b %y %H:%M %z")


def check(interval: TimeInterval, inside: list[str], outside: list[str]) -> None:
    assert [t for t in inside if not interval.contains(at(t))] == []
    assert [t for t in outside if interval.contains(at(t))] == []


# --- Alertmanager's timeIntervalTestCases / yamlUnmarshalTestCases / completeTestCases ---


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        pytest.param(
            {},
            ["02 Jan 06 15:04 +0000", "03 Jan 07 10:04 +0000", "04 Jan 06 09:04 +0000"],
            [],
            id="empty-matches-all",
        ),
        pytest.param(
            {
                "times": [{"start_time": "09:00", "end_time": "17:00"}],
                "weekdays": ["monday:friday"],
            },
            ["04 May 20 15:04 +0000", "05 May 20 10:04 +0000", "09 Jun 20 09:04 +0000"],
            ["03 May 20 15:04 +0000", "04 May 20 08:59 +0000", "05 May 20 05:00 +0000"],
            id="nine-to-five-weekdays",
        ),
        pytest.param(
            {"days_of_month": ["4:6"], "months": ["april"], "years": ["2020"]},
            ["04 Apr 20 15:04 +0000", "05 Apr 20 00:00 +0000", "06 Apr 20 23:05 +0000"],
            [
                "03 May 18 15:04 +0000",
                "03 Apr 20 23:59 +0000",
                "04 Jun 20 23:59 +0000",
                "06 Apr 19 23:59 +0000",
                "07 Apr 20 00:00 +0000",
            ],
            id="easter-2020",
        ),
        pytest.param(
            {"days_of_month": ["-3:-1"]},
            [
                "31 Jan 20 15:04 +0000",
                "30 Jan 20 15:04 +0000",
                "29 Jan 20 15:04 +0000",
                "30 Jun 20 00:00 +0000",
                "29 Feb 20 23:05 +0000",
            ],
            [
                "03 May 18 15:04 +0000",
                "27 Jan 20 15:04 +0000",
                "03 Apr 20 23:59 +0000",
                "04 Jun 20 23:59 +0000",
                "06 Apr 19 23:59 +0000",
                "07 Apr 20 00:00 +0000",
                "01 Mar 20 00:00 +0000",
            ],
            id="last-three-days",
        ),
        pytest.param(
            # Not accepted by the parser (start negative, end positive); built directly.
            TimeInterval(months=(InclusiveRange(6, 6),), days_of_month=(InclusiveRange(-31, 31),)),
            ["30 Jun 20 00:00 +0000", "01 Jun 20 00:00 +0000"],
            ["31 May 20 00:00 +0000", "1 Jul 20 00:00 +0000"],
            id="out-of-bound-days-clamped",
        ),
        pytest.param(
            {
                "times": [{"start_time": "09:00", "end_time": "17:00"}],
                "weekdays": ["monday:friday"],
                "location": "Australia/Sydney",
            },
            ["06 Apr 21 13:00 +1000"],
            ["06 Apr 21 13:00 +0000"],
            id="sydney-business-hours",
        ),
        pytest.param(
            {
                "times": [{"start_time": "09:00", "end_time": "17:00"}],
                "weekdays": ["monday:friday"],
                "months": ["november"],
                "location": "Australia/Sydney",
            },
            ["01 Nov 21 09:00 +1100", "31 Oct 21 22:00 +0000"],
            ["31 Oct 21 21:00 +0000"],
            id="sydney-during-dst",
        ),
        pytest.param(
            {"days_of_month": ["-1"], "location": "America/New_York"},
            ["31 Mar 21 12:00 -0400"],
            ["30 Mar 21 12:00 -0400"],
            id="last-day-in-spring-forward-month",
        ),
        pytest.param(
            {
                "weekdays": ["monday:friday", "sunday"],
                "months": ["january:march"],
                "days_of_month": ["-7:-1"],
                "years": ["2020:2025", "2030:2035"],
                "times": [{"start_time": "09:00", "end_time": "17:00"}],
            },
            [
                "27 Jan 21 09:00 +0000",
                "28 Jan 21 16:59 +0000",
                "29 Jan 21 13:00 +0000",
                "31 Mar 25 13:00 +0000",
                "31 Jan 35 13:00 +0000",
            ],
            [
                "30 Jan 21 13:00 +0000",
                "01 Apr 21 13:00 +0000",
                "30 Jan 26 13:00 +0000",
                "31 Jan 35 17:01 +0000",
            ],
            id="last-week-of-q1-business-hours",
        ),
        pytest.param(
            {
                "weekdays": ["monday:wednesday", "saturday", "sunday"],
                "times": [{"start_time": "13:00", "end_time": "15:00"}],
                "days_of_month": ["1", "10", "20:-1"],
                "years": ["2020:2023"],
                "months": ["january:march"],
            },
            ["10 Jan 21 13:00 +0000", "30 Jan 21 14:24 +0000"],
            ["09 Jan 21 13:00 +0000", "20 Jan 21 12:59 +0000", "02 Feb 21 13:00 +0000"],
            id="complete",
        ),
        pytest.param(
            {"days_of_month": ["30:31"], "years": ["2020:2023"], "months": ["february"]},
            [],
            ["28 Feb 21 13:00 +0000", "29 Feb 20 13:00 +0000"],
            id="start-past-month-end-is-not-clamped",
        ),
    ],
)
def test_alertmanager_cases(
    spec: dict[str, Any] | TimeInterval, inside: list[str], outside: list[str]
) -> None:
    check(spec if isinstance(spec, TimeInterval) else parse_time_interval(spec), inside, outside)


def test_parsed_structure() -> None:
    interval = parse_time_interval(
        {
            "weekdays": ["monday:friday", "Sunday"],
            "times": [{"start_time": "09:00", "end_time": "17:00"}],
            "months": ["january:march", "12"],
            "days_of_month": ["-7:-1", "1"],
            "years": ["2020:2025", "2030:2035"],
            "location": "Europe/Berlin",
        }
    )
    assert interval == TimeInterval(
        times=(TimeRange(540, 1020),),
        weekdays=(InclusiveRange(1, 5), InclusiveRange(0, 0)),
        days_of_month=(InclusiveRange(-7, -1), InclusiveRange(1, 1)),
        months=(InclusiveRange(1, 3), InclusiveRange(12, 12)),
        years=(InclusiveRange(2020, 2025), InclusiveRange(2030, 2035)),
        location=BERLIN,
    )


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("00:00", "24:00", TimeRange(0, 1440)),
        ("01:35", "17:39", TimeRange(95, 1059)),
        ("09:35", "09:39", TimeRange(575, 579)),
        ("09:07", "09:08", TimeRange(547, 548)),
        # YAML 1.1 reads unquoted 9:00 and 24:00 as base-60 integers.
        (540, 1440, TimeRange(540, 1440)),
    ],
)
def test_time_ranges(start: object, end: object, expected: TimeRange) -> None:
    interval = parse_time_interval({"times": [{"start_time": start, "end_time": end}]})
    assert interval.times == (expected,)


def test_times_are_half_open_in_minutes() -> None:
    interval = parse_time_interval({"times": [{"start_time": "09:07", "end_time": "09:08"}]})
    day = datetime(2024, 5, 6, tzinfo=UTC)
    assert not interval.contains(day.replace(hour=9, minute=6, second=59))
    assert interval.contains(day.replace(hour=9, minute=7))
    assert interval.contains(day.replace(hour=9, minute=7, second=59, microsecond=999999))
    assert not interval.contains(day.replace(hour=9, minute=8))


def test_end_of_day_is_included_up_to_midnight() -> None:
    interval = parse_time_interval({"times": [{"start_time": "17:00", "end_time": "24:00"}]})
    assert interval.contains(datetime(2024, 5, 6, 23, 59, 59, tzinfo=UTC))
    assert not interval.contains(datetime(2024, 5, 7, 0, 0, tzinfo=UTC))
    assert interval.contains(datetime(2024, 5, 6, 17, 0, tzinfo=UTC))


# --- business hours in Europe/Berlin across DST -------------------------------------

BERLIN_BUSINESS = {
    "times": [{"start_time": "09:00", "end_time": "17:00"}],
    "weekdays": ["monday:friday"],
    "location": "Europe/Berlin",
}


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Friday 29 March 2024, CET (+01:00).
        (datetime(2024, 3, 29, 7, 59), False),
        (datetime(2024, 3, 29, 8, 0), True),
        (datetime(2024, 3, 29, 15, 59), True),
        (datetime(2024, 3, 29, 16, 0), False),
        # Clocks go forward on Sunday 31 March; Monday 1 April is CEST (+02:00).
        (datetime(2024, 4, 1, 6, 59), False),
        (datetime(2024, 4, 1, 7, 0), True),
        (datetime(2024, 4, 1, 14, 59), True),
        (datetime(2024, 4, 1, 15, 0), False),
        # Friday 25 October 2024, still CEST.
        (datetime(2024, 10, 25, 7, 0), True),
        (datetime(2024, 10, 25, 15, 0), False),
        # Clocks go back on Sunday 27 October; Monday 28 October is CET again.
        (datetime(2024, 10, 28, 7, 0), False),
        (datetime(2024, 10, 28, 8, 0), True),
        (datetime(2024, 10, 28, 15, 59), True),
        (datetime(2024, 10, 28, 16, 0), False),
        # Sunday 23:30 UTC is already Monday 00:30 in Berlin, but outside the hours.
        (datetime(2024, 10, 27, 23, 30), False),
        # Friday 16:30 UTC in winter is 17:30 in Berlin.
        (datetime(2024, 12, 20, 16, 30), False),
    ],
)
def test_berlin_business_hours_across_dst(utc: datetime, expected: bool) -> None:
    interval = parse_time_interval(BERLIN_BUSINESS)
    assert interval.contains(utc.replace(tzinfo=UTC)) is expected


def test_conversion_uses_the_instant_not_the_wall_clock_of_the_input() -> None:
    interval = parse_time_interval(BERLIN_BUSINESS)
    same_instant = [
        datetime(2024, 4, 1, 7, 0, tzinfo=UTC),
        datetime(2024, 4, 1, 9, 0, tzinfo=BERLIN),
        datetime(2024, 4, 1, 18, 0, tzinfo=SYDNEY),  # AEDT until 7 April
        datetime(2024, 4, 1, 0, 0, tzinfo=timezone(timedelta(hours=-7))),
    ]
    assert [interval.contains(t) for t in same_instant] == [True] * 4


def test_repeated_and_skipped_hours() -> None:
    two_to_three = parse_time_interval(
        {"times": [{"start_time": "02:00", "end_time": "03:00"}], "location": "Europe/Berlin"}
    )
    # 27 Oct 2024: 02:30 happens twice, once in CEST and once in CET; both are inside.
    assert two_to_three.contains(datetime(2024, 10, 27, 0, 30, tzinfo=UTC))
    assert two_to_three.contains(datetime(2024, 10, 27, 1, 30, tzinfo=UTC))
    # 31 Mar 2024: 01:59 CET is followed by 03:00 CEST, so the hour never happens.
    assert not two_to_three.contains(datetime(2024, 3, 31, 0, 59, tzinfo=UTC))
    assert not two_to_three.contains(datetime(2024, 3, 31, 1, 0, tzinfo=UTC))


# --- weekdays, days of month, months, years ------------------------------------------


@pytest.mark.parametrize(
    ("weekdays", "expected"),
    [
        # 2024-05-05 is a Sunday; the list gives Sunday..Saturday.
        (["monday:friday"], [False, True, True, True, True, True, False]),
        (["saturday", "sunday"], [True, False, False, False, False, False, True]),
        (["sunday:saturday"], [True] * 7),
        (["Monday:WEDNESDAY", "friday"], [False, True, True, True, False, True, False]),
        (["sunday"], [True, False, False, False, False, False, False]),
        (["saturday"], [False, False, False, False, False, False, True]),
    ],
)
def test_weekday_ranges_are_inclusive(weekdays: list[str], expected: list[bool]) -> None:
    interval = parse_time_interval({"weekdays": weekdays})
    week = [datetime(2024, 5, 5, 12, tzinfo=UTC) + timedelta(days=n) for n in range(7)]
    assert [interval.contains(day) for day in week] == expected


def matching_days(interval: TimeInterval, year: int, month: int) -> list[int]:
    first = datetime(year, month, 1, 12, tzinfo=UTC)
    days = [first + timedelta(days=n) for n in range(31)]
    return [d.day for d in days if d.month == month and interval.contains(d)]


@pytest.mark.parametrize(
    ("days_of_month", "year", "month", "expected"),
    [
        (["-1"], 2024, 2, [29]),
        (["-1"], 2023, 2, [28]),
        (["-1"], 2024, 4, [30]),
        (["-3:-1"], 2024, 2, [27, 28, 29]),
        (["-3:-1"], 2023, 2, [26, 27, 28]),
        (["-3:-1"], 2024, 1, [29, 30, 31]),
        (["28:31"], 2023, 2, [28]),
        (["28:31"], 2024, 2, [28, 29]),
        (["29:31"], 2023, 2, []),
        (["29"], 2024, 2, [29]),
        (["1:-1"], 2023, 2, list(range(1, 29))),
        (["1", "15", "-1"], 2023, 2, [1, 15, 28]),
        # Clamping as in Alertmanager: a negative start before day 1 reaches back to
        # day 1, a negative end before day 1 matches nothing.
        (["-31:-29"], 2024, 1, [1, 2, 3]),
        (["-31:-29"], 2024, 4, [1, 2]),
        (["-31:-29"], 2024, 2, [1]),
        (["-31:-29"], 2023, 2, []),
        (["-29:-28"], 2023, 2, [1]),
    ],
)
def test_days_of_month_negative_and_clamped(
    days_of_month: list[str], year: int, month: int, expected: list[int]
) -> None:
    interval = parse_time_interval({"days_of_month": days_of_month})
    assert matching_days(interval, year, month) == expected


def test_days_of_month_clamp_a_negative_start_with_a_positive_end() -> None:
    interval = TimeInterval(days_of_month=(InclusiveRange(-31, 31),))
    assert matching_days(interval, 2024, 2) == list(range(1, 30))
    assert matching_days(interval, 2023, 4) == list(range(1, 31))


def test_days_of_month_are_judged_in_the_location() -> None:
    # 29 Feb 2024 23:30 UTC is already 1 March in Berlin.
    last_day = parse_time_interval({"days_of_month": ["-1"], "location": "Europe/Berlin"})
    assert not last_day.contains(datetime(2024, 2, 29, 23, 30, tzinfo=UTC))
    assert last_day.contains(datetime(2024, 2, 29, 22, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    ("months", "inside", "outside"),
    [
        (["january:march"], [1, 2, 3], [4, 12]),
        (["January:december"], list(range(1, 13)), []),
        (["DECEMBER"], [12], [11, 1]),
        (["12"], [12], [11]),
        (["2:4"], [2, 3, 4], [1, 5]),
        (["may", "september:october"], [5, 9, 10], [6, 8, 11]),
        (["june:8"], [6, 7, 8], [5, 9]),
    ],
)
def test_months_by_name_or_number(months: list[str], inside: list[int], outside: list[int]) -> None:
    interval = parse_time_interval({"months": months})
    assert [m for m in inside if not interval.contains(datetime(2023, m, 15, tzinfo=UTC))] == []
    assert [m for m in outside if interval.contains(datetime(2023, m, 15, tzinfo=UTC))] == []


def test_year_ranges_are_inclusive_and_judged_in_the_location() -> None:
    utc = parse_time_interval({"years": ["2020:2022"]})
    tokyo = parse_time_interval({"years": ["2020:2022"], "location": "Asia/Tokyo"})
    new_year_in_tokyo = datetime(2022, 12, 31, 16, 0, tzinfo=UTC)
    assert utc.contains(new_year_in_tokyo)
    assert not tokyo.contains(new_year_in_tokyo)
    assert utc.contains(datetime(2020, 1, 1, tzinfo=UTC))
    assert not utc.contains(datetime(2019, 12, 31, 23, 59, tzinfo=UTC))
    assert not utc.contains(datetime(2023, 1, 1, tzinfo=UTC))


def test_years_accept_integers_from_yaml() -> None:
    assert parse_time_interval({"years": [2021], "days_of_month": [1, -1]}) == TimeInterval(
        years=(InclusiveRange(2021, 2021),),
        days_of_month=(InclusiveRange(1, 1), InclusiveRange(-1, -1)),
    )


@pytest.mark.parametrize(
    "spec",
    [
        {"weekdays": None, "times": None, "location": None},
        {"weekdays": [], "times": [], "days_of_month": [], "months": [], "years": []},
    ],
)
def test_empty_fields_match_everything(spec: dict[str, Any]) -> None:
    interval = parse_time_interval(spec)
    assert interval == TimeInterval()
    assert interval.contains(datetime(1999, 12, 31, 23, 59, tzinfo=UTC))


def test_location_defaults_to_utc() -> None:
    nine_to_five = {"times": [{"start_time": "09:00", "end_time": "17:00"}]}
    for spec in (nine_to_five, {**nine_to_five, "location": "UTC"}):
        interval = parse_time_interval(spec)
        assert interval.location is UTC
        assert interval.contains(datetime(2024, 1, 1, 9, 0, tzinfo=UTC))
        assert not interval.contains(datetime(2024, 1, 1, 9, 0, tzinfo=BERLIN))


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TimeInterval().contains(datetime(2024, 1, 1, 12, 0))


# --- in_any (Alertmanager's TestIntervener_Mutes) ------------------------------------

EVENINGS = [
    parse_time_interval(
        {
            "times": [
                {"start_time": "00:00", "end_time": "09:00"},
                {"start_time": "17:00", "end_time": "24:00"},
            ],
            "location": "Australia/Sydney",
        }
    )
]
WEEKENDS = [
    parse_time_interval({"weekdays": ["saturday", "sunday"], "location": "Australia/Sydney"})
]


@pytest.mark.parametrize(
    ("now", "evenings", "weekends"),
    [
        (datetime(2024, 1, 1, 0, 0, tzinfo=SYDNEY), True, False),
        (datetime(2024, 1, 1, 9, 0, tzinfo=SYDNEY), False, False),
        (datetime(2024, 1, 6, 10, 0, tzinfo=SYDNEY), False, True),
        (datetime(2024, 1, 6, 17, 0, tzinfo=SYDNEY), True, True),
        (datetime(2024, 1, 1, 10, 0, tzinfo=UTC), True, False),
        (datetime(2024, 1, 6, 10, 0, tzinfo=UTC), True, True),
    ],
)
def test_in_any(now: datetime, evenings: bool, weekends: bool) -> None:
    assert in_any(EVENINGS, now) is evenings
    assert in_any(WEEKENDS, now) is weekends
    assert in_any(EVENINGS + WEEKENDS, now) is (evenings or weekends)


def test_in_any_of_nothing_is_false() -> None:
    assert in_any([], datetime(2024, 1, 1, tzinfo=UTC)) is False


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"times": [{"start_time": "01:99", "end_time": "23:59"}]},
            "times[0]: couldn't parse timestamp '01:99'",
        ),
        (
            {"times": [{"start_time": "00:00", "end_time": "99:99"}]},
            "couldn't parse timestamp '99:99'",
        ),
        (
            {"times": [{"start_time": "9:00", "end_time": "17:00"}]},
            "couldn't parse timestamp '9:00'",
        ),
        (
            {"times": [{"start_time": "12:30", "end_time": "24:01"}]},
            "couldn't parse timestamp '24:01'",
        ),
        (
            {"times": [{"start_time": "24:00", "end_time": "17:41"}]},
            "start time 24:00 must be before end time 17:41",
        ),
        (
            {"times": [{"start_time": "17:31", "end_time": "17:31"}]},
            "start time 17:31 must be before end time 17:31",
        ),
        (
            {"times": [{"start_time": "09:30", "end_time": "07:41"}]},
            "start time 09:30 must be before end time 07:41",
        ),
        (
            {"times": [{"start_time": "14:03"}]},
            "times[0]: both start and end times must be provided",
        ),
        (
            {"times": [{"start_time": "", "end_time": "10:00"}]},
            "both start and end times must be provided",
        ),
        ({"times": [{"start_time": "08:00", "end_time": 1441}]}, "couldn't parse timestamp 1441"),
        ({"times": [{}, {"start_time": "08:00", "end_time": "09:00", "end": 1}]}, "times[0]: both"),
        (
            {"times": [{"start_time": "08:00", "end_tme": "09:00"}]},
            "times[0]: unknown key 'end_tme' in a time range; did you mean 'end_time'?",
        ),
        (
            {"times": [{"start_time": "08:00", "end_time": "09:00", "end": 1}]},
            "times[0]: unknown key 'end' in a time range (known: start_time, end_time)",
        ),
        ({"times": ["09:00-17:00"]}, "times[0]: expected a mapping with start_time and end_time"),
        (
            {"times": {"start_time": "09:00", "end_time": "17:00"}},
            "times: expected a list, got dict",
        ),
        ({"weekdays": ["friday:monday"]}, "weekdays[0]: start day friday is after end day monday"),
        ({"weekdays": ["blurgsday:flurgsday"]}, "weekdays[0]: 'blurgsday' is not a valid weekday"),
        ({"weekdays": ["monday", "fri"]}, "weekdays[1]: 'fri' is not a valid weekday"),
        ({"weekdays": ["1:3"]}, "'1' is not a valid weekday"),
        ({"weekdays": ["-2:-1"]}, "'-2' is not a valid weekday"),
        ({"weekdays": ["monday:tuesday:friday"]}, "couldn't parse range 'monday:tuesday:friday'"),
        ({"weekdays": "monday:friday"}, "weekdays: expected a list, got str 'monday:friday'"),
        ({"weekdays": [True]}, "weekdays[0]: expected a string, got bool True"),
        (
            {"days_of_month": ["0"]},
            "days_of_month[0]: 0 is not a valid day of the month: out of range",
        ),
        ({"days_of_month": ["-50:-20"]}, "-50 is not a valid day of the month: out of range"),
        ({"days_of_month": ["1:50"]}, "50 is not a valid day of the month: out of range"),
        ({"days_of_month": ["-15:5"]}, "end day must be negative if start day is negative"),
        ({"days_of_month": ["10:-25"]}, "end day -25 is always before start day 10"),
        ({"days_of_month": ["5:1"]}, "end day 1 is always before start day 5"),
        ({"days_of_month": ["first"]}, "'first' is not a valid day of the month"),
        ({"days_of_month": [65]}, "65 looks like the range '1:5' read by YAML as a base-60 number"),
        ({"months": ["martius:june"]}, "months[0]: 'martius' is not a valid month"),
        ({"months": ["march:junius"]}, "'junius' is not a valid month"),
        ({"months": ["december:january"]}, "end month january is before start month december"),
        ({"months": ["13"]}, "13 is not a valid month: out of range 1-12"),
        ({"months": ["0:3"]}, "0 is not a valid month: out of range 1-12"),
        ({"years": ["2022:2020"]}, "years[0]: end year 2020 is before start year 2022"),
        ({"years": ["twenty"]}, "'twenty' is not a valid year"),
        ({"location": "Mars/Olympus_Mons"}, "location: unknown time zone 'Mars/Olympus_Mons'"),
        ({"location": "europe/berlin"}, "location: unknown time zone 'europe/berlin'"),
        ({"location": "../../etc/passwd"}, "location: unknown time zone"),
        ({"location": "Local"}, "location: 'Local' is not supported"),
        ({"location": ""}, "location: expected a time zone name, got ''"),
        ({"location": 1}, "location: expected a time zone name, got 1"),
        (
            {"weekday": ["monday"]},
            "unknown key 'weekday' in time interval; did you mean 'weekdays'?",
        ),
        ({"name": "x"}, "unknown key 'name' in time interval (known: times, weekdays"),
    ],
)
def test_errors_are_precise(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(TimeIntervalError) as info:
        parse_time_interval(spec)
    assert message in str(info.value)


def test_non_mapping_spec_is_refused() -> None:
    with pytest.raises(TimeIntervalError, match="must be a mapping, got list"):
        parse_time_interval(["weekdays"])  # type: ignore[arg-type]


def test_time_interval_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a valid weekday"):
        parse_time_interval({"weekdays": ["funday"]})


def test_intervals_are_frozen_and_hashable() -> None:
    a = parse_time_interval(BERLIN_BUSINESS)
    assert a == parse_time_interval(BERLIN_BUSINESS)
    assert len({a, parse_time_interval(BERLIN_BUSINESS), TimeInterval()}) == 2
    with pytest.raises(AttributeError):
        a.location = UTC  # type: ignore[misc]
