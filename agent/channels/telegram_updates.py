"""Telegram button presses: the Acknowledge inline keyboard, the webhook's secret-token check,
and the ``callback_query`` update a press arrives as.

Pure functions, no I/O. Telegram sends every update registered with ``setWebhook`` to the
webhook URL with the ``secret_token`` given there in ``X-Telegram-Bot-Api-Secret-Token``; an
update is a JSON object with ``update_id`` and one kind of content. A press is a
``callback_query``: ``id`` (answered with answerCallbackQuery), ``from`` (the user: ``id``,
``first_name``, ``username``), ``message`` (the bot's message with the button: ``chat.id``,
``message_id``), ``chat_instance`` and ``data`` (the button's ``callback_data``).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

import orjson

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# setWebhook's secret_token: 1-256 characters, A-Z, a-z, 0-9, _ and -.
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# The update kinds the webhook asks for (setWebhook allowed_updates).
ALLOWED = ("callback_query", "message")
CALLBACK_PREFIX = "ack:"
MAX_CALLBACK_BYTES = 64  # callback_data: 1-64 bytes
MAX_ANSWER_CHARS = 200  # answerCallbackQuery text: 0-200 characters
ACK_LABEL = "Acknowledge"


def ack_keyboard(notification_id: str) -> dict[str, Any] | None:
    """The inline keyboard with the Acknowledge button for ``notification_id``; None when the
    id does not fit in ``callback_data``."""
    data = CALLBACK_PREFIX + notification_id
    if not notification_id or len(data.encode()) > MAX_CALLBACK_BYTES:
        return None
    return {"inline_keyboard": [[{"text": ACK_LABEL, "callback_data": data}]]}


def secret_ok(expected: str, given: str | None) -> bool:
    """Whether the header carries the registered secret token (constant-time compare)."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode(errors="replace"))


@dataclass(frozen=True, slots=True)
class Press:
    """A press of an inline button: the query to answer, who pressed, and the notification
    it acknowledges (None when the button is not an Acknowledge button of this agent)."""

    query_id: str
    user_id: str
    user_name: str | None
    notification_id: str | None
    chat_id: int | None
    message_id: int | None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any, limit: int = 256) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= limit else None


def parse_update(body: bytes) -> Press | None:
    """The button press in an update; None for any other update (a message, an edited one)
    or one too malformed to answer."""
    try:
        update = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    query = update.get("callback_query") if isinstance(update, dict) else None
    if not isinstance(query, dict):
        return None
    query_id = _text(query.get("id"))
    sender = query.get("from")
    user_id = _int(sender.get("id")) if isinstance(sender, dict) else None
    if query_id is None or user_id is None or not isinstance(sender, dict):
        return None
    name = _text(sender.get("username")) or _text(sender.get("first_name"))
    data = query.get("data")
    nid = (data[len(CALLBACK_PREFIX):] if isinstance(data, str) and data.startswith(
        CALLBACK_PREFIX) and len(data.encode()) <= MAX_CALLBACK_BYTES else None)
    message = query.get("message")
    chat = message.get("chat") if isinstance(message, dict) else None
    return Press(query_id, str(user_id), name, nid or None,
                 _int(chat.get("id")) if isinstance(chat, dict) else None,
                 _int(message.get("message_id")) if isinstance(message, dict) else None)
