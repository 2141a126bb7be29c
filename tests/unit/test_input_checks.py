"""The pure input checks: the time window, the iso formatter, payload caps, JSON depth, and
the repeat digest (issue 10, items 3 and 8)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.api.bodies import too_deep
from agent.domain import Alert, iso
from agent.ingest import alertmanager, generic, grafana
from agent.ingest.common import (
    MAX_TIME,
    MIN_TIME,
    LimitExceeded,
    Limits,
    TimeOutOfWindow,
    parse_time,
)
from agent.services.ingest import digest

SMALL = Limits(max_alerts=2, max_labels=3, max_label_bytes=16, max_annotation_bytes=32)


def am(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "alerts": list(alerts)}


def limit_of(call: Any) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        call()
    return info.value


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                  "9001-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z"])
def test_times_outside_the_window_are_refused(text: str) -> None:
    with pytest.raises(TimeOutOfWindow) as info:
        parse_time(text, "alerts[0].startsAt")
    assert info.value.param == "alerts[0].startsAt" and "1970" in info.value.message


@pytest.mark.parametrize(("text", "expected"), [("1970-01-01T00:00:00Z", MIN_TIME),
                                                ("9000-12-31T23:59:59Z", MAX_TIME - 1),
                                                ("0001-01-01T00:00:00Z", None)])
def test_the_window_edges_and_the_zero_time(text: str, expected: float | None) -> None:
    assert parse_time(text, "t") == expected


def test_generic_times_share_the_window() -> None:
    mapping = generic.compile_mapping("m", {"alertname": "A", "ends_at": "{{ t }}"})
    for bad in ("-1", "9" * 20, "9999-12-31T23:59:59-01:00", "0500-01-01 00:00:00"):
        with pytest.raises(generic.IngestError) as info:
            generic.parse(mapping, {"t": bad})
        assert info.value.param == "ends_at", bad
    assert generic.parse(mapping, {"t": "0"}).alerts[0].ends_at == 0.0


@pytest.mark.parametrize(("ts", "text"), [
    (0.0, "1970-01-01T00:00:00.000Z"),
    (1776162300.123, "2026-04-14T10:25:00.123Z"),
    (-46388678400.0, "0500-01-01T00:00:00.000Z"),
    (-62135596800.0, "0001-01-01T00:00:00.000Z"),
    (253402304399.0, "9999-12-31T23:59:59.999Z"),
    (-62135600400.0, "0001-01-01T00:00:00.000Z"),
    (1e300, "9999-12-31T23:59:59.999Z"),
    (float("inf"), None),
    (float("nan"), None),
    (None, None),
])
def test_iso_is_total_and_always_four_digit_years(ts: float | None, text: str | None) -> None:
    assert iso(ts) == text


# --- caps --------------------------------------------------------------------------------------


def test_alert_count_is_checked_before_parsing() -> None:
    # Three items that are not even alerts: the count is refused first.
    err = limit_of(lambda: alertmanager.parse(am(1, 2, 3), limits=SMALL))
    assert (err.status, err.code, err.param) == (413, "too_many_alerts", "alerts")
    assert "api.max_alerts_per_payload" in err.message


def test_labels_annotations_and_their_sizes() -> None:
    four = {"labels": {"a": "1", "b": "2", "c": "3", "d": "4"}}
    err = limit_of(lambda: alertmanager.parse(am({"labels": {"a": "1"}}, four), limits=SMALL))
    assert (err.status, err.code, err.param) == (422, "too_many_labels", "alerts[1].labels")
    err = limit_of(lambda: grafana.parse({"alerts": [{"annotations": {"a": "x" * 33}}]},
                                         limits=SMALL))
    assert (err.code, err.param) == ("annotation_too_long", "alerts[0].annotations.a")
    err = limit_of(lambda: alertmanager.parse(am({"labels": {"a": "é" * 9}}), limits=SMALL))
    assert (err.code, err.param) == ("label_too_long", "alerts[0].labels.a")  # 18 bytes
    alertmanager.parse(am({"labels": {"a": "é" * 8, "b": "x" * 16}}), limits=SMALL)


def test_legacy_grafana_and_generic_are_capped() -> None:
    legacy = {"ruleName": "R", "state": "alerting", "tags": {"a": "1", "b": "2", "c": "3"}}
    err = limit_of(lambda: grafana.parse(legacy, limits=SMALL))
    assert (err.code, err.param) == ("too_many_labels", "labels")
    mapping = generic.compile_mapping("m", {"alertname": "{{ n }}", "alerts": "items"})
    err = limit_of(lambda: generic.parse(mapping, {"items": [{"n": "a"}] * 3}, SMALL))
    assert (err.code, err.param) == ("too_many_alerts", "items")
    err = limit_of(lambda: generic.parse(mapping, {"items": [{"n": "a"}, {"n": "x" * 17}]},
                                         SMALL))
    assert (err.code, err.param) == ("label_too_long", "items[1].labels.alertname")


# --- depth -------------------------------------------------------------------------------------


def deep(n: int) -> Any:
    value: Any = "leaf"
    for _ in range(n):
        value = {"k": [value]} if n % 2 else [value]
    return value


@pytest.mark.parametrize(("value", "limit", "expected"), [
    ({}, 1, False), ([], 1, False), ("text", 0, False),
    ({"a": [1, {"b": 2}]}, 3, False), ({"a": [1, {"b": 2}]}, 2, True),
    (deep(64), 64, False), (deep(65), 64, True), (deep(500), 64, True),
])
def test_too_deep(value: object, limit: int, expected: bool) -> None:
    assert too_deep(value, limit) is expected


# --- the repeat digest -------------------------------------------------------------------------


def test_the_digest_sees_every_field_a_repeat_may_change() -> None:
    base = Alert(source="grafana", fingerprint="f", status="firing", labels={"a": "1"},
                 annotations={"summary": "s"}, extra={"values": {"B": 84.2}},
                 generator_url="http://g/1")
    same = Alert(source="grafana", fingerprint="f", status="firing", labels={"a": "1"},
                 annotations={"summary": "s"}, extra={"values": {"B": 84.2}},
                 generator_url="http://g/1")
    assert digest(base) == digest(same)
    for change in ({"extra": {"values": {"B": 91.5}}}, {"generator_url": "http://g/2"},
                   {"annotations": {"summary": "t"}}, {"ends_at": 1.0}):
        changed = Alert(**{**{f: getattr(base, f) for f in base.__slots__}, **change})
        assert digest(changed) != digest(base), change
