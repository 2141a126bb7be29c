"""The webhook channel: POST the notification as JSON to the address, signed with HMAC-SHA256.

Receivers verify ``X-Alert-Agent-Signature: sha256=<hex>`` = HMAC-SHA256(secret, raw body), in
constant time, and deduplicate on ``Idempotency-Key`` (the notification id, stable across retries).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
from pydantic import Field, SecretStr
from yarl import URL

from agent.channels import http
from agent.channels.base import (
    AddressError,
    ChannelSettings,
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    require_text_address,
)
from agent.domain import FailureReason, iso

SIGNATURE_HEADER = "X-Alert-Agent-Signature"


class WebhookSettings(ChannelSettings):
    """``channels.webhook``."""

    timeout_seconds: float = Field(default=10.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    signing_secret: SecretStr | None = None
    signing_secret_file: Path | None = None
    # Webhook requests in flight at once, over every receiver.
    max_connections: int = Field(default=100, ge=1)


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def payload(message: Message) -> bytes:
    return orjson.dumps(
        {
            "id": message.notification_id,
            "object": "notification",
            "channel": message.channel,
            "to": message.to,
            "message": message.text,
            "subject": message.subject,
            "severity": message.severity,
            "priority": message.priority,
            "metadata": message.metadata,
            "created_at": iso(message.created_at),
        }
    )


class WebhookChannel:
    name = "webhook"
    local = False
    limits = Limits()

    def __init__(self, config: WebhookSettings, signing_secret: bytes,
                 session: Callable[[], aiohttp.ClientSession]) -> None:
        self._secret = signing_secret
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds,
                                              sock_connect=config.connect_timeout_seconds)
        self._slots = asyncio.Semaphore(config.max_connections)
        self._redact = http.Redactor([signing_secret])

    def validate_address(self, to: str) -> str:
        """An absolute http(s) URL with a host."""
        require_text_address(to, max_chars=2048)
        try:
            url = URL(to)
        except ValueError:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host \
                or not to.startswith(("http://", "https://")):
            raise AddressError("For the webhook channel 'to' must be an http(s) URL.")
        return to

    def destination_key(self, to: str) -> str:
        """The host (and port) of the URL: one slow receiver must not hold every slot."""
        try:
            return "webhook:" + (urlsplit(to).netloc.rpartition("@")[2].lower() or to)
        except ValueError:
            return "webhook:" + to

    async def send(self, message: Message) -> DeliveryResult:
        # The full check ran at the API edge; this catches a row queued before it existed
        # (the request itself refuses any other malformed URL: invalid_recipient).
        if not message.to.startswith(("http://", "https://")):
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         "webhook address must be an http(s) URL",
                                         scope=ErrorScope.RECIPIENT)
        body = payload(message)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "Idempotency-Key": message.notification_id,
        }
        async with self._slots:
            # The receiver is chosen by API callers: its answers stay out of failure details
            # (readable through the API), and a 401 is about that receiver only.
            reply = await http.call(
                self._session(), "POST", message.to, data=body, headers=headers,
                timeout=self._timeout, redact=self._redact, body_in_details=False,
                auth_scope=ErrorScope.RECIPIENT,
            )
        # A webhook answer names no message: the status is all there is to keep.
        return DeliveryResult(provider_ref={"http_status": reply.status},
                              http_status=reply.status)

    async def close(self) -> None:
        return None
