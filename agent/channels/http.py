"""One HTTP call for every HTTP channel: aiohttp exceptions, statuses and (through a hook) the
response body mapped to delivery errors, with URLs and secrets redacted from every detail.

The failure table, the same for every channel (tests/contract/test_channel_contract.py)::

    2xx                          delivered (unless the body hook says otherwise)
    429                          retryable, rate_limited, Retry-After honoured when given
    408, 425, 5xx                retryable, provider_unavailable
    401                          permanent, provider_rejected, scope ``auth_scope`` (a channel
                                 with one provider token pauses: every message would fail alike)
    other 4xx, 3xx               permanent, provider_rejected
    timeout                      retryable, timeout
    connection refused, reset    retryable, network_error
    malformed (truncated) body   retryable, network_error
    invalid URL                  permanent, invalid_recipient
    RefusedConnection            the DeliveryError it carries (a resolver's refusal)

Details never carry a URL (a Telegram bot token sits in the path) nor any secret the channel
names, in plain or percent-encoded form. For a receiver chosen by API callers (``untrusted``)
they say only ``HTTP <status>``, ``connection failed``, ``request timed out`` or ``invalid
URL``: no body, reason phrase, address, port or OS error, so that the API reading them back is
not a port scanner.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from agent.channels.base import (
    DeliveryError,
    ErrorScope,
    PermanentDeliveryError,
    RetryableDeliveryError,
    classify_status,
)
from agent.domain import FailureReason

# Enough for any provider's JSON answer; a larger body is cut, never buffered whole.
MAX_REPLY_BYTES = 65_536
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
REDACTED = "[redacted]"


class RefusedConnection(OSError):
    """Raised by a resolver (or other connect-time check) to refuse a destination: aiohttp
    wraps it in a ClientConnectorError and ``call`` raises the DeliveryError it carries."""

    def __init__(self, error: DeliveryError) -> None:
        super().__init__(error.details)
        self.error = error


class Redactor:
    """Removes URLs and the given secrets from text meant for details and logs."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str | bytes | None] = ()) -> None:
        found: set[str] = set()
        for s in secrets:
            if not s:
                continue
            text = s.decode(errors="replace") if isinstance(s, bytes) else s
            found.update({text, quote(text, safe=""), quote(text, safe="/:")})
        # Longest first: a secret that contains another is removed whole.
        self._secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _URL.sub("<url>", text)
        for s in self._secrets:
            text = text.replace(s, REDACTED)
        return text


@dataclass(frozen=True, slots=True)
class HttpReply:
    """What the far side answered (the body cut at MAX_REPLY_BYTES)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


# Sees every reply (2xx or not) before the status table: raises a DeliveryError to classify it
# (Slack's ``200 {"ok": false}``, Telegram's ``retry_after`` in the body) or returns to let the
# table decide.
BodyHook = Callable[[HttpReply], None]


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None and resp.content_length <= MAX_REPLY_BYTES:
        return await resp.read()  # the common case: one small answer, one read
    chunks: list[bytes] = []
    size = 0
    while size < MAX_REPLY_BYTES:
        chunk = await resp.content.read(MAX_REPLY_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    redact: Redactor,
    timeout: aiohttp.ClientTimeout,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    body_hook: BodyHook | None = None,
    auth_scope: ErrorScope = ErrorScope.MESSAGE,
    body_in_details: bool = True,
    untrusted: bool = False,
) -> HttpReply:
    """Make one request; the reply when it is a success, else raise the DeliveryError for it.

    ``body_in_details=False`` keeps the reply body out of failure details (a receiver chosen by
    API callers must not have its answers read back through the API); ``untrusted=True`` also
    keeps out the reason phrase and every connection error's text (see the module docstring).
    """
    try:
        # No redirects: a provider or webhook must not bounce us to another (internal) address.
        async with session.request(method, url, data=data, headers=headers, timeout=timeout,
                                   allow_redirects=False) as resp:
            reply = HttpReply(resp.status, resp.headers, await _read_bounded(resp))
            reason = resp.reason or ""
    except TimeoutError as exc:
        raise RetryableDeliveryError(FailureReason.TIMEOUT, "request timed out") from exc
    except asyncio.CancelledError:
        raise
    except aiohttp.InvalidURL as exc:
        raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT, "invalid URL") from exc
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, RefusedConnection):
            raise exc.os_error.error from exc
        if untrusted:
            raise RetryableDeliveryError(FailureReason.NETWORK_ERROR, "connection failed") from exc
        # Not str(exc): it names the host and port, which the caller's `to` already says.
        why = exc.os_error.strerror or type(exc.os_error).__name__
        raise RetryableDeliveryError(FailureReason.NETWORK_ERROR,
                                     redact(f"connection failed: {why}")[:300]) from exc
    except aiohttp.ClientError as exc:
        what = "connection failed" if untrusted else f"{type(exc).__name__}: {exc}"
        raise RetryableDeliveryError(FailureReason.NETWORK_ERROR, redact(what)[:300]) from exc
    if body_hook is not None:
        body_hook(reply)
    if 200 <= reply.status < 300:
        return reply
    if untrusted:
        excerpt = ""
    else:
        excerpt = reply.body[:200].decode(errors="replace") if body_in_details else reason
    classify_status(reply.status, reply.headers.get("Retry-After"), redact(excerpt), auth_scope)
    return reply
