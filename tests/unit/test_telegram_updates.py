"""Telegram button presses (agent/channels/telegram_updates.py) and the rule for which messages
carry an Acknowledge button (agent/channels/ack.py)."""

from __future__ import annotations

import orjson
import pytest

from agent.channels import telegram_updates as tu
from agent.channels.ack import offers_ack
from agent.channels.base import Message

# A callback_query update with the fields the Bot API reference lists (Update: update_id,
# callback_query; CallbackQuery: id, from, message, chat_instance, data; User: id, is_bot,
# first_name, username, language_code; Message: message_id, from, chat, date, text).
UPDATE = {
    "update_id": 10000,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": {"id": 1111111, "is_bot": False, "first_name": "Ana", "last_name": "Silva",
                 "username": "ana_oncall", "language_code": "en"},
        "message": {
            "message_id": 1365, "date": 1441645532,
            "from": {"id": 123456789, "is_bot": True, "first_name": "alert-agent",
                     "username": "alert_agent_bot"},
            "chat": {"id": -1001234567890, "type": "supergroup", "title": "ops"},
            "text": "\U0001f534 db down",
            "reply_markup": {"inline_keyboard": [[{"text": "Acknowledge",
                                                   "callback_data": "ack:ntf_0123"}]]},
        },
        "chat_instance": "-8914325602304651234",
        "data": "ack:ntf_0123",
    },
}


def test_a_documented_callback_query_is_read() -> None:
    press = tu.parse_update(orjson.dumps(UPDATE))
    assert press == tu.Press("4382bfdwdsb323b2d9", "1111111", "ana_oncall", "ntf_0123",
                             -1001234567890, 1365)


def test_first_name_when_there_is_no_username_and_foreign_buttons() -> None:
    query = dict(UPDATE["callback_query"])  # type: ignore[call-overload]
    query["from"] = {"id": 42, "is_bot": False, "first_name": "Raj"}
    query["data"] = "vote:yes"
    press = tu.parse_update(orjson.dumps({"update_id": 1, "callback_query": query}))
    assert press is not None
    assert (press.user_id, press.user_name, press.notification_id) == ("42", "Raj", None)
    # An inaccessible (old) message has no text but still its chat and id.
    query["message"] = {"chat": {"id": 42, "type": "private"}, "message_id": 7, "date": 0}
    query["data"] = "ack:"
    press = tu.parse_update(orjson.dumps({"update_id": 1, "callback_query": query}))
    assert press is not None and press.notification_id is None
    assert (press.chat_id, press.message_id) == (42, 7)


@pytest.mark.parametrize("body", [
    b"", b"{", b"[]", b'{"update_id": 1}',
    orjson.dumps({"update_id": 2, "message": {"message_id": 1, "text": "hi",
                                              "chat": {"id": 1, "type": "private"}}}),
    orjson.dumps({"update_id": 3, "callback_query": {"from": {"id": 1}, "data": "ack:n"}}),
    orjson.dumps({"update_id": 4, "callback_query": {"id": "q", "from": {"id": "1"}}}),
    orjson.dumps({"update_id": 5, "callback_query": {"id": "q", "from": {"id": True}}}),
])
def test_other_updates_are_not_presses(body: bytes) -> None:
    assert tu.parse_update(body) is None


def test_the_keyboard_fits_callback_data() -> None:
    keyboard = tu.ack_keyboard("ntf_0123456789abcdef0123")
    assert keyboard == {"inline_keyboard": [[{"text": "Acknowledge",
                                              "callback_data": "ack:ntf_0123456789abcdef0123"}]]}
    assert tu.ack_keyboard("n" * 60) == {"inline_keyboard": [[
        {"text": "Acknowledge", "callback_data": "ack:" + "n" * 60}]]}
    assert tu.ack_keyboard("n" * 61) is None  # 65 bytes
    assert tu.ack_keyboard("é" * 31) is None  # 4 + 62 bytes
    assert tu.ack_keyboard("") is None


def test_the_secret_token() -> None:
    assert tu.secret_ok("s3cret_token-1", "s3cret_token-1")
    assert not tu.secret_ok("s3cret_token-1", "s3cret_token-2")
    assert not tu.secret_ok("s3cret_token-1", None)
    assert not tu.secret_ok("s3cret_token-1", "")
    assert not tu.secret_ok("s3cret_token-1", "s3cret_token-1é")
    assert tu.SECRET_TOKEN.fullmatch("a" * 256) and not tu.SECRET_TOKEN.fullmatch("a" * 257)
    assert not tu.SECRET_TOKEN.fullmatch("has space") and not tu.SECRET_TOKEN.fullmatch("")


def _message(**kw: object) -> Message:
    fields: dict[str, object] = dict(
        notification_id="ntf_1", channel="telegram", to="42", text="t", subject="s",
        severity="critical", priority="high", created_at=0.0,
        metadata={"alert_ids": ["alt_1"], "status": "firing"})
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


def test_which_messages_offer_an_ack() -> None:
    assert offers_ack(_message())
    assert not offers_ack(_message(status="resolved"))
    assert not offers_ack(_message(metadata={}))  # a plain API send
    assert not offers_ack(_message(metadata={"alert_ids": []}))
    assert not offers_ack(_message(metadata={"alert_ids": ["alt_1"], "acknowledged": True}))
    assert not offers_ack(_message(simulated=True))
