"""The webhook channel: POST the notification as JSON to the address, signed with HMAC-SHA256.

Receivers verify ``X-Alert-Agent-Signature: sha256=<hex>`` = HMAC-SHA256(secret, raw body), in
constant time, and deduplicate on ``Idempotency-Key`` (the notification id, stable across retries).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import orjson

from agent.channels.base import (
    DeliveryResult,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
    classify_status,
)
from agent.domain import FailureReason, iso

SIGNATURE_HEADER = "X-Alert-Agent-Signature"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    signing_secret: bytes
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    max_connections: int = 100
    user_agent: str = "alert-agent"


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

    def __init__(self, config: WebhookConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._config.max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=self._config.timeout_seconds,
                    sock_connect=self._config.connect_timeout_seconds,
                ),
                headers={"User-Agent": self._config.user_agent},
            )
        return self._session

    def destination_key(self, to: str) -> str:
        """The host (and port) of the URL: one slow receiver must not hold every slot."""
        try:
            return "webhook:" + (urlsplit(to).netloc.rpartition("@")[2].lower() or to)
        except ValueError:
            return "webhook:" + to

    async def send(self, message: Message) -> DeliveryResult:
        if not message.to.startswith(("http://", "https://")):
            raise PermanentDeliveryError(
                FailureReason.INVALID_RECIPIENT, "webhook address must be an http(s) URL"
            )
        body = payload(message)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._config.signing_secret, body),
            "Idempotency-Key": message.notification_id,
        }
        try:
            # No redirects: a webhook must not be bounced to another (internal) address. The
            # response body is not kept either: the address comes from API callers, and a
            # failure reason readable through the API must not leak an internal service's reply.
            async with self._client().post(message.to, data=body, headers=headers,
                                           allow_redirects=False) as resp:
                classify_status(resp.status, resp.headers.get("Retry-After"),
                                resp.reason or "")
                status = resp.status
        except TimeoutError as exc:
            raise RetryableDeliveryError(FailureReason.TIMEOUT, "webhook timed out") from exc
        except asyncio.CancelledError:
            raise
        except aiohttp.InvalidURL as exc:
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT, "invalid URL") from exc
        except aiohttp.ClientError as exc:
            raise RetryableDeliveryError(
                FailureReason.NETWORK_ERROR, f"{type(exc).__name__}: {exc}"[:300]
            ) from exc
        # A webhook answer names no message: the status is all there is to keep.
        return DeliveryResult(provider_ref={"http_status": status}, http_status=status)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
