"""Alertmanager ``time_intervals`` semantics (a port of its ``timeinterval`` package).

Pure: no I/O, no clock (the instant is always passed in) and no imports from the rest
of the project. Each field is a list of ranges; a time is inside an interval when every
non-empty field has a range containing it, evaluated in the interval's ``location``.
"""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "InclusiveRange",
    "TimeInterval",
    "TimeIntervalError",
    "TimeRange",
    "in_any",
    "parse_time_interval",
]


class TimeIntervalError(ValueError):
    """A ``time_intervals`` entry that does not follow Alertmanager's rules."""


WEEKDAYS = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
}
MONTHS = {
    "january": 1,
    "february": 2,
    "march": 3,
    "april": 4,
    "may": 5,
    "june": 6,
    "july": 7,
    "august": 8,
    "september": 9,
    "october": 10,
    "november": 11,
    "december": 12,
}
_WEEKDAY_NAMES = {v: k for k, v in WEEKDAYS.items()}
_MONTH_NAMES = {v: k for k, v in MONTHS.items()}
_FIELDS = ("times", "weekdays", "days_of_month", "months", "years", "location")
_TIME_FIELDS = ("start_time", "end_time")
# Alertmanager's own pattern: two-digit hours, and 24:00 only as the end of the day.
_CLOCK_RE = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Minutes of the day, ``[start_minute, end_minute)``; 24:00 is 1440."""

    start_minute: int
    end_minute: int


@dataclass(frozen=True, slots=True)
class InclusiveRange:
    """``[begin, end]``; weekdays count from Sunday = 0, as Go's ``time.Weekday``."""

    begin: int
    end: int


@dataclass(frozen=True)
class TimeInterval:
    """One entry of a named ``time_intervals`` list; an empty field matches everything."""

    times: tuple[TimeRange, ...] = ()
    weekdays: tuple[InclusiveRange, ...] = ()
    days_of_month: tuple[InclusiveRange, ...] = ()
    months: tuple[InclusiveRange, ...] = ()
    years: tuple[InclusiveRange, ...] = ()
    location: tzinfo = UTC

    def contains(self, t: datetime) -> bool:
        """Whether the aware instant ``t``, seen in ``location``, falls in this interval."""
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError("TimeInterval.contains needs a timezone-aware datetime")
        local = t.astimezone(self.location)
        minute = local.hour * 60 + local.minute
        weekday = (local.weekday() + 1) % 7  # Python counts from Monday = 0
        return (
            (not self.times or any(r.start_minute <= minute < r.end_minute for r in self.times))
            and (not self.days_of_month or self._in_days_of_month(local))
            and (not self.months or _in(self.months, local.month))
            and (not self.weekdays or _in(self.weekdays, weekday))
            and (not self.years or _in(self.years, local.year))
        )

    def _in_days_of_month(self, local: datetime) -> bool:
        days = _days_in_month(local.year, local.month)
        for r in self.days_of_month:
            begin = days + r.begin + 1 if r.begin < 0 else r.begin
            end = days + r.end + 1 if r.end < 0 else r.end
            # Exactly as Alertmanager: a start past the month's end never matches, and
            # both ends are clamped so a range cannot spill into another month.
            if begin > days:
                continue
            begin = _clamp(begin, -days, days)
            end = _clamp(end, -days, days)
            if begin <= local.day <= end:
                return True
        return False


def in_any(intervals: Sequence[TimeInterval], t: datetime) -> bool:
    """Whether ``t`` falls in at least one of the intervals (False for none)."""
    return any(interval.contains(t) for interval in intervals)


def parse_time_interval(spec: Mapping[str, Any]) -> TimeInterval:
    """Build a TimeInterval from one YAML ``time_intervals`` entry, validating as Alertmanager."""
    if not isinstance(spec, Mapping):
        raise TimeIntervalError(f"a time interval must be a mapping, got {type(spec).__name__}")
    _reject_unknown_keys(spec, _FIELDS, "time interval")
    return TimeInterval(
        times=tuple(_parse_time_range(item, f"times[{i}]") for i, item in _list(spec, "times")),
        weekdays=_ranges(spec, "weekdays", _weekday_range),
        days_of_month=_ranges(spec, "days_of_month", _day_of_month_range),
        months=_ranges(spec, "months", _month_range),
        years=_ranges(spec, "years", _year_range),
        location=_location(spec.get("location")),
    )


def _in(ranges: tuple[InclusiveRange, ...], value: int) -> bool:
    return any(r.begin <= value <= r.end for r in ranges)


def _clamp(n: int, low: int, high: int) -> int:
    return max(low, min(n, high))


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _reject_unknown_keys(spec: Mapping[Any, Any], known: tuple[str, ...], what: str) -> None:
    for key in spec:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            raise TimeIntervalError(f"unknown key {key!r} in {what}{hint}")


def _list(spec: Mapping[str, Any], key: str) -> list[tuple[int, Any]]:
    value = spec.get(key)
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TimeIntervalError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
    return list(enumerate(value))


def _ranges(
    spec: Mapping[str, Any], key: str, parse: Callable[[str], InclusiveRange]
) -> tuple[InclusiveRange, ...]:
    out = []
    for i, item in _list(spec, key):
        where = f"{key}[{i}]"
        try:
            out.append(parse(_range_text(item, key)))
        except TimeIntervalError as exc:
            raise TimeIntervalError(f"{where}: {exc}") from None
    return tuple(out)


