"""Generic JSON -> alerts through compiled Jinja2 mappings (agent.ingest.generic)."""

from __future__ import annotations

import copy
import time
from datetime import datetime
from typing import Any

import pytest

from agent.domain import AlertStatus, fingerprint_of
from agent.ingest import IngestError
from agent.ingest.generic import (
    STATUS_SYNONYMS,
    GenericMapping,
    compile_mapping,
    parse,
)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def compile_error(spec: dict[str, Any], name: str = "src") -> IngestError:
    with pytest.raises(IngestError) as info:
        compile_mapping(name, spec)
    return info.value


def parse_error(mapping: GenericMapping, payload: object) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse(mapping, payload)
    return info.value


# --- Uptime Kuma: {"heartbeat": {...}, "monitor": {...}, "msg": "..."}; status 0 down, 1 up ----

KUMA = compile_mapping(
    "uptime-kuma",
    {
        "alertname": "{{ monitor.name | default('Uptime Kuma', true) }}",
        "status": "{{ 'up' if heartbeat.status == 1 else 'down' }}",
        "severity": "critical",
        "labels": {"monitor_type": "{{ monitor.type }}", "host": "{{ monitor.hostname }}"},
        "annotations": {"summary": "{{ msg }}", "detail": "{{ heartbeat.msg }}"},
        "fingerprint": "{{ monitor.id }}",
        "starts_at": "{{ heartbeat.time }}",
        "generator_url": "{{ monitor.url }}",
    },
)


def kuma(status: int, msg: str) -> dict[str, Any]:
    word = "Up" if status == 1 else "Down"
    return {
        "heartbeat": {
            "monitorID": 12,
            "status": status,
            "time": "2026-04-14 10:25:00.123",
            "msg": msg,
            "ping": None,
            "important": True,
            "duration": 60,
        },
        "monitor": {
            "id": 12,
            "name": "Shop frontend",
            "type": "http",
            "url": "https://shop.example.com",
            "hostname": None,
            "port": None,
        },
        "msg": f"[Shop frontend] [{word}] {msg}",
    }


def test_uptime_kuma_down() -> None:
    batch = parse(KUMA, kuma(0, "timeout of 48000ms exceeded"))

    assert batch.source == "generic:uptime-kuma"
    assert batch.group == {}
    (alert,) = batch.alerts
    assert alert.source == "generic:uptime-kuma"
    assert alert.status == AlertStatus.FIRING
    # hostname is null: the label is left out, not "None"
    assert alert.labels == {
        "alertname": "Shop frontend",
        "monitor_type": "http",
        "severity": "critical",
    }
    assert alert.annotations == {
        "summary": "[Shop frontend] [Down] timeout of 48000ms exceeded",
        "detail": "timeout of 48000ms exceeded",
    }
    # Kuma's heartbeat time has no offset and is UTC.
    assert alert.starts_at == pytest.approx(ts("2026-04-14T10:25:00.123+00:00"), abs=1e-6)
    assert alert.ends_at is None
    assert alert.generator_url == "https://shop.example.com"
    assert alert.extra == kuma(0, "timeout of 48000ms exceeded")


def test_uptime_kuma_up_resolves_the_same_alert() -> None:
    (down,) = parse(KUMA, kuma(0, "timeout")).alerts
    (up,) = parse(KUMA, kuma(1, "200 - OK")).alerts

    assert up.status == AlertStatus.RESOLVED
    assert up.fingerprint == down.fingerprint
    assert len(up.fingerprint) == 16


def test_uptime_kuma_fingerprint_is_per_monitor() -> None:
    other = kuma(0, "timeout")
    other["monitor"]["id"] = 13

    assert (
        parse(KUMA, other).alerts[0].fingerprint != parse(KUMA, kuma(0, "x")).alerts[0].fingerprint
    )


