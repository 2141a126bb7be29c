"""Mobile push through Firebase Cloud Messaging (HTTP v1), behind the ``push`` channel for
addresses ``fcm:<device registration token>`` (channels/push_router.py).

``POST {api_url}/v1/projects/{project_id}/messages:send`` with ``Authorization: Bearer`` an
access token minted from the service-account key (channels/fcm_auth.py) and the body
``{"message": {"token", "notification": {"title", "body"}, "android": {"priority",
"notification": {"tag"}}, "apns": {"headers": {"apns-priority", "apns-collapse-id"}}, "data"}}``
(FCM reference, ``projects.messages``). The answer's ``name`` (``projects/x/messages/id``) is
the provider ref.

FCM cannot edit or delete a notification once sent, but a notification with the same Android
``tag`` / APNs ``apns-collapse-id`` replaces the earlier one on the device: a group's later
message (``update: edit``) reuses its earlier message's tag, so the phone shows one
notification per alert group, updated; ``thread``, ``new`` and repeats get a tag of their own.
``retract: true`` cannot delete: the resolved message replaces the firing one instead.

The payload stays under FCM's 4,096 bytes (ErrorCode ``INVALID_ARGUMENT``, "message too big"):
the body is truncated with a marker and the link, never split (parts would replace each other).

Errors (FCM v1 error body ``error.status`` and ``details[].errorCode``, ErrorCode reference):
``UNREGISTERED`` (404) and ``SENDER_ID_MISMATCH`` (403) fail that recipient (the token is dead or
belongs to another project); ``INVALID_ARGUMENT`` (400) fails the message; ``QUOTA_EXCEEDED``
(429) defers by ``Retry-After``; ``UNAVAILABLE`` (503) and ``INTERNAL`` (500) are retried;
``THIRD_PARTY_AUTH_ERROR`` (401: the APNs or web push credentials in the Firebase project) and a
401 for the access token after minting a new one pause the channel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pydantic import Field

from agent import addresses
from agent.channels import budget, fcm_auth, http
from agent.channels.base import (
    BaseUrl,
    ChannelConfigError,
    ChannelSettings,
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    Rate,
    RetryableDeliveryError,
    parse_retry_after,
)
from agent.domain import FailureReason

MAX_PAYLOAD_BYTES = 4096  # FCM: "4096 bytes for most messages" (keys and values)
MAX_TITLE_CHARS = 256
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_RECIPIENT_GONE = {"UNREGISTERED", "SENDER_ID_MISMATCH"}


class FcmSettings(ChannelSettings):
    """``channels.fcm``: enabling it enables the ``push`` channel for ``fcm:`` addresses."""

    enabled: bool = False
    # The service-account JSON key of the Firebase project (mode 0600): project_id,
    # client_email, private_key, token_uri.
    service_account_file: Path | None = None
    api_url: BaseUrl = "https://fcm.googleapis.com"
    # Where to mint access tokens; unset: the key file's token_uri.
    token_url: BaseUrl | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


def _json_bytes(text: str) -> int:
    """Bytes ``text`` takes inside the JSON payload (escapes included)."""
    return len(orjson.dumps(text)) - 2


def _tag(message: Message) -> str | None:
    """The notification's replacement key on the device: an edit takes its earlier message's,
    a group's first message its thread's, anything else its own; None without a group."""
    if message.thread_key is None:
        return None
    if message.update == "edit":
        earlier = (message.replaces or {}).get("tag")
        if isinstance(earlier, str) and earlier:
            return earlier
        seed = "thread:" + message.thread_key
    else:
        seed = "notification:" + message.notification_id
    # apns-collapse-id is at most 64 bytes; a group key can be longer.
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def _urgent(message: Message) -> bool:
    # A recovery does not ring like the incident did.
    return message.status == "firing" and (message.severity == "critical"
                                           or message.priority == "high")


def build_message(message: Message, device: str, tag: str | None) -> dict[str, Any]:
    """The ``message`` object of a send request, its body fit to the payload limit."""
    title = message.subject or ""
    if len(title) > MAX_TITLE_CHARS:
        title = title[:MAX_TITLE_CHARS - 1] + "\N{HORIZONTAL ELLIPSIS}"
    urgent = _urgent(message)
    data = {"notification_id": message.notification_id, "status": message.status,
            "severity": message.severity}
    if message.link:
        data["link"] = message.link
    android: dict[str, Any] = {"priority": "high" if urgent else "normal"}
    apns_headers = {"apns-priority": "10" if urgent else "5"}
    if tag is not None:
        android["notification"] = {"tag": tag}
        apns_headers["apns-collapse-id"] = tag
    notification = {"title": title, "body": ""} if title else {"body": ""}
    body: dict[str, Any] = {"notification": notification, "android": android,
                            "apns": {"headers": apns_headers}, "data": data}
    room = MAX_PAYLOAD_BYTES - len(orjson.dumps(body))
    text = message.text if message.text.strip() else "(no text)"
    [notification["body"]] = budget.fit(text, max(room, 0), "truncate", link=message.link,
                                        measure=_json_bytes)
    return {"token": device, **body}


def _fcm_error(body: Any) -> tuple[str, str]:
    """(error code, message) of an FCM v1 error body: the FcmError detail's errorCode, else the
    status; ("", "") when the body is not one."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code = error.get("status") if isinstance(error.get("status"), str) else ""
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE \
                and isinstance(detail.get("errorCode"), str):
            code = detail["errorCode"]
            break
    text = error.get("message")
    return str(code)[:64], (text[:200] if isinstance(text, str) else "")


