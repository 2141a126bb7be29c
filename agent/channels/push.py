"""The push channel: ntfy (https://ntfy.sh or a self-hosted server).

``POST {ntfy_url}/{topic}`` with the text as the body and the notification's fields in headers
(ntfy docs, "Publishing"): ``Title`` (the subject), ``Priority`` (critical 5, warning 4, info 3; a
resolved message 3 at most, so that a recovery does not ring like an incident), ``Tags`` (an
emoji short code: rotating_light, warning, information_source; white_check_mark when resolved),
``Click`` (the alert on the agent, when ``public_url`` is set) and ``Authorization: Bearer`` when
a token is configured (public topics need none). Header values that are not ASCII go as RFC 2047
encoded words, which ntfy decodes (docs: "you may also encode any header as RFC 2047").

ntfy answers the published message as JSON (``id``, ``time``, ``event``, ``topic``...). From
ntfy 2.16 a message can be updated, cleared or deleted by its *sequence id*, which is the first
message's ``id`` unless one was chosen (docs, "Updating + deleting notifications"): a publish
with ``X-Sequence-ID: <id>`` replaces the notification on the subscribers' devices, and
``DELETE {ntfy_url}/{topic}/{id}`` removes it. So a group's later message edits its first one,
and ``retract: true`` deletes it on resolve. An older server ignores the header (the update
arrives as a new notification, the fallback the issue asks for) and answers 404 to the delete
(the resolved message is then published instead).

Bodies over 4,096 bytes would become attachments (docs, "Limitations"), so the text is cut to
fit: by default truncated with a marker and the link (a push notification is read at a glance);
``overflow: split`` sends numbered parts instead, and only the first of them is edited later.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import Field, SecretStr
from yarl import URL

from agent.addresses import FCM_PREFIX
from agent.channels import budget, http
from agent.channels.base import (
    AddressError,
    ChannelConfigError,
    ChannelSettings,
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    Rate,
    require_text_address,
)
from agent.domain import FailureReason

MAX_BODY_BYTES = 4096  # ntfy's message size limit; a larger body becomes an attachment
MAX_TITLE_CHARS = 256
TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")  # ntfy's topicRegex (server/server.go)
PRIORITY = {"critical": 5, "warning": 4, "info": 3}
TAG = {"critical": "rotating_light", "warning": "warning", "info": "information_source"}
RESOLVED_TAG = "white_check_mark"
# ntfy.sh's documented visitor limit (docs, "Limitations"; server defaults
# visitor-request-limit-burst 60, -replenish 5s). A self-hosted server sets its own (often
# exempting hosts on its network), so no bucket is declared for one: its 429 defers anyway.
PUBLIC_HOST = "ntfy.sh"
SET_RATE_BURST = 10.0
PUBLIC_RATE = Rate("push:ntfy.sh", per_second=0.2, burst=60.0)
# RFC 2047 words stay under 76 characters: 45 bytes of UTF-8 are 60 of base64.
_WORD_BYTES = 45


class PushSettings(ChannelSettings):
    """``channels.push`` (ntfy)."""

    enabled: bool = False
    ntfy_url: str | None = None  # e.g. https://ntfy.sh or https://ntfy.example.com/base
    token: SecretStr | None = None  # an ntfy access token (tk_...); unset for public topics
    token_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Messages a second to the server (one bucket for the channel, bursts of 10). Unset: ntfy.sh's
    # published visitor limit on ntfy.sh, none on a self-hosted server (it sets its own).
    rate_per_second: float | None = Field(default=None, gt=0)


Secret = Callable[[SecretStr | None, Path | None, str], str | None]


def header_value(text: str) -> str:
    """``text`` fit for an HTTP header ntfy reads: one line; ASCII as is, anything else as RFC
    2047 base64 encoded words (ntfy joins adjacent words back into one value)."""
    text = " ".join(text.split())
    if text.isascii() and "=?" not in text:
        return text
    words: list[str] = []
    chunk = ""
    for ch in text:
        if len((chunk + ch).encode()) > _WORD_BYTES:
            words.append(chunk)
            chunk = ""
        chunk += ch
    words.append(chunk)
    return " ".join(f"=?UTF-8?B?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def ack_action(url: str, form: str | None) -> str:
    """The Acknowledge button, in ntfy's simple action format: one tap POSTs the link's form
    (an ``http`` action, made by the phone only when tapped); without a form, a ``view``
    action opens the link's page."""
    # Quoted: a public_url may hold "," or ";", which end a value in ntfy's format (a URL
    # holds no raw '"'); the form is url-safe base64 after "csrf=".
    if form is None:
        return f'view, Acknowledge, "{url}", clear=true'
    return (f'http, Acknowledge, "{url}", method=POST, '
            f"headers.Content-Type=application/x-www-form-urlencoded, body={form}, clear=true")


