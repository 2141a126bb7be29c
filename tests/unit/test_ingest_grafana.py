"""Grafana webhook payloads (unified and legacy) and signatures (agent.ingest.grafana)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import pytest

from agent.domain import AlertStatus
from agent.ingest import IngestError
from agent.ingest.grafana import (
    NO_DATA_LABEL,
    SIGNATURE_HEADER,
    SOURCE,
    TIMESTAMP_HEADER,
    check_timestamp,
    parse,
    parse_legacy,
    verify_signature,
)

# The shared sample (/work/shared/samples/grafana-firing.json), field for field.
SILENCE_URL = (
    "https://grafana.example.com/alerting/silence/new?alertmanager=grafana"
    "&matcher=alertname%3DHigh+memory+usage&matcher=team%3Dblue&matcher=zone%3Dus-1"
)
VALUE_STRING = (
    "[ var='B' labels={team=blue, zone=us-1} value=84.23943737541908 ], "
    "[ var='C' labels={team=blue, zone=us-1} value=1 ]"
)
MESSAGE = (
    "**Firing**\n\nValue: B=84.24, C=1\nLabels:\n - alertname = High memory usage\n"
    " - team = blue\n - zone = us-1\nAnnotations:\n - summary = High memory usage in zone us-1\n"
    "Source: https://grafana.example.com/alerting/grafana/1afz29v7z/view?orgId=1\n"
)
LABELS = {
    "alertname": "High memory usage",
    "grafana_folder": "Infrastructure",
    "team": "blue",
    "zone": "us-1",
}
ANNOTATIONS = {
    "description": "Memory usage on us-1 is above 80%",
    "runbook_url": "https://runbooks.example.com/memory",
    "summary": "High memory usage in zone us-1",
}


def firing_sample() -> dict[str, Any]:
    return {
        "receiver": "alert-agent",
        "status": "firing",
        "orgId": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": dict(LABELS),
                "annotations": dict(ANNOTATIONS),
                "startsAt": "2026-04-14T09:51:03.157076+02:00",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://grafana.example.com/alerting/grafana/1afz29v7z/view?orgId=1",
                "fingerprint": "c6eadffa33fcdf37",
                "silenceURL": SILENCE_URL,
                "dashboardURL": "https://grafana.example.com/d/abc123?orgId=1",
                "panelURL": "https://grafana.example.com/d/abc123?orgId=1&viewPanel=4",
                "values": {"B": 84.23943737541908, "C": 1},
                "valueString": VALUE_STRING,
            }
        ],
        "groupLabels": {"alertname": "High memory usage"},
        "commonLabels": dict(LABELS),
        "commonAnnotations": dict(ANNOTATIONS),
        "externalURL": "https://grafana.example.com/",
        "version": "1",
        "groupKey": '{}/{team="blue"}:{alertname="High memory usage"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] High memory usage Infrastructure (blue us-1)",
        "state": "alerting",
        "message": MESSAGE,
    }


def legacy(state: str = "alerting", **fields: Any) -> dict[str, Any]:
    """A legacy alerting webhook body as Grafana 7 sends it; ``fields`` replace (None deletes)."""
    payload: dict[str, Any] = {
        "title": "[Alerting] Disk full",
        "ruleId": 7,
        "ruleName": "Disk full",
        "state": state,
        "evalMatches": [
            {"value": 97.5, "metric": "disk_used", "tags": {"host": "db1", "mount": "/"}},
            {"value": 91, "metric": "disk_used", "tags": {"host": "db2", "mount": "/"}},
        ]
        if state in ("alerting", "no_data")
        else [],
        "orgId": 1,
        "dashboardId": 3,
        "panelId": 2,
        "tags": {"team": "storage", "severity": "critical"},
        "ruleUrl": "http://grafana.local/d/abc/disks?tab=alert&viewPanel=2&orgId=1",
        "imageUrl": "http://grafana.local/public/img/disk.png",
        "message": "Disk usage above 90%",
    }
    for key, value in fields.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def error_of(payload: object) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse(payload)
    return info.value


# --- unified alerting --------------------------------------------------------------------------


def test_unified_sample_every_field_lands() -> None:
    batch = parse(firing_sample())

    assert batch.source == SOURCE == "grafana"
    (alert,) = batch.alerts
    assert alert.source == "grafana"
    assert alert.status == AlertStatus.FIRING
    assert alert.fingerprint == "c6eadffa33fcdf37"
    assert alert.labels == LABELS
    assert alert.annotations == ANNOTATIONS
    # +02:00 offset, microseconds: 07:51:03.157076 UTC
    assert alert.starts_at == pytest.approx(ts("2026-04-14T07:51:03.157076+00:00"), abs=1e-6)
    assert alert.ends_at is None
    assert alert.generator_url == (
        "https://grafana.example.com/alerting/grafana/1afz29v7z/view?orgId=1"
    )
    assert alert.extra == {
        "silenceURL": SILENCE_URL,
        "dashboardURL": "https://grafana.example.com/d/abc123?orgId=1",
        "panelURL": "https://grafana.example.com/d/abc123?orgId=1&viewPanel=4",
        "values": {"B": 84.23943737541908, "C": 1},
        "valueString": VALUE_STRING,
    }


def test_unified_sample_group_fields() -> None:
    expected = firing_sample()
    del expected["alerts"]

    group = parse(firing_sample()).group

    assert group == expected
    assert group["orgId"] == 1
    assert group["title"] == "[FIRING:1] High memory usage Infrastructure (blue us-1)"
    assert group["state"] == "alerting"
    assert group["message"] == MESSAGE


def test_unified_newer_alert_fields_go_to_extra() -> None:
    payload = firing_sample()
    alert = payload["alerts"][0]
    alert["ruleUID"] = "1afz29v7z"
    alert["imageURL"] = "https://grafana.example.com/render/x.png"
    alert["orgId"] = 1
    alert["enrichments"] = {"owner": "blue"}

    (parsed,) = parse(payload).alerts

    assert parsed.extra is not None
    assert parsed.extra["ruleUID"] == "1afz29v7z"
    assert parsed.extra["imageURL"] == "https://grafana.example.com/render/x.png"
    assert parsed.extra["orgId"] == 1
    assert parsed.extra["enrichments"] == {"owner": "blue"}


def test_unified_resolved() -> None:
    payload = firing_sample()
    payload["status"] = "resolved"
    payload["state"] = "ok"
    payload["alerts"][0]["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = "2026-04-14T10:01:03.5+02:00"

    (alert,) = parse(payload).alerts

    assert alert.status == AlertStatus.RESOLVED
    assert alert.ends_at == pytest.approx(ts("2026-04-14T08:01:03.5+00:00"), abs=1e-6)


def test_unified_without_version_is_accepted() -> None:
    payload = firing_sample()
    del payload["version"]

    assert len(parse(payload).alerts) == 1


def test_unified_other_version_is_rejected() -> None:
    payload = firing_sample()
    payload["version"] = "4"

    assert error_of(payload).param == "version"


def test_unified_malformed_alerts_name_the_field() -> None:
    bad_labels = firing_sample()
    bad_labels["alerts"][0]["labels"] = ["alertname"]
    bad_time = firing_sample()
    bad_time["alerts"][0]["startsAt"] = "14/04/2026 09:51"
    not_list = firing_sample()
    not_list["alerts"] = {"alertname": "x"}

    assert error_of(bad_labels).param == "alerts[0].labels"
    assert error_of(bad_time).param == "alerts[0].startsAt"
    assert error_of(not_list).param == "alerts"


@pytest.mark.parametrize("payload", [None, [firing_sample()], "firing"])
def test_a_body_that_is_not_an_object_is_rejected(payload: object) -> None:
    assert error_of(payload).param is None


def test_neither_unified_nor_legacy_is_rejected_naming_alerts() -> None:
    assert error_of({"title": "hello", "message": "world"}).param == "alerts"


# --- legacy alerting ---------------------------------------------------------------------------


def test_legacy_alerting_maps_to_one_alert_per_rule() -> None:
    batch = parse(legacy("alerting"))

    assert batch.source == "grafana"
    (alert,) = batch.alerts
    assert alert.status == AlertStatus.FIRING
    assert alert.labels == {"alertname": "Disk full", "team": "storage", "severity": "critical"}
    assert alert.annotations == {
        "summary": "[Alerting] Disk full",
        "description": "Disk usage above 90%",
    }
    assert alert.generator_url == "http://grafana.local/d/abc/disks?tab=alert&viewPanel=2&orgId=1"
    assert alert.starts_at is None
    assert alert.ends_at is None


def test_legacy_extra_keeps_matches_and_rule_fields() -> None:
    (alert,) = parse(legacy("alerting")).alerts

    assert alert.extra == {
        "state": "alerting",
        "evalMatches": [
            {"metric": "disk_used", "value": 97.5, "tags": {"host": "db1", "mount": "/"}},
            {"metric": "disk_used", "value": 91, "tags": {"host": "db2", "mount": "/"}},
        ],
        "ruleId": 7,
        "orgId": 1,
        "dashboardId": 3,
        "panelId": 2,
        "imageUrl": "http://grafana.local/public/img/disk.png",
        "valueString": "[ metric='disk_used' labels={host=db1, mount=/} value=97.5 ], "
        "[ metric='disk_used' labels={host=db2, mount=/} value=91 ]",
    }


def test_legacy_group_is_the_body_without_eval_matches() -> None:
    payload = legacy("alerting", newField="kept")

    group = parse(payload).group

    expected = dict(payload)
    del expected["evalMatches"]
    assert group == expected


def test_legacy_ok_resolves_the_same_alert() -> None:
    (firing,) = parse(legacy("alerting")).alerts
    (resolved,) = parse(legacy("ok", title="[OK] Disk full", message=None)).alerts

    assert resolved.status == AlertStatus.RESOLVED
    assert resolved.fingerprint == firing.fingerprint
    assert resolved.annotations == {"summary": "[OK] Disk full"}
    assert resolved.extra is not None
    assert resolved.extra["evalMatches"] == []
    assert "valueString" not in resolved.extra


def test_legacy_no_data_fires_with_a_label_and_the_same_fingerprint() -> None:
    (firing,) = parse(legacy("alerting")).alerts
    (no_data,) = parse(legacy("no_data", evalMatches=[])).alerts

    assert no_data.status == AlertStatus.FIRING
    assert no_data.labels[NO_DATA_LABEL] == "no_data"
    assert NO_DATA_LABEL not in firing.labels
    assert no_data.fingerprint == firing.fingerprint


@pytest.mark.parametrize("state", ["paused", "pending", "unknown"])
def test_legacy_states_without_a_problem_change_give_no_alert(state: str) -> None:
    batch = parse(legacy(state))

    assert batch.alerts == []
    assert batch.group["state"] == state
    assert batch.group["ruleName"] == "Disk full"


def test_legacy_fingerprint_follows_the_rule_id_not_its_name() -> None:
    (before,) = parse(legacy(ruleName="Disk full")).alerts
    (renamed,) = parse(legacy(ruleName="Disk nearly full")).alerts
    (other,) = parse(legacy(ruleId=8)).alerts

    assert renamed.fingerprint == before.fingerprint
    assert other.fingerprint != before.fingerprint


def test_legacy_fingerprint_without_rule_id_follows_name_and_tags() -> None:
    (first,) = parse(legacy(ruleId=None)).alerts
    (again,) = parse(legacy("ok", ruleId=None)).alerts
    (renamed,) = parse(legacy(ruleId=None, ruleName="Other")).alerts
    (retagged,) = parse(legacy(ruleId=None, tags={"team": "db"})).alerts

    assert again.fingerprint == first.fingerprint
    assert len({first.fingerprint, renamed.fingerprint, retagged.fingerprint}) == 3


def test_legacy_minimal_body() -> None:
    (alert,) = parse({"ruleName": "Ping", "state": "alerting"}).alerts

    assert alert.labels == {"alertname": "Ping"}
    assert alert.annotations == {}
    assert alert.generator_url is None
    assert alert.extra == {"state": "alerting", "evalMatches": []}


def test_legacy_null_tags_and_match_value() -> None:
    matches = [{"value": None, "metric": "up", "tags": None}]

    (alert,) = parse(legacy(tags=None, evalMatches=matches)).alerts

    assert alert.labels == {"alertname": "Disk full"}
    assert alert.extra is not None
    assert alert.extra["evalMatches"] == [{"metric": "up", "value": None, "tags": {}}]


def test_legacy_rule_tags_cannot_override_alertname() -> None:
    (alert,) = parse(legacy(tags={"alertname": "spoof"})).alerts

    assert alert.labels["alertname"] == "Disk full"


def test_parse_legacy_directly() -> None:
    assert parse_legacy(legacy()).alerts[0].labels["alertname"] == "Disk full"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"state": "exploding"}, "state"),
        ({"state": None}, "state"),
        ({"ruleName": None}, "ruleName"),
        ({"ruleName": 5}, "ruleName"),
        ({"ruleId": [7]}, "ruleId"),
        ({"tags": ["team"]}, "tags"),
        ({"evalMatches": {"value": 1}}, "evalMatches"),
        ({"evalMatches": ["x"]}, "evalMatches[0]"),
        ({"evalMatches": [{"value": "97", "metric": "m", "tags": {}}]}, "evalMatches[0].value"),
        ({"evalMatches": [{"value": 1, "metric": "m", "tags": ["a"]}]}, "evalMatches[0].tags"),
        ({"evalMatches": [{"value": 1, "metric": {}, "tags": {}}]}, "evalMatches[0].metric"),
        ({"title": 3}, "title"),
        ({"ruleUrl": ["http://x"]}, "ruleUrl"),
    ],
)
def test_legacy_malformed_fields_are_named(fields: dict[str, Any], param: str) -> None:
    payload = legacy()
    payload.update(fields)
    if fields.get("ruleName", "") is None:
        del payload["ruleName"]

    assert error_of(payload).param == param


def test_parse_does_not_mutate_the_payload() -> None:
    payload = legacy()
    before = copy.deepcopy(payload)
    parse(payload)

    assert payload == before


# --- signatures --------------------------------------------------------------------------------

SECRET = b"s3cret-hmac-key"


def sign(body: bytes, timestamp: str | None = None, secret: bytes = SECRET) -> str:
    message = body if timestamp is None else timestamp.encode() + b":" + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


BODY = json.dumps(firing_sample()).encode()


def test_header_names() -> None:
    assert SIGNATURE_HEADER == "X-Grafana-Alerting-Signature"
    assert TIMESTAMP_HEADER == "X-Grafana-Alerting-Timestamp"


def test_good_signature_verifies() -> None:
    assert verify_signature(SECRET, BODY, sign(BODY), None)


def test_known_vector() -> None:
    # Independent of the helper above: HMAC-SHA256(key="secret", "test message").
    expected = "3bcebf43c85d20bba6e3b6ba278af1d2ba3ab0d57de271b0ad30b833e851c5a6"

    assert verify_signature(b"secret", b"test message", expected, "")


def test_uppercase_hex_and_whitespace_are_accepted() -> None:
    assert verify_signature(SECRET, BODY, " " + sign(BODY).upper() + "\n", None)


def test_tampered_body_fails() -> None:
    assert not verify_signature(SECRET, BODY + b" ", sign(BODY), None)


def test_wrong_secret_fails() -> None:
    assert not verify_signature(SECRET, BODY, sign(BODY, secret=b"other"), None)


def test_garbage_signature_fails() -> None:
    assert not verify_signature(SECRET, BODY, "not-hex", None)
    assert not verify_signature(SECRET, BODY, "sha256=" + sign(BODY), None)
    assert not verify_signature(SECRET, BODY, "é" * 64, None)


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature_fails(signature: str | None) -> None:
    assert not verify_signature(SECRET, BODY, signature, None)


def test_empty_secret_verifies_nothing() -> None:
    assert not verify_signature(b"", BODY, sign(BODY, secret=b""), None)


def test_timestamped_signature_verifies() -> None:
    assert verify_signature(SECRET, BODY, sign(BODY, "1776162300"), "1776162300")


def test_timestamped_signature_fails_with_another_timestamp() -> None:
    assert not verify_signature(SECRET, BODY, sign(BODY, "1776162300"), "1776162301")


def test_timestamped_signature_fails_without_the_timestamp() -> None:
    assert not verify_signature(SECRET, BODY, sign(BODY, "1776162300"), None)


def test_plain_signature_fails_when_a_timestamp_is_claimed() -> None:
    assert not verify_signature(SECRET, BODY, sign(BODY), "1776162300")


@pytest.mark.parametrize(("received_at", "expected"), [
    (1776162300.0, None),
    (1776162600.0, None),  # 300 s old: still accepted
    (1776162601.0, "too_old"),
    (1776162000.0, None),  # the sender's clock 300 s ahead: accepted as skew
    (1776161999.0, "in_future"),  # further ahead: not "too old", in the future
])
def test_timestamp_age_and_future_skew(received_at: float, expected: str | None) -> None:
    assert check_timestamp("1776162300", received_at) == expected


def test_timestamp_limits_are_separate() -> None:
    assert check_timestamp("1776162300", 1776162310.0, max_age=10.0) is None
    assert check_timestamp("1776162300", 1776162311.0, max_age=10.0) == "too_old"
    assert check_timestamp("1776162300", 1776162290.0, max_skew=10.0) is None
    assert check_timestamp("1776162300", 1776162289.0, max_skew=10.0) == "in_future"


@pytest.mark.parametrize("stamp", ["yesterday", "", " ", "1_776_162_300", "-5", "1e9",
                                   "１７７６１６２３００", "1776162300.5"])
def test_timestamp_must_be_unix_seconds(stamp: str) -> None:
    assert check_timestamp(stamp, 1776162300.0) == "invalid"


def test_timestamp_surrounding_whitespace_is_ignored() -> None:
    assert check_timestamp(" 1776162300\n", 1776162300.0) is None
