"""The webhook channel: POST the notification as JSON to the address, signed with HMAC-SHA256.

Receivers verify ``X-Alert-Agent-Signature: sha256=<hex>`` = HMAC-SHA256(secret, raw body), in
constant time, and deduplicate on ``Idempotency-Key`` (the notification id, stable across retries).

Receivers are chosen by API callers, so where the channel may connect is the network policy of
channels/netpolicy.py, checked on the address connected to: the channel has its own HTTP session
whose resolver applies it (the shared session carries provider calls, to operator-chosen base
URLs the policy does not cover, and a keep-alive connection opened for one of them must never
carry a webhook).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from pydantic import Field, SecretStr, field_validator, model_validator
from yarl import URL

from agent.channels import http, netpolicy
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
    # The network policy (channels/netpolicy.py): loopback only when allowed; when
    # allowed_networks is set, only its networks; never denied_networks, link-local, cloud
    # metadata or the agent's own listen address.
    allow_loopback: bool = False
    allowed_networks: list[str] = []
    denied_networks: list[str] = []

    @field_validator("allowed_networks", "denied_networks", mode="before")
    @classmethod
    def _cidrs(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return netpolicy.parse_networks(value)  # the error's location names the setting
        return value

    @model_validator(mode="after")
    def _useful_allows(self) -> Self:
        for cidr in self.allowed_networks:
            problem = netpolicy.network_problem(cidr, self.allow_loopback)
            if problem is not None:
                raise ValueError(f"channels.webhook.allowed_networks: {problem}")
        return self

    def policy(self, listen: tuple[str, int] | None) -> netpolicy.NetworkPolicy:
        """The network policy these settings say, for an agent listening on ``listen``."""
        return netpolicy.NetworkPolicy.from_settings(
            self.allow_loopback, self.allowed_networks, self.denied_networks, listen)


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


def _session(resolver: AbstractResolver) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver),
                                 headers={"User-Agent": "alert-agent"})


class WebhookChannel:
    name = "webhook"
    local = False
    limits = Limits()

    def __init__(self, config: WebhookSettings, signing_secret: bytes, *,
                 listen: tuple[str, int] | None = None,
                 resolver: AbstractResolver | None = None,
                 logger: Callable[[str], Any] | None = None,
                 new_session: Callable[[AbstractResolver], aiohttp.ClientSession] | None = None,
                 ) -> None:
        """``listen``: the agent's API address (refused); ``resolver``: what names resolve
        through before the policy checks the answers (the system's by default);
        ``new_session``: makes the channel's own HTTP session on a given resolver."""
        self._secret = signing_secret
        self._policy = config.policy(listen)
        self._resolver = netpolicy.PolicyResolver(self._policy, resolver)
        self._session: aiohttp.ClientSession | None = None
        self._new_session = new_session or _session
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds,
                                              sock_connect=config.connect_timeout_seconds)
        self._slots = asyncio.Semaphore(config.max_connections)
        self._redact = http.Redactor([signing_secret])
        self._log = logger("channel.webhook") if logger is not None else None

    def validate_address(self, to: str) -> str:
        """An absolute http(s) URL with a host the network policy does not refuse as written
        (an IP literal in any form, ``localhost``); host names are checked at connect."""
        require_text_address(to, max_chars=2048)
        try:
            url = URL(to)
        except ValueError:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host \
                or not to.startswith(("http://", "https://")):
            raise AddressError("For the webhook channel 'to' must be an http(s) URL.")
        rule = self._host_refusal(url)
        if rule == "not_dotted_decimal":
            # 0177.0.0.1, 2130706433: read differently by different software, refused by
            # aiohttp itself: only the dotted-decimal form is taken.
            raise AddressError("For the webhook channel an IPv4 address in 'to' must be "
                               "written in dotted-decimal form.")
        if rule is not None:
            raise AddressError("'to' is refused by the webhook network policy "
                               "(channels.webhook).")
        return to

    def _host_refusal(self, url: URL) -> str | None:
        assert url.host is not None and url.port is not None
        return self._policy.host_refusal(url.host, url.port)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the loop that uses it, on first send
            self._session = self._new_session(self._resolver)
            # A proxy from the environment would be checked instead of the receiver.
            assert not self._session.trust_env
        return self._session

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
        self._check_literal(message)
        body = payload(message)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "Idempotency-Key": message.notification_id,
        }
        async with self._slots:
            # The receiver is chosen by API callers: its answers stay out of failure details
            # (readable through the API), and a 401 is about that receiver only.
            try:
                reply = await http.call(
                    self._client(), "POST", message.to, data=body, headers=headers,
                    timeout=self._timeout, redact=self._redact, body_in_details=False,
                    untrusted=True, auth_scope=ErrorScope.RECIPIENT,
                )
            except PermanentDeliveryError as exc:
                cause = exc.__cause__.os_error if isinstance(
                    exc.__cause__, aiohttp.ClientConnectorError) else None
                if isinstance(cause, netpolicy.DestinationRefused):
                    self._refused(message, cause.rule, "connect")
                raise
        # A webhook answer names no message: the status is all there is to keep.
        return DeliveryResult(provider_ref={"http_status": reply.status},
                              http_status=reply.status)

    def _check_literal(self, message: Message) -> None:
        """aiohttp connects to an IP literal without asking the resolver: check it here, on
        the host as aiohttp reads it. Also refuses a row queued before the policy changed."""
        try:
            url = URL(message.to)
        except ValueError:
            return  # http.call answers invalid_recipient
        if not url.host or url.port is None:
            return
        rule = self._host_refusal(url)
        if rule is not None:
            self._refused(message, rule, "literal")
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         netpolicy.REFUSED_DETAIL, scope=ErrorScope.RECIPIENT)

    def _refused(self, message: Message, rule: str, stage: str) -> None:
        # For the operator: which rule (never the address: `to` names it already).
        if self._log is not None:
            self._log.warning("webhook_destination_refused", rule=rule, stage=stage,
                              notification_id=message.notification_id)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()  # the connector, not the resolver: not its owner
        await self._resolver.close()
