"""Slack's request signature, the click payload and the response_url check
(agent/channels/slack_interactions.py), against Slack's published vector and the cases of
python-slack-sdk's tests/slack_sdk/signature/test_signature_verifier.py."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
import pytest

from agent.channels import slack_interactions as si
from agent.channels.base import Message
from agent.channels.slack_blocks import bodies

# Slack's documentation, "Verifying requests from Slack" (the same values in python-slack-sdk's
# test_signature_verifier.py): the signing secret, a slash command's raw body, its timestamp
# and the signature Slack sent.
SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = 1531420618.0


def test_the_documented_vector_is_reproduced() -> None:
    assert si.signature(SECRET, TIMESTAMP, BODY) == SIGNATURE
    assert si.signature_problem(SECRET, TIMESTAMP, SIGNATURE, BODY, NOW) is None


@pytest.mark.parametrize(("timestamp", "given", "body", "now", "problem"), [
    # slack-sdk test_is_valid_request_invalid_body: the body changed after signing
    (TIMESTAMP, SIGNATURE, BODY + b"------", NOW, si.INVALID_SIGNATURE),
    # slack-sdk test_is_valid_request_expiration: the real clock, years after the timestamp
    (TIMESTAMP, SIGNATURE, BODY, 1_700_000_000.0, si.STALE_TIMESTAMP),
    # slack-sdk test_is_valid_none: a missing timestamp or signature
    (None, SIGNATURE, BODY, NOW, si.MISSING_SIGNATURE),
    (TIMESTAMP, None, BODY, NOW, si.MISSING_SIGNATURE),
    ("", "", BODY, NOW, si.MISSING_SIGNATURE),
    # five minutes is the limit, either way (a clock behind Slack's too)
    (TIMESTAMP, SIGNATURE, BODY, NOW + 301, si.STALE_TIMESTAMP),
    (TIMESTAMP, SIGNATURE, BODY, NOW - 301, si.STALE_TIMESTAMP),
    # not a number: refused before any arithmetic
    ("1531420618.5", SIGNATURE, BODY, NOW, si.STALE_TIMESTAMP),
    ("nan", SIGNATURE, BODY, NOW, si.STALE_TIMESTAMP),
    ("١٥٣١٤٢٠٦١٨", SIGNATURE, BODY, NOW, si.STALE_TIMESTAMP),  # Arabic-Indic digits
    # another secret's signature, another scheme, a signature of the right length but wrong
    (TIMESTAMP, si.signature(b"other", TIMESTAMP, BODY), BODY, NOW, si.INVALID_SIGNATURE),
    (TIMESTAMP, "v1=" + SIGNATURE[3:], BODY, NOW, si.INVALID_SIGNATURE),
    (TIMESTAMP, "v0=" + "0" * 64, BODY, NOW, si.INVALID_SIGNATURE),
    (TIMESTAMP, "v0=ü", BODY, NOW, si.INVALID_SIGNATURE),
])
def test_refusals(timestamp: str | None, given: str | None, body: bytes, now: float,
                  problem: str) -> None:
    assert si.signature_problem(SECRET, timestamp, given, body, now) == problem


def test_the_window_edges_are_inside() -> None:
    for now in (NOW + 300, NOW - 300):
        assert si.signature_problem(SECRET, TIMESTAMP, SIGNATURE, BODY, now) is None


def _form(payload: object) -> bytes:
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


CLICK = {
    "type": "block_actions",
    "user": {"id": "U2CERLKJA", "username": "roadrunner", "name": "roadrunner",
             "team_id": "T1DC2JH3J"},
    "api_app_id": "A02", "token": "unused", "trigger_id": "1.2.3",
    "container": {"type": "message", "message_ts": "1531420618.000100",
                  "channel_id": "C0ALERTS01", "is_ephemeral": False},
    "channel": {"id": "C0ALERTS01", "name": "alerts"},
    "response_url": "https://hooks.slack.com/actions/T1DC2JH3J/397700885554/96rGlfmibIGl",
    "actions": [{"action_id": "ack", "block_id": "alert_agent_ack", "value": "ntf_0123",
                 "type": "button", "action_ts": "1531420619.1",
                 "text": {"type": "plain_text", "text": "Acknowledge"}}],
}


def test_a_click_is_read_from_the_form_payload() -> None:
    click = si.parse_click(_form(CLICK))
    assert click == si.Click("ntf_0123", "U2CERLKJA", "roadrunner",
                             "https://hooks.slack.com/actions/T1DC2JH3J/397700885554/"
                             "96rGlfmibIGl")


@pytest.mark.parametrize("body", [
    b"", b"payload=", b"payload=%7B", b"\xff\xfe", b"payload=%5B%5D",
    _form({**CLICK, "type": "view_submission"}),
    _form({**CLICK, "actions": [{**CLICK["actions"][0], "action_id": "other"}]}),  # type: ignore[index]
    _form({**CLICK, "actions": [{**CLICK["actions"][0], "value": 7}]}),  # type: ignore[index]
    _form({**CLICK, "user": {"name": "no id"}}),
    _form({**CLICK, "actions": "ack"}),
])
def test_anything_else_is_not_a_click(body: bytes) -> None:
    assert si.parse_click(body) is None


@pytest.mark.parametrize(("url", "ok"), [
    ("https://hooks.slack.com/actions/T1/2/abc", True),
    ("https://hooks.slack.com:443/actions/T1/2/abc", True),
    ("http://hooks.slack.com/actions/T1/2/abc", False),  # not https
    ("https://hooks.slack.com.evil.test/actions", False),
    ("https://user@hooks.slack.com/actions", False),
    ("https://hooks.slack.com:8443/actions", False),
    ("https://127.0.0.1/actions", False),
    ("http://169.254.169.254/latest/meta-data", False),
    ("https://hooks.slack.com:x/actions", False),  # not a port
    ("http://127.0.0.1:8123/actions/T0/1/x", True),  # the configured api_url's host
    ("http://127.0.0.1:8124/actions/T0/1/x", False),  # another port on that host
    ("file:///etc/passwd", False),
])
def test_response_urls_only_go_to_slack(url: str, ok: bool) -> None:
    assert si.response_url_ok(url, "http://127.0.0.1:8123/api") is ok


def _message(**kw: object) -> Message:
    fields: dict[str, object] = dict(notification_id="ntf_0123", channel="slack", to="#alerts",
                                     text="disk full", subject="db down", severity="critical",
                                     priority="high", created_at=0.0)
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


def test_the_button_goes_under_the_first_part_only() -> None:
    button = si.ack_button("ntf_0123")
    assert button is not None
    parts = bodies(_message(text="x" * 50_000), "split", button)
    assert len(parts) == 2
    assert parts[0]["blocks"][-1] == button
    assert button["elements"][0]["action_id"] == "ack"
    assert button["elements"][0]["value"] == "ntf_0123"
    assert all(b["type"] != "actions" for b in parts[1]["blocks"])
    assert all(b["type"] != "actions" for b in bodies(_message(), "split")[0]["blocks"])
    assert si.ack_button("") is None and si.ack_button("n" * 2001) is None