def test_uptime_kuma_test_notification_with_null_monitor() -> None:
    (alert,) = parse(KUMA, {"heartbeat": None, "monitor": None, "msg": "Test"}).alerts

    assert alert.labels == {"alertname": "Uptime Kuma", "severity": "critical"}
    assert alert.status == AlertStatus.FIRING  # heartbeat.status is missing -> not 1 -> down
    assert alert.annotations == {"summary": "Test"}
    assert alert.starts_at is None
    assert alert.generator_url is None


# --- Healthchecks.io: a user-written body from its placeholders ---------------------------------
# {"name": $NAME_JSON, "status": "$STATUS", "code": "$CODE", "now": "$NOW", "tags": "$TAGS"}

HEALTHCHECKS = compile_mapping(
    "healthchecks",
    {
        "alertname": "{{ name }}",
        "status": "{{ status }}",
        "labels": {"tags": "{{ tags }}"},
        "fingerprint": "{{ code }}",
        "starts_at": "{% if status == 'down' %}{{ now }}{% endif %}",
        "ends_at": "{% if status == 'up' %}{{ now }}{% endif %}",
        "generator_url": "https://healthchecks.io/checks/{{ code }}/details/",
    },
)


def healthchecks(status: str, now: str) -> dict[str, Any]:
    return {
        "name": "Nightly backup",
        "status": status,
        "code": "5b2e6f0a-3c1d-4e8f-9a7b-2c4d6e8f0a1b",
        "now": now,
        "tags": "prod backup",
    }


def test_healthchecks_down_and_up() -> None:
    (down,) = parse(HEALTHCHECKS, healthchecks("down", "2026-04-14T03:15:00+00:00")).alerts
    (up,) = parse(HEALTHCHECKS, healthchecks("up", "2026-04-14T03:40:00+00:00")).alerts

    assert down.status == AlertStatus.FIRING
    assert up.status == AlertStatus.RESOLVED
    assert down.fingerprint == up.fingerprint
    assert down.labels == {"alertname": "Nightly backup", "tags": "prod backup"}
    assert down.starts_at == pytest.approx(ts("2026-04-14T03:15:00+00:00"))
    assert down.ends_at is None
    assert up.starts_at is None
    assert up.ends_at == pytest.approx(ts("2026-04-14T03:40:00+00:00"))
    assert down.generator_url == (
        "https://healthchecks.io/checks/5b2e6f0a-3c1d-4e8f-9a7b-2c4d6e8f0a1b/details/"
    )


def test_custom_fingerprints_differ_between_mappings() -> None:
    other = compile_mapping("hc2", {"alertname": "{{ name }}", "fingerprint": "{{ code }}"})
    payload = healthchecks("down", "2026-04-14T03:15:00+00:00")

    assert parse(other, payload).alerts[0].fingerprint != (
        parse(HEALTHCHECKS, payload).alerts[0].fingerprint
    )


# --- a CI pipeline: one alert per job, selected with a dotted path --------------------------------

CI = compile_mapping(
    "ci",
    {
        "alerts": "pipeline.jobs",
        "alertname": "CIJobFailed",
        "status": "{{ status }}",
        "severity": "{{ 'critical' if payload.pipeline.ref == 'main' else 'warning' }}",
        "labels": {
            "project": "{{ payload.project.path }}",
            "ref": "{{ payload.pipeline.ref }}",
            "job": "{{ name }}",
        },
        "annotations": {
            "summary": "{{ name }} {{ status }} on {{ payload.pipeline.ref }}",
            "commit": "{{ payload.pipeline.sha[:8] }}",
        },
        "starts_at": "{{ finished_at }}",
        "generator_url": "{{ item.web_url }}",
    },
)


