"""Retry-After parsing, HTTP status classification and webhook signing/payload."""

from __future__ import annotations

import hashlib
import hmac
import time
from email.utils import formatdate

import orjson
import pytest

from agent.channels.base import (
    DeliveryError,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
    classify_status,
    parse_retry_after,
)
from agent.channels.webhook import payload, sign
from agent.domain import FailureReason
from tests.helpers import WEBHOOK_SECRET

# --- parse_retry_after -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("0", 0.0), (" 5 ", 5.0), ("1.5", 1.5)],
)
def test_retry_after_delta_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "tomorrow at noon", "12abc", "nan"])
def test_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_negative_is_zero() -> None:
    assert parse_retry_after("-5") == 0.0


def test_retry_after_is_capped() -> None:
    assert parse_retry_after("999999") == 3600.0
    assert parse_retry_after("999999", max_seconds=30.0) == 30.0
    assert parse_retry_after("20", max_seconds=30.0) == 20.0


def test_retry_after_http_date_in_the_future() -> None:
    value = formatdate(time.time() + 120, usegmt=True)
    seconds = parse_retry_after(value)
    assert seconds is not None
    # HTTP dates have one-second resolution; allow for that and a slow test machine.
    assert 115.0 <= seconds <= 121.0


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_retry_after_http_date_far_future_is_capped() -> None:
    value = formatdate(time.time() + 10 * 86400, usegmt=True)
    assert parse_retry_after(value) == 3600.0


# --- classify_status ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_returns(status: int) -> None:
    assert classify_status(status, None, "") is None


def test_429_is_retryable_rate_limited_with_retry_after() -> None:
    with pytest.raises(RetryableDeliveryError) as info:
        classify_status(429, "7", "slow down")
    err = info.value
    assert err.reason is FailureReason.RATE_LIMITED
    assert err.retry_after == 7.0
    assert "HTTP 429" in err.details and "slow down" in err.details


def test_429_without_retry_after() -> None:
    with pytest.raises(RetryableDeliveryError) as info:
        classify_status(429, None, "")
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_server_errors_and_timeouts_are_retryable_unavailable(status: int) -> None:
    with pytest.raises(RetryableDeliveryError) as info:
        classify_status(status, None, "oops")
    assert info.value.reason is FailureReason.PROVIDER_UNAVAILABLE
    assert f"HTTP {status}" in info.value.details


def test_503_honours_retry_after() -> None:
    with pytest.raises(RetryableDeliveryError) as info:
        classify_status(503, "30", "")
    assert info.value.retry_after == 30.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_client_errors_are_permanent_rejected(status: int) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        classify_status(status, "30", "bad payload")
    err = info.value
    assert err.reason is FailureReason.PROVIDER_REJECTED
    assert not isinstance(err, RetryableDeliveryError)
    assert isinstance(err, DeliveryError)
    assert err.details == f"HTTP {status}: bad payload"


def test_details_truncate_the_body_excerpt() -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        classify_status(400, None, "x" * 1000)
    assert info.value.details == "HTTP 400: " + "x" * 200


def test_delivery_error_str_carries_reason() -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        classify_status(404, None, "gone")
    assert str(info.value) == "provider_rejected: HTTP 404: gone"


# --- webhook sign / payload --------------------------------------------------------------------


def test_sign_matches_independent_hmac() -> None:
    secret = WEBHOOK_SECRET.encode()
    body = b'{"id":"ntf_1","message":"disk full \xe2\x9c\x85"}'
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert sign(secret, body) == "sha256=" + expected


def test_sign_depends_on_secret_and_body() -> None:
    body = b"{}"
    assert sign(b"a", body) != sign(b"b", body)
    assert sign(b"a", body) != sign(b"a", b"{ }")


def _message() -> Message:
    return Message(
        notification_id="ntf_abc",
        channel="webhook",
        to="https://example.test/hook",
        text="Disk full on web-1 🔥",
        subject="Disk",
        severity="critical",
        priority="high",
        metadata={"host": "web-1", "n": 3},
        created_at=1_700_000_000.25,
    )


def test_payload_is_json_with_message_fields() -> None:
    data = orjson.loads(payload(_message()))
    assert data == {
        "id": "ntf_abc",
        "object": "notification",
        "channel": "webhook",
        "to": "https://example.test/hook",
        "message": "Disk full on web-1 🔥",
        "subject": "Disk",
        "severity": "critical",
        "priority": "high",
        "metadata": {"host": "web-1", "n": 3},
        "created_at": "2023-11-14T22:13:20.250Z",
    }


def test_signature_of_payload_verifies() -> None:
    secret = WEBHOOK_SECRET.encode()
    body = payload(_message())
    header = sign(secret, body)
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(header, expected)


@pytest.mark.parametrize(
    ("status", "failure_class"),
    [(429, "retryable"), (503, "retryable"), (408, "retryable"), (404, "permanent"),
     (401, "permanent")],
)
def test_classified_errors_carry_status_and_class(status: int, failure_class: str) -> None:
    with pytest.raises(DeliveryError) as info:
        classify_status(status, None, "no")
    assert info.value.http_status == status
    assert info.value.failure_class == failure_class


def test_errors_raised_without_a_status_have_none() -> None:
    err = RetryableDeliveryError(FailureReason.TIMEOUT, "timed out")
    assert err.http_status is None and err.failure_class == "retryable"
