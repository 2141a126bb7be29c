"""The WhatsApp channel: Twilio's Messages API with ``whatsapp:`` addresses on ``To`` and
``From`` (agent/channels/twilio.py).

``to`` is a phone number, given as ``+E164`` or ``whatsapp:+E164``; it is kept as ``+E164`` (the
form the directory and the sms channel use) and sent as ``whatsapp:+E164``.

WhatsApp takes free text only within 24 hours of the recipient's last message to the sender
(the session window); outside it only a pre-approved template. A message that carries a
``content_sid`` (``Message.metadata["content_sid"]``: from the rule-file template or route
target, or an API sender's metadata) is sent as that template, ``ContentSid`` with
``ContentVariables`` (JSON, every value a one-line string)::

    "1"  the subject (first line of the text when there is none)
    "2"  the severity (critical, warning, info)
    "3"  the text on one line, at most 1,000 characters
    "4"  the link to the notification on the agent (``public_url``), else its id

Free text is cut to Twilio's 1,600 characters with a marker and the link.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import orjson

from agent import addresses
from agent.channels import budget, twilio
from agent.channels.base import (
    ChannelConfigError,
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    require_text_address,
)
from agent.domain import FailureReason

MAX_BODY_CHARS = 1600  # Twilio's limit on Body
MAX_VARIABLE_CHARS = 1000
PREFIX = "whatsapp:"
SENDER_BURST = 10.0


def _one_line(text: str, limit: int) -> str:
    # Template variables may not hold new lines or tabs (WhatsApp refuses them).
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "\u2026"


def content_variables(message: Message) -> str:
    """The ``ContentVariables`` JSON of a template message (the table in the docstring)."""
    subject = message.subject or message.text.strip().split("\n", 1)[0]
    return orjson.dumps({
        "1": _one_line(subject, 200) or message.severity,
        "2": message.severity,
        "3": _one_line(message.text, MAX_VARIABLE_CHARS) or message.severity,
        "4": message.link or message.notification_id,
    }).decode()


class WhatsAppChannel(twilio.TwilioMessaging):
    name = "whatsapp"
    sender_burst = SENDER_BURST
    limits = Limits(max_text_chars=None, overflow="truncate")

    def __init__(self, account: twilio.TwilioAccount, sender: str,
                 rate_per_second: float = 80.0) -> None:
        self._from = PREFIX + sender
        super().__init__(account, f"twilio:{self._from}", rate_per_second)

    def validate_address(self, to: str) -> str:
        """``+E164`` or ``whatsapp:+E164``, kept as ``+E164``; raises ``invalid_phone``."""
        require_text_address(to, max_chars=64)
        return twilio.whatsapp_number(to)

    async def send(self, message: Message) -> DeliveryResult:
        try:
            to = PREFIX + twilio.whatsapp_number(message.to)
        except addresses.AddressError:
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         "not a WhatsApp phone number (E.164)",
                                         scope=ErrorScope.RECIPIENT) from None
        form = {"To": to, "From": self._from}
        content_sid = message.metadata.get("content_sid")
        if content_sid is not None:
            if not isinstance(content_sid, str) or not twilio.CONTENT_SID.fullmatch(content_sid):
                raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED,
                                             "content_sid must be 'HX' and 32 hex digits")
            form |= {"ContentSid": content_sid, "ContentVariables": content_variables(message)}
        else:
            form["Body"] = budget.truncate(twilio.with_ack_link(message), MAX_BODY_CHARS,
                                           link=message.ack_url or message.link,
                                           measure=budget.utf16_units)
        return await self._account.create_message(form)

    async def close(self) -> None:
        return None


def build_whatsapp(cfg: twilio.TwilioSettings, secret: twilio.Secret,
                   session: Callable[[], aiohttp.ClientSession],
                   public_url: str | None) -> WhatsAppChannel | None:
    """The channel from ``channels.twilio``; None when ``whatsapp_from`` is not set (the
    channel is not configured). A ChannelConfigError names the setting that is wrong."""
    if not cfg.whatsapp_from:
        return None
    try:
        sender = twilio.whatsapp_number(cfg.whatsapp_from)
    except addresses.AddressError as exc:
        raise ChannelConfigError(
            f"channels.twilio.whatsapp_from: {exc.message}") from None
    account = twilio.account_from(cfg, secret, session, public_url)
    return WhatsAppChannel(account, sender, cfg.whatsapp_rate_per_second)
