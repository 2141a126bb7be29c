"""Slack interactivity: the signed-request check, the ``block_actions`` payload of an
Acknowledge click, and where an answer to that click may be posted.

Pure functions: no I/O, no clock (``now`` is passed in).

The check is Slack's ("Verifying requests from Slack", the same as ``slack_sdk.signature``):
``X-Slack-Signature`` is ``v0=`` and the hex HMAC-SHA256, keyed with the app's signing secret, of
``v0:{X-Slack-Request-Timestamp}:{raw body}``, compared in constant time; a timestamp more than
five minutes from ``now`` is refused, so a captured request cannot be replayed later.

A click arrives as ``application/x-www-form-urlencoded`` with one field, ``payload``: the JSON of
a ``block_actions`` interaction (``user``, ``actions``, ``response_url``, ``container``...).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
TOLERANCE_SECONDS = 300
# The button's action_id; its value is the notification id.
ACK_ACTION_ID = "ack"
ACK_LABEL = "Acknowledge"
# Slack's limits for a button: value up to 2,000 characters.
MAX_VALUE_CHARS = 2000
# Where Slack's response_url points (``https://hooks.slack.com/actions/T…/…/…``).
RESPONSE_HOST = "hooks.slack.com"
# Refusal reasons, as the ack_refused metric labels them.
MISSING_SIGNATURE = "missing_signature"
STALE_TIMESTAMP = "stale_timestamp"
INVALID_SIGNATURE = "invalid_signature"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``v0=`` + the hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed with ``secret``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def signature_problem(secret: bytes, timestamp: str | None, given: str | None, body: bytes,
                      now: float, tolerance: float = TOLERANCE_SECONDS) -> str | None:
    """Why a request is not Slack's (MISSING_SIGNATURE, STALE_TIMESTAMP, INVALID_SIGNATURE),
    or None when it is: signed with ``secret`` at a time within ``tolerance`` of ``now``."""
    if not timestamp or not given:
        return MISSING_SIGNATURE
    ts = timestamp.strip()
    if not ts.isascii() or not ts.isdigit() or len(ts) > 12:
        return STALE_TIMESTAMP
    if abs(now - int(ts)) > tolerance:
        return STALE_TIMESTAMP
    expected = signature(secret, ts, body)
    if not hmac.compare_digest(expected.encode(), given.strip().encode(errors="replace")):
        return INVALID_SIGNATURE
    return None


def ack_button(notification_id: str) -> dict[str, Any] | None:
    """The ``actions`` block with the Acknowledge button for ``notification_id``; None when
    the id cannot be a button's value."""
    if not notification_id or len(notification_id) > MAX_VALUE_CHARS:
        return None
    return {"type": "actions", "block_id": "alert_agent_ack", "elements": [{
        "type": "button", "action_id": ACK_ACTION_ID, "style": "primary",
        "text": {"type": "plain_text", "text": ACK_LABEL, "emoji": False},
        "value": notification_id}]}


@dataclass(frozen=True, slots=True)
class Click:
    """An Acknowledge click: which notification, who clicked, where to answer them."""

    notification_id: str
    user_id: str
    user_name: str | None
    response_url: str | None


def _text(value: Any, limit: int = 256) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= limit else None


def parse_click(body: bytes) -> Click | None:
    """The Acknowledge click in a form-encoded interactivity request; None for anything else
    (another interaction type, another action, a malformed payload)."""
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        payload = orjson.loads(form.get("payload", ""))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    user = payload.get("user")
    actions = payload.get("actions")
    if not isinstance(user, dict) or not isinstance(actions, list):
        return None
    user_id = _text(user.get("id"), 64)
    action = next((a for a in actions if isinstance(a, dict)
                   and a.get("action_id") == ACK_ACTION_ID), None)
    value = _text(action.get("value"), MAX_VALUE_CHARS) if action is not None else None
    if user_id is None or value is None:
        return None
    # Slack sends both: ``name`` (the workspace handle) and ``username``; either may be absent.
    name = _text(user.get("name")) or _text(user.get("username"))
    return Click(value, user_id, name, _text(payload.get("response_url"), 2048))


def response_url_ok(url: str, api_url: str) -> bool:
    """Whether an answer may be posted to ``url``: https on hooks.slack.com, or the host of
    the configured ``api_url`` (an emulator, a proxy). Never an address a payload made up."""
    try:
        parts, api = urlsplit(url), urlsplit(api_url)
        here = (parts.scheme, parts.hostname, parts.port)
        allowed = (api.scheme, api.hostname, api.port)
    except ValueError:  # a port that is not a number
        return False
    if parts.username or parts.password or not parts.hostname:
        return False
    if here[0] == "https" and here[1] == RESPONSE_HOST and here[2] in (None, 443):
        return True
    return here == allowed
