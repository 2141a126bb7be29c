"""Alertmanager webhook payloads -> alerts (agent.ingest.alertmanager, agent.ingest.common)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest

from agent.domain import AlertStatus, fingerprint_of
from agent.ingest import IngestError, parse_time, str_map
from agent.ingest.alertmanager import SOURCE, parse

# The shared samples (/work/shared/samples/alertmanager-*.json), field for field.
GENERATOR_URL = "http://prometheus.example.com:9090/graph?g0.expr=node_cpu_usage+%3E+0.9&g0.tab=1"
GROUP_KEY = '{}/{severity=~"warning|critical"}:{alertname="HighCPUUsage", cluster="prod-eu"}'


def _labels(instance: str) -> dict[str, str]:
    return {
        "alertname": "HighCPUUsage",
        "cluster": "prod-eu",
        "instance": instance,
        "job": "node",
        "service": "api-gateway",
        "severity": "warning",
    }


def _annotations(server: str, value: str) -> dict[str, str]:
    return {
        "summary": f"CPU usage above 90% on {server}",
        "description": f"CPU usage is {value}% (threshold 90%) for more than 5 minutes.",
        "runbook_url": "https://runbooks.example.com/cpu",
    }


def _group(status: str) -> dict[str, Any]:
    return {
        "receiver": "alert-agent",
        "status": status,
        "groupLabels": {"alertname": "HighCPUUsage", "cluster": "prod-eu"},
        "commonLabels": {
            "alertname": "HighCPUUsage",
            "cluster": "prod-eu",
            "job": "node",
            "service": "api-gateway",
            "severity": "warning",
        },
        "commonAnnotations": {"runbook_url": "https://runbooks.example.com/cpu"},
        "externalURL": "http://alertmanager.example.com:9093",
        "version": "4",
        "groupKey": GROUP_KEY,
        "truncatedAlerts": 0,
    }


def firing_sample() -> dict[str, Any]:
    return {
        **_group("firing"),
        "alerts": [
            {
                "status": "firing",
                "labels": _labels("prod-server-3:9100"),
                "annotations": _annotations("prod-server-3", "92.4"),
                "startsAt": "2026-04-14T10:25:00.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": GENERATOR_URL,
                "fingerprint": "3f2a9c1b7d4e5a60",
            },
            {
                "status": "firing",
                "labels": _labels("prod-server-4:9100"),
                "annotations": _annotations("prod-server-4", "95.1"),
                "startsAt": "2026-04-14T10:26:30.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": GENERATOR_URL,
                "fingerprint": "9b0e61d2c8a4f713",
            },
        ],
    }


def resolved_sample() -> dict[str, Any]:
    return {
        **_group("resolved"),
        "alerts": [
            {
                "status": "resolved",
                "labels": _labels("prod-server-3:9100"),
                "annotations": _annotations("prod-server-3", "92.4"),
                "startsAt": "2026-04-14T10:25:00.123Z",
                "endsAt": "2026-04-14T10:41:00.456Z",
                "generatorURL": GENERATOR_URL,
                "fingerprint": "3f2a9c1b7d4e5a60",
            }
        ],
    }


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def with_alert(**fields: Any) -> dict[str, Any]:
    """The firing sample cut to its first alert, with ``fields`` replaced (None deletes)."""
    payload = firing_sample()
    alert = payload["alerts"][0]
    for key, value in fields.items():
        if value is None:
            alert.pop(key, None)
        else:
            alert[key] = value
    payload["alerts"] = [alert]
    return payload


def error_of(payload: object, **kwargs: Any) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse(payload, **kwargs)
    return info.value


# --- the samples -------------------------------------------------------------------------------


def test_firing_sample_every_field_lands() -> None:
    batch = parse(firing_sample())

    assert batch.source == SOURCE == "alertmanager"
    assert len(batch.alerts) == 2
    first, second = batch.alerts
    assert first.source == "alertmanager"
    assert first.status == AlertStatus.FIRING
    assert first.fingerprint == "3f2a9c1b7d4e5a60"
    assert second.fingerprint == "9b0e61d2c8a4f713"
    assert first.labels == _labels("prod-server-3:9100")
    assert second.labels["instance"] == "prod-server-4:9100"
    assert first.annotations == _annotations("prod-server-3", "92.4")
    assert first.starts_at == pytest.approx(ts("2026-04-14T10:25:00.123+00:00"), abs=1e-6)
    assert second.starts_at == pytest.approx(ts("2026-04-14T10:26:30+00:00"), abs=1e-6)
    assert first.ends_at is None  # the Go zero time of a firing alert
    assert second.ends_at is None
    assert first.generator_url == GENERATOR_URL
    assert first.extra is None


def test_firing_sample_group_holds_every_top_level_field_but_alerts() -> None:
    batch = parse(firing_sample())

    assert batch.group == _group("firing")
    assert "alerts" not in batch.group


def test_resolved_sample() -> None:
    batch = parse(resolved_sample())

    (alert,) = batch.alerts
    assert alert.status == AlertStatus.RESOLVED
    assert alert.fingerprint == "3f2a9c1b7d4e5a60"
    assert alert.starts_at == pytest.approx(ts("2026-04-14T10:25:00.123+00:00"), abs=1e-6)
    assert alert.ends_at == pytest.approx(ts("2026-04-14T10:41:00.456+00:00"), abs=1e-6)
    assert batch.group["status"] == "resolved"


def test_parse_does_not_mutate_the_payload() -> None:
    payload = firing_sample()
    before = copy.deepcopy(payload)
    batch = parse(payload)
    batch.alerts[0].labels["x"] = "y"
    batch.group["receiver"] = "other"

    assert payload == before


# --- leniency ----------------------------------------------------------------------------------


def test_unknown_top_level_fields_are_kept_verbatim_in_group() -> None:
    payload = firing_sample()
    payload["notification_reason"] = "repeat_interval"
    payload["routeLabels"] = {"team": "infra"}
    payload["futureField"] = [1, {"a": None}]

    group = parse(payload).group

    assert group["notification_reason"] == "repeat_interval"
    assert group["routeLabels"] == {"team": "infra"}
    assert group["futureField"] == [1, {"a": None}]


def test_unknown_alert_fields_go_to_extra() -> None:
    payload = with_alert(silenceURL="http://am/silence", values={"A": 1.5})

    (alert,) = parse(payload).alerts

    assert alert.extra == {"silenceURL": "http://am/silence", "values": {"A": 1.5}}


def test_missing_version_is_accepted_when_alerts_is_a_list() -> None:
    payload = firing_sample()
    del payload["version"]

    assert len(parse(payload).alerts) == 2


def test_numeric_version_4_is_accepted() -> None:
    payload = firing_sample()
    payload["version"] = 4

    assert len(parse(payload).alerts) == 2


def test_empty_alert_list_is_an_empty_batch() -> None:
    payload = firing_sample()
    payload["alerts"] = []

    batch = parse(payload)

    assert batch.alerts == []
    assert batch.group["receiver"] == "alert-agent"


def test_missing_fingerprint_is_the_label_set_fingerprint() -> None:
    (missing,) = parse(with_alert(fingerprint=None)).alerts
    (empty,) = parse(with_alert(fingerprint="")).alerts

    expected = fingerprint_of(_labels("prod-server-3:9100"))
    assert missing.fingerprint == expected
    assert empty.fingerprint == expected


def test_null_or_missing_label_maps_are_empty() -> None:
    (alert,) = parse(with_alert(annotations=None)).alerts
    payload = with_alert()
    payload["alerts"][0]["labels"] = None
    payload["alerts"][0]["fingerprint"] = ""
    (unlabelled,) = parse(payload).alerts

    assert alert.annotations == {}
    assert unlabelled.labels == {}
    assert unlabelled.fingerprint == fingerprint_of({})


def test_scalar_label_values_are_coerced_to_strings() -> None:
    labels = {"alertname": "X", "port": 9100, "ratio": 0.5, "canary": True}

    (alert,) = parse(with_alert(labels=labels)).alerts

    assert alert.labels == {"alertname": "X", "port": "9100", "ratio": "0.5", "canary": "true"}


def test_empty_generator_url_is_none() -> None:
    (alert,) = parse(with_alert(generatorURL="")).alerts

    assert alert.generator_url is None


def test_missing_start_is_none() -> None:
    (alert,) = parse(with_alert(startsAt=None)).alerts

    assert alert.starts_at is None


def test_status_is_case_insensitive() -> None:
    (alert,) = parse(with_alert(status="Resolved")).alerts

    assert alert.status == "resolved"


def test_missing_status_with_an_end_is_resolved() -> None:
    (alert,) = parse(with_alert(status=None, endsAt="2026-04-14T10:41:00Z")).alerts

    assert alert.status == AlertStatus.RESOLVED


def test_missing_status_with_an_end_before_receipt_is_resolved() -> None:
    payload = with_alert(status=None, endsAt="2026-04-14T10:41:00Z")

    (alert,) = parse(payload, received_at=ts("2026-04-14T11:00:00+00:00")).alerts

    assert alert.status == AlertStatus.RESOLVED


def test_missing_status_with_an_end_after_receipt_is_firing() -> None:
    payload = with_alert(status=None, endsAt="2026-04-14T10:41:00Z")

    (alert,) = parse(payload, received_at=ts("2026-04-14T10:30:00+00:00")).alerts

    assert alert.status == AlertStatus.FIRING
    assert alert.ends_at == pytest.approx(ts("2026-04-14T10:41:00+00:00"))


def test_missing_status_without_an_end_is_firing() -> None:
    (alert,) = parse(with_alert(status=None)).alerts

    assert alert.status == AlertStatus.FIRING


def test_a_thousand_alerts_parse_in_order() -> None:
    payload = firing_sample()
    template = payload["alerts"][0]
    alerts = []
    for i in range(1000):
        alert = copy.deepcopy(template)
        alert["labels"]["instance"] = f"host-{i}:9100"
        del alert["fingerprint"]
        alerts.append(alert)
    payload["alerts"] = alerts

    batch = parse(payload)

    assert [a.labels["instance"] for a in batch.alerts] == [f"host-{i}:9100" for i in range(1000)]
    assert len({a.fingerprint for a in batch.alerts}) == 1000


# --- malformed payloads ------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [None, [], "alerts", 4, True])
def test_a_body_that_is_not_an_object_is_rejected(payload: object) -> None:
    error = error_of(payload)

    assert error.param is None
    assert "object" in str(error)


@pytest.mark.parametrize("alerts", ["missing", None, {"0": {}}, "[]", 3])
def test_alerts_missing_or_not_a_list_is_rejected(alerts: object) -> None:
    payload = firing_sample()
    if alerts == "missing":
        del payload["alerts"]
    else:
        payload["alerts"] = alerts

    assert error_of(payload).param == "alerts"


def test_another_explicit_version_is_rejected() -> None:
    payload = firing_sample()
    payload["version"] = "5"

    error = error_of(payload)

    assert error.param == "version"
    assert "'5'" in str(error)


def test_version_3_is_the_same_shape_and_accepted() -> None:
    payload = firing_sample()
    payload["version"] = "3"

    assert len(parse(payload).alerts) == 2


def test_an_alert_that_is_not_an_object_is_rejected() -> None:
    payload = firing_sample()
    payload["alerts"].append("HighCPUUsage")

    assert error_of(payload).param == "alerts[2]"


@pytest.mark.parametrize("labels", [["alertname"], "alertname=X", 7])
def test_labels_not_an_object_are_rejected(labels: object) -> None:
    payload = firing_sample()
    payload["alerts"][1]["labels"] = labels

    assert error_of(payload).param == "alerts[1].labels"


@pytest.mark.parametrize("value", [None, ["a"], {"nested": "x"}])
def test_a_label_value_that_is_not_a_scalar_is_rejected(value: object) -> None:
    labels = {"alertname": "X", "instance": value}

    assert error_of(with_alert(labels=labels)).param == "alerts[0].labels.instance"


def test_annotations_not_an_object_are_rejected() -> None:
    assert error_of(with_alert(annotations="text")).param == "alerts[0].annotations"


@pytest.mark.parametrize("status", ["pending", "FIRING!", 1, ["firing"]])
def test_a_bad_status_is_rejected(status: object) -> None:
    error = error_of(with_alert(status=status))

    assert error.param == "alerts[0].status"


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-04-14", "2026-04-14T10:25:00", 1776162300, "2026-13-01T00:00:00Z"]
)
def test_a_bad_time_is_rejected(value: object) -> None:
    assert error_of(with_alert(startsAt=value)).param == "alerts[0].startsAt"
    assert error_of(with_alert(endsAt=value)).param == "alerts[0].endsAt"


def test_a_fingerprint_that_is_not_a_string_is_rejected() -> None:
    assert error_of(with_alert(fingerprint=123)).param == "alerts[0].fingerprint"


def test_ingest_error_is_a_value_error_with_message_and_param() -> None:
    error = IngestError("alerts: bad", "alerts")

    assert isinstance(error, ValueError)
    assert error.message == "alerts: bad"
    assert error.param == "alerts"
    assert IngestError("whole body").param is None


# --- parse_time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-04-14T10:25:00Z", "2026-04-14T10:25:00+00:00"),
        ("2026-04-14T10:25:00.123Z", "2026-04-14T10:25:00.123+00:00"),
        ("2026-04-14T09:51:03.157076+02:00", "2026-04-14T07:51:03.157076+00:00"),
        ("2026-04-14T05:25:00-05:00", "2026-04-14T10:25:00+00:00"),
        ("2026-04-14t10:25:00z", "2026-04-14T10:25:00+00:00"),
    ],
)
def test_parse_time_rfc3339(text: str, expected: str) -> None:
    assert parse_time(text, "t") == pytest.approx(ts(expected), abs=1e-6)


def test_parse_time_keeps_go_nanoseconds() -> None:
    value = parse_time("2026-04-14T10:25:00.123456789Z", "t")

    assert value is not None
    base = ts("2026-04-14T10:25:00+00:00")
    assert value == pytest.approx(base + 0.123456789, abs=1e-6)
    assert value - base > 0.1234567  # not truncated to microseconds and rounded down to .123456


@pytest.mark.parametrize(
    "value",
    [None, "", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00+00:00"],
)
def test_parse_time_zero_and_empty_are_none(value: object) -> None:
    assert parse_time(value, "t") is None


def test_parse_time_error_names_the_param() -> None:
    with pytest.raises(IngestError) as info:
        parse_time("not a time", "alerts[3].startsAt")

    assert info.value.param == "alerts[3].startsAt"
    assert "alerts[3].startsAt" in str(info.value)


def test_parse_time_rejects_non_strings() -> None:
    with pytest.raises(IngestError, match="number"):
        parse_time(1776162300.5, "t")


# --- str_map -----------------------------------------------------------------------------------


def test_str_map_accepts_strings_and_coerces_scalars() -> None:
    assert str_map({"a": "x", "b": 2, "c": False}, "labels") == {"a": "x", "b": "2", "c": "false"}


def test_str_map_null_is_empty() -> None:
    assert str_map(None, "labels") == {}


def test_str_map_rejects_non_objects_and_nested_values() -> None:
    with pytest.raises(IngestError) as outer:
        str_map(["a"], "alerts[3].labels")
    with pytest.raises(IngestError) as inner:
        str_map({"a": {"b": "c"}}, "alerts[3].labels")

    assert outer.value.param == "alerts[3].labels"
    assert inner.value.param == "alerts[3].labels.a"