def ci_payload() -> dict[str, Any]:
    return {
        "object_kind": "pipeline",
        "project": {"id": 42, "path": "shop/backend"},
        "pipeline": {
            "id": 9001,
            "ref": "main",
            "sha": "8f3c2a1b9d7e6f5a4b3c2d1e",
            "jobs": [
                {
                    "name": "test",
                    "status": "failed",
                    "finished_at": 1776162300,
                    "web_url": "https://ci.example.com/jobs/1",
                },
                {
                    "name": "lint",
                    "status": "success",
                    "finished_at": 1776162300500,
                    "web_url": "https://ci.example.com/jobs/2",
                },
            ],
        },
    }


def test_ci_pipeline_one_alert_per_job() -> None:
    batch = parse(CI, ci_payload())

    test, lint = batch.alerts
    assert test.status == AlertStatus.FIRING
    assert lint.status == AlertStatus.RESOLVED
    assert test.labels == {
        "alertname": "CIJobFailed",
        "project": "shop/backend",
        "ref": "main",
        "job": "test",
        "severity": "critical",
    }
    assert test.annotations == {"summary": "test failed on main", "commit": "8f3c2a1b"}
    assert test.fingerprint == fingerprint_of(test.labels)
    assert test.fingerprint != lint.fingerprint
    assert test.generator_url == "https://ci.example.com/jobs/1"
    assert test.extra == ci_payload()["pipeline"]["jobs"][0]


def test_ci_pipeline_epoch_seconds_and_milliseconds() -> None:
    test, lint = parse(CI, ci_payload()).alerts

    assert test.starts_at == 1776162300.0
    assert lint.starts_at == pytest.approx(1776162300.5)


def test_ci_pipeline_group_is_the_body_around_the_items() -> None:
    group = parse(CI, ci_payload()).group

    assert group == {"object_kind": "pipeline", "project": {"id": 42, "path": "shop/backend"}}


def test_ci_pipeline_with_no_jobs_is_an_empty_batch() -> None:
    payload = ci_payload()
    payload["pipeline"]["jobs"] = []

    assert parse(CI, payload).alerts == []


# --- a shell script: curl -d '{"alertname":"BackupFailed","status":"firing","host":"db1"}' -----

SHELL = compile_mapping(
    "shell",
    {
        "alertname": "{{ alertname }}",
        "status": "{{ status }}",
        "severity": "{{ severity | default('warning', true) }}",
        "labels": {"host": "{{ host }}"},
        "annotations": {"description": "{{ description }}"},
    },
)


def test_shell_curl_payload() -> None:
    payload = {"alertname": "BackupFailed", "status": "firing", "host": "db1"}

    (alert,) = parse(SHELL, payload).alerts

    assert alert.status == AlertStatus.FIRING
    assert alert.labels == {"alertname": "BackupFailed", "host": "db1", "severity": "warning"}
    assert alert.annotations == {}  # description is missing: empty, so left out
    assert alert.fingerprint == fingerprint_of(alert.labels)
    assert alert.starts_at is None
    assert alert.extra == payload


def test_shell_resolved_matches_the_firing_fingerprint() -> None:
    firing = {"alertname": "BackupFailed", "status": "firing", "host": "db1"}
    resolved = {**firing, "status": "resolved"}

    assert parse(SHELL, firing).alerts[0].fingerprint == (
        parse(SHELL, resolved).alerts[0].fingerprint
    )


def test_missing_status_means_firing() -> None:
    (alert,) = parse(SHELL, {"alertname": "BackupFailed"}).alerts

    assert alert.status == AlertStatus.FIRING


def test_a_mapping_without_status_template_fires() -> None:
    mapping = compile_mapping("m", {"alertname": "Beacon"})

    (alert,) = parse(mapping, {}).alerts

    assert alert.status == AlertStatus.FIRING
    assert alert.labels == {"alertname": "Beacon"}


# --- status synonyms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "word",
    ["resolved", "ok", "up", "green", "success", "closed", "OK", " Up ", "recovered", "passed"],
)
def test_resolved_synonyms(word: str) -> None:
    (alert,) = parse(SHELL, {"alertname": "A", "status": word}).alerts

    assert alert.status == AlertStatus.RESOLVED