def _range_text(item: Any, key: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, int) and not isinstance(item, bool):
        if key in ("days_of_month", "months") and item >= 60:
            # YAML 1.1 reads an unquoted 1:5 as the base-60 number 65.
            raise TimeIntervalError(
                f"{item} looks like the range '{item // 60}:{item % 60}' read by YAML as a "
                "base-60 number; quote the range"
            )
        return str(item)
    raise TimeIntervalError(f"expected a string, got {type(item).__name__} {item!r}")


def _split_range(text: str) -> tuple[str, str]:
    """``'a:b'`` -> (a, b) and ``'a'`` -> (a, a), lower-cased as Alertmanager does."""
    text = text.lower()
    if ":" not in text:
        return text, text
    parts = text.split(":")
    if len(parts) != 2:
        raise TimeIntervalError(f"couldn't parse range {text!r}, invalid format")
    return parts[0], parts[1]


def _int(text: str, what: str) -> int:
    if _INT_RE.fullmatch(text) is None:
        raise TimeIntervalError(f"{text!r} is not a valid {what}")
    return int(text)


def _weekday_range(text: str) -> InclusiveRange:
    names = _split_range(text)
    for name in names:
        if name not in WEEKDAYS:
            raise TimeIntervalError(f"{name!r} is not a valid weekday")
    begin, end = WEEKDAYS[names[0]], WEEKDAYS[names[1]]
    if begin > end:
        raise TimeIntervalError(
            f"start day {names[0]} is after end day {names[1]} (weeks run sunday to "
            "saturday and ranges do not wrap; list two ranges instead)"
        )
    return InclusiveRange(begin, end)


def _day_of_month_range(text: str) -> InclusiveRange:
    begin, end = (_int(part, "day of the month") for part in _split_range(text))
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise TimeIntervalError(f"{day} is not a valid day of the month: out of range")
    if begin < 0 < end:
        raise TimeIntervalError("end day must be negative if start day is negative")
    # Month lengths vary, so as Alertmanager only ranges wrong in every month (judged
    # on a 28-day one) are rejected; the rest are clamped at match time.
    check_begin = 28 + begin if begin < 0 else begin
    check_end = 28 + end if end < 0 else end
    if check_begin > check_end:
        raise TimeIntervalError(f"end day {end} is always before start day {begin}")
    return InclusiveRange(begin, end)


def _month(text: str) -> int:
    if text in MONTHS:
        return MONTHS[text]
    if _INT_RE.fullmatch(text) is None:
        raise TimeIntervalError(f"{text!r} is not a valid month")
    number = int(text)
    # Alertmanager accepts any number here (a range that never matches); refuse instead.
    if not 1 <= number <= 12:
        raise TimeIntervalError(f"{number} is not a valid month: out of range 1-12")
    return number


def _month_range(text: str) -> InclusiveRange:
    begin, end = (_month(part) for part in _split_range(text))
    if begin > end:
        raise TimeIntervalError(
            f"end month {_MONTH_NAMES[end]} is before start month {_MONTH_NAMES[begin]} "
            "(ranges do not wrap around the new year; list two ranges instead)"
        )
    return InclusiveRange(begin, end)


def _year_range(text: str) -> InclusiveRange:
    begin, end = (_int(part, "year") for part in _split_range(text))
    if begin > end:
        raise TimeIntervalError(f"end year {end} is before start year {begin}")
    return InclusiveRange(begin, end)


def _parse_time_range(item: Any, where: str) -> TimeRange:
    if not isinstance(item, Mapping):
        raise TimeIntervalError(
            f"{where}: expected a mapping with start_time and end_time, got {item!r}"
        )
    try:
        _reject_unknown_keys(item, _TIME_FIELDS, "a time range")
        if item.get("start_time") in (None, "") or item.get("end_time") in (None, ""):
            raise TimeIntervalError("both start and end times must be provided")
        start = _minute_of_day(item["start_time"])
        end = _minute_of_day(item["end_time"])
        if start >= end:
            raise TimeIntervalError(
                f"start time {_clock(start)} must be before end time {_clock(end)}"
            )
    except TimeIntervalError as exc:
        raise TimeIntervalError(f"{where}: {exc}") from None
    return TimeRange(start, end)


def _minute_of_day(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 (PyYAML) reads an unquoted 17:00 as the base-60 integer 1020.
        if not 0 <= value <= _MINUTES_PER_DAY:
            raise TimeIntervalError(f"couldn't parse timestamp {value!r}, invalid format")
        return value
    if not isinstance(value, str) or _CLOCK_RE.fullmatch(value) is None:
        raise TimeIntervalError(
            f"couldn't parse timestamp {value!r}, invalid format (want HH:MM, 00:00 to 24:00)"
        )
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _location(value: Any) -> tzinfo:
    if value is None or value == "UTC":
        # Built in, so the default works even without a time zone database.
        return UTC
    if not isinstance(value, str) or not value:
        raise TimeIntervalError(f"location: expected a time zone name, got {value!r}")
    if value == "Local":
        # Go would use the host's zone; the result would then depend on the machine.
        raise TimeIntervalError("location: 'Local' is not supported; name an IANA time zone")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeIntervalError(f"location: unknown time zone {value!r}") from exc
