"""JSON logging with secret redaction, level filtering, and metric naming (agent.observability)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.observability import REDACTED, Metrics, configure_logging

LIVE = "sk_live_abcdefghijklmnopqrstuvwx"
TEST_TOKEN = "sk_test_XXXXXXXXXXXX"


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secrets_are_redacted(stream: io.StringIO) -> None:
    structlog.get_logger().info(
        "x",
        api_key=LIVE,
        note=f"token {TEST_TOKEN} inside",
        nested={"authorization": "Bearer x", "host": "web-1"},
    )
    raw = stream.getvalue()
    assert LIVE not in raw
    assert "XXXXXXXXXXXX" not in raw
    assert "Bearer x" not in raw
    assert REDACTED in raw
    (line,) = _lines(stream)
    assert line["event"] == "x"
    assert line["level"] == "info"
    assert "timestamp" in line
    assert line["api_key"] == REDACTED
    assert line["note"] == f"token sk_test_{REDACTED} inside"
    assert line["nested"] == {"authorization": REDACTED, "host": "web-1"}


def test_key_shaped_strings_are_masked_anywhere(stream: io.StringIO) -> None:
    secret = "whsec_0123456789abcdef"
    structlog.get_logger().warning(
        "call_failed",
        url=f"https://example.test/hook?k={LIVE}",
        attempts=[LIVE, "plain"],
        deep={"a": {"b": f"x {secret} y"}},
        count=3,
    )
    raw = stream.getvalue()
    assert LIVE not in raw and secret not in raw
    (line,) = _lines(stream)
    assert line["url"] == f"https://example.test/hook?k=sk_live_{REDACTED}"
    assert line["attempts"] == [f"sk_live_{REDACTED}", "plain"]
    assert line["deep"] == {"a": {"b": f"x whsec_{REDACTED} y"}}
    assert line["count"] == 3


def test_secrets_in_exception_text_are_masked(stream: io.StringIO) -> None:
    try:
        raise RuntimeError(f"upstream refused {LIVE}")
    except RuntimeError:
        structlog.get_logger().exception("boom")
    raw = stream.getvalue()
    assert LIVE not in raw
    assert "RuntimeError" in raw


def test_secret_field_names_are_case_insensitive(stream: io.StringIO) -> None:
    structlog.get_logger().info("req", headers={"Authorization": "Bearer opaque-token-1"})
    assert "opaque-token-1" not in stream.getvalue()


def test_debug_is_filtered_at_info(stream: io.StringIO) -> None:
    log = structlog.get_logger()
    log.debug("hidden")
    log.info("shown")
    assert [line["event"] for line in _lines(stream)] == ["shown"]


def test_debug_is_emitted_at_debug_level() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    try:
        structlog.get_logger().debug("visible")
    finally:
        structlog.reset_defaults()
    assert [line["event"] for line in _lines(out)] == ["visible"]


def test_warning_level_drops_info() -> None:
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    try:
        log = structlog.get_logger()
        log.info("dropped")
        log.error("kept")
    finally:
        structlog.reset_defaults()
    assert [line["event"] for line in _lines(out)] == ["kept"]


# --- metrics -----------------------------------------------------------------------------------


@pytest.fixture
def exposition() -> str:
    metrics = Metrics(CollectorRegistry())
    metrics.notifications.labels("webhook", "delivered").inc()
    metrics.rate_limited.inc()
    return generate_latest(metrics.registry).decode()


def test_no_created_series(exposition: str) -> None:
    assert "_created" not in exposition
    assert "alert_agent_notifications_total" in exposition  # the exposition is not empty


def test_metric_names_follow_conventions(exposition: str) -> None:
    families = list(text_string_to_metric_families(exposition))
    assert len(families) > 10
    for fam in families:
        for sample in fam.samples:
            assert sample.name.startswith("alert_agent_"), sample.name
            if fam.type == "counter":
                assert sample.name.endswith("_total"), sample.name


def test_counter_type_lines_end_in_total(exposition: str) -> None:
    counters = [
        line.split()[2] for line in exposition.splitlines()
        if line.startswith("# TYPE ") and line.endswith(" counter")
    ]
    assert counters
    assert all(name.endswith("_total") for name in counters), counters


def test_labelled_series_are_pre_initialised(exposition: str) -> None:
    assert 'alert_agent_notifications_accepted_total{channel="in-app"} 0.0' in exposition
    assert 'alert_agent_outbox_depth{state="scheduled"} 0.0' in exposition
    assert (
        'alert_agent_notifications_total{channel="webhook",outcome="delivered"} 1.0' in exposition
    )