def headers_for(message: Message, token: str | None) -> dict[str, str]:
    """The publish headers of ``message`` (no sequence id)."""
    resolved = message.status == "resolved"
    priority = PRIORITY.get(message.severity, 3)
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Priority": str(min(priority, 3) if resolved else priority),
        "Tags": RESOLVED_TAG if resolved else TAG.get(message.severity, "bell"),
    }
    if message.subject:
        subject = message.subject
        if len(subject) > MAX_TITLE_CHARS:
            subject = subject[:MAX_TITLE_CHARS - 1] + "\N{HORIZONTAL ELLIPSIS}"
        headers["Title"] = header_value(subject)
    if message.link:
        headers["Click"] = header_value(message.link)
    if message.ack_url:
        headers["Actions"] = header_value(ack_action(message.ack_url, message.ack_form))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _ref_sequence(message: Message, topic: str) -> str | None:
    """The sequence id of the message this one replaces on the same topic, if any."""
    ref = message.replaces
    if not ref or ref.get("topic") != topic:
        return None
    seq = ref.get("sequence_id") or ref.get("id")
    return seq if isinstance(seq, str) and TOPIC.fullmatch(seq) else None


class PushChannel:
    name = "push"
    local = False
    limits = Limits(max_subject_chars=MAX_TITLE_CHARS, can_edit=True, can_delete=True,
                    overflow="truncate")

    def __init__(self, ntfy_url: str, token: str | None, timeout_seconds: float,
                 session: Callable[[], aiohttp.ClientSession],
                 rate_per_second: float | None = None) -> None:
        self._base = ntfy_url.rstrip("/")
        self._host = (URL(ntfy_url).host or "").lower()
        self._rates: tuple[Rate, ...] = (
            (Rate(f"push:{self._host}", rate_per_second, SET_RATE_BURST),)
            if rate_per_second is not None
            else (PUBLIC_RATE,) if self._host == PUBLIC_HOST else ())
        self._token = token
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._redact = http.Redactor([token])

    @classmethod
    def from_settings(cls, cfg: PushSettings, secret: Secret,
                      session: Callable[[], aiohttp.ClientSession]) -> PushChannel:
        """Built from ``channels.push``; raises ChannelConfigError naming the setting."""
        if not cfg.ntfy_url:
            raise ChannelConfigError("enabled without ntfy_url: set channels.push.ntfy_url "
                                     "(e.g. https://ntfy.sh)")
        try:
            url = URL(cfg.ntfy_url)
        except ValueError:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host \
                or url.query_string or url.fragment:
            raise ChannelConfigError("channels.push.ntfy_url must be an http(s) base URL "
                                     "without query or fragment")
        token = secret(cfg.token, cfg.token_file, "channels.push.token")
        return cls(cfg.ntfy_url, token, cfg.timeout_seconds, session, cfg.rate_per_second)

    def validate_address(self, to: str) -> str:
        """An ntfy topic: 1-64 letters, digits, '-' or '_'."""
        if to.startswith(FCM_PREFIX):  # with FCM enabled, push_router.py takes these
            raise AddressError("'fcm:' push addresses need FCM: set channels.fcm.enabled "
                               "and channels.fcm.service_account_file.")
        require_text_address(to, max_chars=64)
        if not TOPIC.fullmatch(to):
            raise AddressError("For the push channel 'to' must be an ntfy topic: 1-64 "
                               "letters, digits, '-' or '_'.")
        return to

    def destination_key(self, to: str) -> str:
        return f"push:{to}"

    def rates(self, to: str) -> Sequence[Rate]:
        """``rate_per_second`` when set, else ntfy.sh's visitor limit on ntfy.sh and none for
        a self-hosted server (see PUBLIC_RATE)."""
        return self._rates

    async def send(self, message: Message) -> DeliveryResult:
        topic = message.to
        if not TOPIC.fullmatch(topic):  # queued before the check existed
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         "not an ntfy topic", scope=ErrorScope.RECIPIENT)
        sequence = _ref_sequence(message, topic)
        if message.retract and message.status == "resolved" and sequence is not None:
            deleted = await self._delete(topic, sequence)
            if deleted is not None:
                return deleted
            # An ntfy older than 2.16 cannot delete: say it is resolved instead.
        if message.update != "edit":
            sequence = None  # ntfy has no threads: "thread" and "new" both post anew
        text = message.text if message.text.strip() else "(no text)"
        parts = budget.fit(text, MAX_BODY_BYTES, message.overflow or self.limits.overflow,
                           link=message.link, measure=budget.utf8_bytes)
        headers = headers_for(message, self._token)
        first, status = await self._publish(topic, parts[0], headers, sequence)
        for part in parts[1:]:
            await self._publish(topic, part, headers, None)
        ref: dict[str, Any] = {
            "topic": topic, "id": first.get("id"),
            # The notification's identity on the devices: the first message's id, kept
            # across every update of it.
            "sequence_id": sequence or first.get("id"),
            "parts": len(parts),
        }
        if sequence is not None:
            # ntfy >= 2.16 answers an update with its sequence_id; an older server made a new
            # notification of it.
            ref["edited"] = first.get("sequence_id") == sequence
        return DeliveryResult(provider_ref=ref, http_status=status)

    async def _publish(self, topic: str, text: str, headers: dict[str, str],
                       sequence: str | None) -> tuple[dict[str, Any], int]:
        if sequence is not None:
            headers = {**headers, "X-Sequence-ID": sequence}
        reply = await self._call("POST", f"{self._base}/{topic}", text.encode(), headers)
        body = reply.json()
        return (body if isinstance(body, dict) else {}), reply.status

    async def _delete(self, topic: str, sequence: str) -> DeliveryResult | None:
        """Delete the notification; None when the server cannot (404: older than 2.16)."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            reply = await self._call("DELETE", f"{self._base}/{topic}/{sequence}", None, headers)
        except PermanentDeliveryError as exc:
            if exc.http_status in (404, 405):
                return None
            raise
        return DeliveryResult(provider_ref={"topic": topic, "sequence_id": sequence,
                                            "deleted": True},
                              http_status=reply.status)

    async def _call(self, method: str, url: str, data: bytes | None,
                    headers: dict[str, str]) -> http.HttpReply:
        try:
            return await http.call(self._session(), method, url, data=data, headers=headers,
                                   timeout=self._timeout, redact=self._redact,
                                   auth_scope=ErrorScope.CHANNEL)
        except PermanentDeliveryError as exc:
            if exc.http_status == 403:  # the token may not write this topic: others still work
                raise PermanentDeliveryError(exc.reason, exc.details, http_status=403,
                                             scope=ErrorScope.RECIPIENT) from exc
            raise

    async def close(self) -> None:
        return None
