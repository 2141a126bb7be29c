"""The Telegram channel's pure parts: how a Bot API refusal is classified, and the HTML it sends
(checked with the emulator's parser, which follows Telegram's HTML style)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.channels.base import (
    ErrorScope,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.budget import utf16_units
from agent.channels.telegram import _ApiError, classify, render
from tests.emulators.telegram import parse_html


def _err(status: int, description: str = "x", header: str | None = None,
         **parameters: Any) -> _ApiError:
    return _ApiError(status, description, parameters, header)


def _msg(text: str, subject: str | None = "db1", **kw: Any) -> Message:
    return Message(notification_id="ntf_1", channel="telegram", to="1", text=text,
                   subject=subject, severity="warning", priority="normal", created_at=0.0, **kw)


def test_flood_control_takes_the_body_retry_after_over_the_header() -> None:
    err = classify(_err(429, "Too Many Requests: retry after 9", "3", retry_after=9))
    assert isinstance(err, RetryableDeliveryError)
    assert (err.reason.value, err.retry_after) == ("rate_limited", 9.0)
    only_header = classify(_err(429, header="3"))
    assert isinstance(only_header, RetryableDeliveryError) and only_header.retry_after == 3.0
    neither = classify(_err(429))
    assert isinstance(neither, RetryableDeliveryError) and neither.retry_after is None


@pytest.mark.parametrize(("status", "description", "cls", "reason", "scope"), [
    (500, "Internal Server Error", RetryableDeliveryError, "provider_unavailable", "message"),
    (502, "Bad Gateway", RetryableDeliveryError, "provider_unavailable", "message"),
    (401, "Unauthorized", PermanentDeliveryError, "provider_rejected", "channel"),
    (404, "Not Found", PermanentDeliveryError, "provider_rejected", "channel"),
    (403, "Forbidden: bot was blocked by the user", PermanentDeliveryError,
     "provider_rejected", "recipient"),
    (403, "Forbidden: bot was kicked from the group chat", PermanentDeliveryError,
     "provider_rejected", "recipient"),
    (400, "Bad Request: chat not found", PermanentDeliveryError, "invalid_recipient",
     "recipient"),
    (400, "Bad Request: can't parse entities: x", PermanentDeliveryError, "provider_rejected",
     "message"),
])
def test_refusals(status: int, description: str, cls: type, reason: str, scope: str) -> None:
    err = classify(_err(status, description))
    assert (type(err), err.reason.value, err.scope, err.http_status) == (
        cls, reason, ErrorScope(scope), status)
    assert err.details == f"HTTP {status}: {description}"


def test_migration_is_read_from_the_parameters() -> None:
    assert _err(400, migrate_to_chat_id=-100123).migrate_to == -100123
    assert _err(400, migrate_to_chat_id="-100123").migrate_to is None
    assert _err(400).migrate_to is None


def test_each_part_parses_and_only_the_subject_is_bold() -> None:
    text = "\n".join(f"<tag{i}> a&b &amp; &#60; {'x' * 60}" for i in range(300))
    parts = render(_msg(text, subject="<b>db & co</b>"))
    assert len(parts) > 1
    plain = [parse_html(p) for p in parts]
    label = f"(1/{len(parts)})\n"
    assert plain[0][0].startswith(label + "\U0001f7e0 <b>db & co</b>\n")
    assert plain[0][1] == [{"type": "bold", "offset": utf16_units(label + "\U0001f7e0 "),
                            "length": utf16_units("<b>db & co</b>")}]
    assert all(entities == [] for _, entities in plain[1:])
    assert all(utf16_units(t) <= 4096 for t, _ in plain)
    assert "<tag0> a&b &amp; &#60; " in plain[0][0]  # the values, exactly as they were


def test_a_long_subject_is_one_bounded_line() -> None:
    [html] = render(_msg("x", subject="s" * 1000 + "\nsecond line"))
    text, entities = parse_html(html)
    assert text == "\U0001f7e0 " + "s" * 255 + "\u2026\nx"
    assert entities[0]["length"] == 256


def test_an_empty_text_sends_the_header_alone() -> None:
    assert render(_msg("  ")) == ["\U0001f7e0 <b>db1</b>"]