class TokenRefused(PermanentDeliveryError):
    """FCM refused the access token (401 without a third-party cause): mint anew, once."""


def _classify(reply: http.HttpReply) -> None:
    """Map FCM's error body to the failure class; leave what it does not name to the table."""
    if 200 <= reply.status < 300:
        return
    code, text = _fcm_error(reply.json())
    if not code:
        if reply.status == 401:
            raise TokenRefused(FailureReason.PROVIDER_REJECTED, "HTTP 401", http_status=401,
                               scope=ErrorScope.CHANNEL)
        return
    details = f"HTTP {reply.status} {code}: {text}" if text else f"HTTP {reply.status} {code}"
    status = reply.status
    if code in _RECIPIENT_GONE:
        raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT, details,
                                     http_status=status, scope=ErrorScope.RECIPIENT)
    if code in ("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED") or status == 429:
        raise RetryableDeliveryError(FailureReason.RATE_LIMITED, details,
                                     parse_retry_after(reply.headers.get("Retry-After")),
                                     http_status=status)
    if code in ("UNAVAILABLE", "INTERNAL") or status >= 500:
        raise RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE, details,
                                     parse_retry_after(reply.headers.get("Retry-After")),
                                     http_status=status)
    if code == "THIRD_PARTY_AUTH_ERROR":
        raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details,
                                     http_status=status, scope=ErrorScope.CHANNEL)
    if status == 401:  # UNAUTHENTICATED: the access token
        raise TokenRefused(FailureReason.PROVIDER_REJECTED, details, http_status=status,
                           scope=ErrorScope.CHANNEL)
    if status == 403:  # PERMISSION_DENIED: the key may not send for this project
        raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details,
                                     http_status=status, scope=ErrorScope.CHANNEL)
    raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details, http_status=status)


class FcmSender:
    """Sends to ``fcm:`` addresses; the ``push`` channel (push_router.py) delegates to it."""

    limits = Limits(max_subject_chars=MAX_TITLE_CHARS, can_edit=True, can_delete=False,
                    overflow="truncate")

    def __init__(self, account: fcm_auth.ServiceAccount, api_url: str, token_url: str | None,
                 timeout_seconds: float, session: Callable[[], aiohttp.ClientSession], *,
                 logger: Any = None, wall: Callable[[], float] | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self._account = account
        self._url = f"{api_url.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        clocks: dict[str, Callable[[], float]] = {}
        if wall is not None:
            clocks["wall"] = wall
        if monotonic is not None:
            clocks["monotonic"] = monotonic
        self.tokens = fcm_auth.AccessTokens(account, token_url or account.token_uri, session,
                                            self._timeout, logger=logger, **clocks)

    @classmethod
    def from_settings(cls, cfg: FcmSettings, session: Callable[[], aiohttp.ClientSession],
                      logger: Any = None) -> FcmSender:
        """Built from ``channels.fcm``; raises ChannelConfigError naming the setting."""
        if cfg.service_account_file is None:
            raise ChannelConfigError("enabled without a service account key: set "
                                     "channels.fcm.service_account_file")
        account = fcm_auth.ServiceAccount.load(cfg.service_account_file)
        return cls(account, cfg.api_url, cfg.token_url, cfg.timeout_seconds, session,
                   logger=logger)

    def validate_address(self, to: str) -> str:
        """``fcm:<device token>`` (agent/addresses.py)."""
        return addresses.fcm_token(to)

    def destination_key(self, to: str) -> str:
        # One device; hashed: a token is up to 4 KB.
        return "push:fcm:" + hashlib.sha256(to.encode()).hexdigest()[:16]

    def rates(self, to: str) -> Sequence[Rate]:
        """None of the agent's own: FCM's project quota (600,000 a minute) is far above what an
        alert agent sends, and its 429 defers by Retry-After."""
        return ()

    async def send(self, message: Message) -> DeliveryResult:
        try:
            to = addresses.fcm_token(message.to)
        except ValueError:  # queued before the check existed
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         "not an FCM address", scope=ErrorScope.RECIPIENT
                                         ) from None
        tag = _tag(message)
        body = orjson.dumps({"message": build_message(message, to[len("fcm:"):], tag)})
        token = await self.tokens.get()
        try:
            reply = await self._post(body, token)
        except TokenRefused:
            self.tokens.invalidate(token)
            token = await self.tokens.get()
            try:
                reply = await self._post(body, token)
            except TokenRefused as exc:
                raise PermanentDeliveryError(
                    exc.reason, f"{exc.details} (a newly minted access token too)",
                    http_status=401, scope=ErrorScope.CHANNEL) from exc
        answer = reply.json()
        name = answer.get("name") if isinstance(answer, dict) else None
        ref: dict[str, Any] = {"name": name if isinstance(name, str) else None}
        if tag is not None:
            ref["tag"] = tag
        return DeliveryResult(provider_ref=ref, http_status=reply.status)

    async def _post(self, body: bytes, token: str) -> http.HttpReply:
        return await http.call(
            self._session(), "POST", self._url, data=body, timeout=self._timeout,
            redact=http.Redactor([token, self._account.pem]), body_hook=_classify,
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": "application/json; charset=UTF-8"},
            auth_scope=ErrorScope.CHANNEL)

    async def close(self) -> None:
        await self.tokens.close()
