"""The SMS channel: Twilio's Messages API (agent/channels/twilio.py); ``to`` is an E.164 number.

A text is sent as one SMS of at most ``max_segments`` segments. Twilio encodes a text in GSM-7
when every character is in the GSM 03.38 alphabet (the extension table's ``^{}\\[~]|€`` and form
feed take two septets each): 160 septets in a single SMS, 153 per segment of a concatenated one;
any other character makes the whole text UCS-2: 70 UTF-16 units, 67 per segment. A longer text
is truncated (an SMS cannot be edited, so there is nothing to split into) with a visible marker
and the alert's link; the marker keeps a GSM-7 text GSM-7 (``...``, not ``…``).

After Twilio's ``201`` the notification is ``sent``; the status callback makes it ``delivered``
or ``failed`` (services/receipts.py).
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from agent import addresses
from agent.channels import budget, twilio
from agent.channels.base import (
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    require_text_address,
)
from agent.domain import FailureReason

# GSM 03.38: the default alphabet (without ESC) and the extension table, reached by ESC.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
GSM_SINGLE, GSM_SEGMENT = 160, 153
UCS2_SINGLE, UCS2_SEGMENT = 70, 67
# The truncation marker around the link: "\n... truncated, N more characters: full text at ".
MARKER_UNITS = 48
MIN_TEXT_UNITS = 30  # less text than this beside the link: the link is left out
SENDER_BURST = 1.0


def is_gsm(text: str) -> bool:
    """Whether ``text`` can be sent in GSM-7."""
    return all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)


def septets(text: str) -> int:
    """GSM-7 septets of ``text`` (extension characters count two)."""
    return sum(2 if c in GSM_EXTENDED else 1 for c in text)


def segments(text: str) -> int:
    """How many segments Twilio sends ``text`` in. A two-unit character (a GSM escape, a
    UTF-16 surrogate pair) is never split across segments."""
    gsm = is_gsm(text)
    units = ([2 if c in GSM_EXTENDED else 1 for c in text] if gsm
             else [2 if ord(c) > 0xFFFF else 1 for c in text])
    single, per = (GSM_SINGLE, GSM_SEGMENT) if gsm else (UCS2_SINGLE, UCS2_SEGMENT)
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for u in units:
        if used + u > per:
            count, used = count + 1, 0
        used += u
    return count


def fit(text: str, max_segments: int, link: str | None = None) -> str:
    """``text`` when it fits ``max_segments`` segments; else truncated to fit with a marker
    saying how much was cut and, given ``link``, where to read the rest."""
    if segments(text) <= max_segments:
        return text
    gsm = is_gsm(text) and (link is None or is_gsm(link))
    single, per = (GSM_SINGLE, GSM_SEGMENT) if gsm else (UCS2_SINGLE, UCS2_SEGMENT)
    # Each segment boundary may waste one unit (a two-unit character moved to the next one).
    room = single if max_segments == 1 else per * max_segments - (max_segments - 1)
    measure: budget.Measure = septets if gsm else budget.utf16_units
    if link is not None and measure(link) + MARKER_UNITS > room - MIN_TEXT_UNITS:
        link = None  # the link would crowd out the text (one UCS-2 segment): the marker alone
    return budget.truncate(text, room, link=link, measure=measure,
                           ellipsis="..." if gsm else "\u2026")


class SmsChannel(twilio.TwilioMessaging):
    name = "sms"
    sender_burst = SENDER_BURST
    # No edit, no thread: every message is a new SMS, truncated to the segment budget.
    limits = Limits(overflow="truncate")

    def __init__(self, account: twilio.TwilioAccount, sender: twilio.Sender,
                 max_segments: int = 4, rate_per_second: float = 1.0) -> None:
        super().__init__(account, sender.key, rate_per_second)
        self._sender = sender
        self._max_segments = max_segments

    def validate_address(self, to: str) -> str:
        """An E.164 phone number (``+`` and the country code); raises ``invalid_phone``."""
        require_text_address(to, max_chars=64)
        return addresses.phone(to)

    async def send(self, message: Message) -> DeliveryResult:
        try:
            to = addresses.phone(message.to)
        except addresses.AddressError:  # queued before the check existed
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         "not an E.164 phone number",
                                         scope=ErrorScope.RECIPIENT) from None
        body = fit(twilio.with_ack_link(message), self._max_segments,
                   message.ack_url or message.link)
        return await self._account.create_message({"To": to, "Body": body,
                                                   **self._sender.form})

    async def close(self) -> None:
        return None


def build_sms(cfg: twilio.TwilioSettings, secret: twilio.Secret,
              session: Callable[[], aiohttp.ClientSession],
              public_url: str | None) -> SmsChannel:
    """The channel from ``channels.twilio``; a ChannelConfigError names the setting."""
    account = twilio.account_from(cfg, secret, session, public_url)
    return SmsChannel(account, twilio.sms_sender(cfg), cfg.max_segments, cfg.rate_per_second)