@pytest.mark.parametrize(
    "word",
    ["firing", "down", "alerting", "problem", "critical", "error", "fail", "failed", "red", "DOWN"],
)
def test_firing_synonyms(word: str) -> None:
    (alert,) = parse(SHELL, {"alertname": "A", "status": word}).alerts

    assert alert.status == AlertStatus.FIRING


def test_synonym_table_has_only_the_two_statuses_and_no_numbers() -> None:
    assert set(STATUS_SYNONYMS.values()) == {"firing", "resolved"}
    assert not any(word.isdigit() for word in STATUS_SYNONYMS)


@pytest.mark.parametrize("status", ["0", "1", "maintenance", "pending", True])
def test_an_unknown_status_word_is_an_error(status: object) -> None:
    error = parse_error(SHELL, {"alertname": "A", "status": status})

    assert error.param == "status"
    assert "firing" in str(error)


# --- template behaviour ------------------------------------------------------------------------


def test_null_renders_empty_and_booleans_like_json() -> None:
    mapping = compile_mapping(
        "m", {"alertname": "A", "labels": {"n": "{{ nothing }}", "flag": "{{ flag }}"}}
    )

    (alert,) = parse(mapping, {"nothing": None, "flag": False}).alerts

    assert alert.labels == {"alertname": "A", "flag": "false"}


def test_missing_nested_fields_render_empty() -> None:
    mapping = compile_mapping("m", {"alertname": "A", "annotations": {"x": "{{ a.b.c.d }}"}})

    (alert,) = parse(mapping, {}).alerts

    assert alert.annotations == {}


def test_rendered_values_are_stripped() -> None:
    mapping = compile_mapping("m", {"alertname": "\n  {{ name }}  \n"})

    assert parse(mapping, {"name": "Spaced"}).alerts[0].labels["alertname"] == "Spaced"


def test_empty_alertname_is_an_error() -> None:
    error = parse_error(SHELL, {"status": "firing"})

    assert error.param == "alertname"


def test_template_runtime_errors_become_ingest_errors() -> None:
    mapping = compile_mapping("m", {"alertname": "A", "labels": {"x": "{{ 1 // n }}"}})

    error = parse_error(mapping, {"n": 0})

    assert error.param == "labels.x"
    assert "ZeroDivisionError" in str(error)


def test_runtime_errors_name_the_item() -> None:
    mapping = compile_mapping("m", {"alerts": "xs", "alertname": "{{ 1 // n }}"})

    error = parse_error(mapping, {"xs": [{"n": 1}, {"n": 0}]})

    assert "item 1" in str(error)


def test_templates_cannot_mutate_the_payload() -> None:
    mapping = compile_mapping("m", {"alertname": "A{{ tags.append('x') }}"})
    payload = {"tags": ["a"]}

    error = parse_error(mapping, payload)

    assert error.param == "alertname"
    assert payload == {"tags": ["a"]}


def test_templates_cannot_reach_python_internals() -> None:
    mapping = compile_mapping("m", {"alertname": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})

    with pytest.raises(IngestError):
        parse(mapping, {})


def test_payload_and_item_variables() -> None:
    mapping = compile_mapping(
        "m",
        {
            "alerts": "checks",
            "alertname": "{{ item.name }}",
            "labels": {"env": "{{ payload.env }}", "same": "{{ name }}"},
        },
    )

    batch = parse(mapping, {"env": "prod", "checks": [{"name": "disk"}, {"name": "cpu"}]})

    assert [a.labels for a in batch.alerts] == [
        {"alertname": "disk", "env": "prod", "same": "disk"},
        {"alertname": "cpu", "env": "prod", "same": "cpu"},
    ]
    assert batch.group == {"env": "prod"}


def test_item_keys_named_payload_or_item_do_not_shadow_them() -> None:
    mapping = compile_mapping("m", {"alertname": "{{ payload.payload }}-{{ item.item }}"})

    assert parse(mapping, {"payload": "p", "item": "i"}).alerts[0].labels["alertname"] == "p-i"


def test_non_object_items() -> None:
    mapping = compile_mapping("m", {"alerts": "hosts", "alertname": "HostDown-{{ item }}"})

    batch = parse(mapping, {"hosts": ["db1", "db2"]})

    assert [a.labels["alertname"] for a in batch.alerts] == ["HostDown-db1", "HostDown-db2"]
    assert batch.alerts[0].extra == {"item": "db1"}


def test_dot_path_selects_a_top_level_array() -> None:
    mapping = compile_mapping("m", {"alerts": ".", "alertname": "{{ name }}"})

    batch = parse(mapping, [{"name": "a"}, {"name": "b"}])

    assert [a.labels["alertname"] for a in batch.alerts] == ["a", "b"]
    assert batch.group == {}


def test_numeric_path_segments_index_arrays() -> None:
    mapping = compile_mapping("m", {"alerts": "runs.1.jobs", "alertname": "{{ name }}"})

    batch = parse(mapping, {"runs": [{"jobs": []}, {"jobs": [{"name": "deploy"}]}]})

    assert [a.labels["alertname"] for a in batch.alerts] == ["deploy"]


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({}, "pipeline"),
        ({"pipeline": {}}, "pipeline.jobs"),
        ({"pipeline": {"jobs": {"name": "x"}}}, "pipeline.jobs"),
        ({"pipeline": "jobs"}, "pipeline.jobs"),
        ([], "pipeline"),
    ],
)
def test_a_path_that_does_not_select_an_array_is_an_error(payload: object, param: str) -> None:
    assert parse_error(CI, payload).param == param


def test_a_thousand_items() -> None:
    payload = {"checks": [{"name": f"check-{i}", "ok": i % 2 == 0} for i in range(1000)]}
    mapping = compile_mapping(
        "m",
        {
            "alerts": "checks",
            "alertname": "{{ name }}",
            "status": "{{ 'ok' if ok else 'fail' }}",
        },
    )

    batch = parse(mapping, payload)

    assert len(batch.alerts) == 1000
    assert len({a.fingerprint for a in batch.alerts}) == 1000
    assert batch.alerts[999].labels["alertname"] == "check-999"
    assert batch.alerts[999].status == AlertStatus.FIRING
    assert batch.alerts[998].status == AlertStatus.RESOLVED


def test_parse_does_not_mutate_the_payload() -> None:
    payload = ci_payload()
    before = copy.deepcopy(payload)
    batch = parse(CI, payload)
    assert batch.alerts[0].extra is not None
    batch.alerts[0].extra["name"] = "changed"

    assert payload == before


# --- times -------------------------------------------------------------------------------------

TIMED = compile_mapping("timed", {"alertname": "A", "starts_at": "{{ t }}"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-04-14T10:25:00.123456789Z", ts("2026-04-14T10:25:00.123457+00:00")),
        ("2026-04-14T12:25:00+02:00", ts("2026-04-14T10:25:00+00:00")),
        ("2026-04-14 10:25:00", ts("2026-04-14T10:25:00+00:00")),
        ("2026-04-14T10:25:00+0000", ts("2026-04-14T10:25:00+00:00")),
        (1776162300, 1776162300.0),
        (1776162300.25, 1776162300.25),
        ("1776162300", 1776162300.0),
        (1776162300250, 1776162300.25),
        ("", None),
        (None, None),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_time_formats(value: object, expected: float | None) -> None:
    (alert,) = parse(TIMED, {"t": value}).alerts

    if expected is None:
        assert alert.starts_at is None
    else:
        assert alert.starts_at == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("value", ["yesterday", "14/04/2026", True, "9" * 400])
def test_a_bad_time_is_an_error(value: object) -> None:
    assert parse_error(TIMED, {"t": value}).param == "starts_at"


# --- compile errors ----------------------------------------------------------------------------


def test_unknown_key_is_named() -> None:
    error = compile_error({"alertname": "A", "lables": {}})

    assert error.param == "lables"
    assert "'lables'" in str(error)
    assert "labels" in str(error)  # the allowed keys are listed


@pytest.mark.parametrize("spec", [{}, {"alertname": ""}, {"alertname": None}])
def test_alertname_is_required(spec: dict[str, Any]) -> None:
    assert compile_error(spec).param == "alertname"


def test_syntax_error_names_the_field_and_line() -> None:
    error = compile_error(
        {"alertname": "A", "annotations": {"description": "first line\n{{ oops }\nthird"}}
    )

    assert error.param == "annotations.description"
    assert "line 2" in str(error)


def test_syntax_error_in_a_block() -> None:
    error = compile_error({"alertname": "A", "status": "{% if x %}down"})

    assert error.param == "status"
    assert "line 1" in str(error)


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        ({"alertname": "A", "labels": ["host"]}, "labels"),
        ({"alertname": "A", "annotations": "summary"}, "annotations"),
        ({"alertname": "A", "labels": {"host": ["x"]}}, "labels.host"),
        ({"alertname": "A", "labels": {"": "x"}}, "labels"),
        ({"alertname": {"x": 1}}, "alertname"),
        ({"alertname": "A", "alerts": "{{ payload.checks }}"}, "alerts"),
        ({"alertname": "A", "alerts": "checks..items"}, "alerts"),
        ({"alertname": "A", "alerts": ["checks"]}, "alerts"),
        ({"alertname": "A", "alerts": ""}, "alerts"),
        ({"alertname": "A", "labels": {"alertname": "B"}}, "labels.alertname"),
        ({"alertname": "A", "severity": "x", "labels": {"severity": "y"}}, "labels.severity"),
    ],
)
def test_malformed_specs_name_the_field(spec: dict[str, Any], param: str) -> None:
    assert compile_error(spec).param == param


@pytest.mark.parametrize("name", ["", "has space", "../etc", "a/b", "-lead"])
def test_bad_source_names_are_rejected(name: str) -> None:
    assert compile_error({"alertname": "A"}, name=name).param == "name"


def test_spec_that_is_not_a_mapping_is_rejected() -> None:
    with pytest.raises(ValueError, match="mapping"):
        compile_mapping("m", ["alertname"])  # type: ignore[arg-type]


def test_scalar_templates_are_accepted() -> None:
    mapping = compile_mapping("m", {"alertname": "A", "labels": {"priority": 1, "page": True}})

    assert parse(mapping, {}).alerts[0].labels == {
        "alertname": "A",
        "priority": "1",
        "page": "true",
    }


def test_compiled_mapping_is_frozen_and_named() -> None:
    assert KUMA.name == "uptime-kuma"
    assert KUMA.source == "generic:uptime-kuma"
    with pytest.raises(AttributeError):
        KUMA.name = "other"  # type: ignore[misc]


# --- limits: the operator writes the template, the sender writes the data ---------------------


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{{ text.replace('a', text) }}", "too large"),  # 16,000 x 16,000 characters in C
        ("{{ text|center(10**9) }}", "too large"),
        ("{{ '%0999999999d' % 1 }}", "width or precision"),
        ("{% for a in text %}{% for b in text %}{% endfor %}{% endfor %}", "longer than"),
    ],
)
def test_mapping_templates_are_size_and_time_limited(template: str, needle: str) -> None:
    mapping = compile_mapping("src", {"alertname": "x", "annotations": {"summary": template}})
    started = time.monotonic()
    err = parse_error(mapping, {"text": "a" * 16_000})
    assert time.monotonic() - started < 1.5
    assert err.param == "annotations.summary"
    assert needle in str(err)
