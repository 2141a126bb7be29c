"""The channel interface: a rendered message and an address in, a result or a delivery error out.

Error hierarchy::

    DeliveryError                 carries a FailureReason, details safe to store and show, and
    │                             the far side's HTTP status when there was one
    ├── RetryableDeliveryError    try again later; ``retry_after`` when the far side named a delay
    └── PermanentDeliveryError    do not retry (bad address, rejected content, not configured)

Every failed attempt is recorded with its ``FailureClass``: the class of the error raised, or
``technical`` when the channel crashed with anything else.

A channel knows nothing of rules, storage or the API, and never retries by itself: retries live
in the dispatcher, the one stage that owns the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from agent.domain import FailureReason


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel delivers: the rendered text and where it goes."""

    notification_id: str
    channel: str
    to: str
    text: str
    subject: str | None
    severity: str
    priority: str
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    # Only channels that deliver into the agent itself (``local = True``) see simulated
    # messages; they keep them apart for test keys.
    simulated: bool = False


class FailureClass(StrEnum):
    """How a failed attempt failed: worth retrying, not worth it, or a crash of the channel."""

    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    TECHNICAL = "technical"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """A confirmed delivery.

    ``provider_ref`` is what the far side answered that names the message, kept (as JSON) so a
    later edit can find it: Slack ``channel`` + ``ts``, Telegram ``chat_id`` + ``message_id``,
    an email ``Message-ID``, a Twilio ``sid``. None when the channel has nothing to keep.
    """

    provider_ref: dict[str, Any] | None = None
    # The far side's HTTP status, for the attempt record (HTTP channels only).
    http_status: int | None = None


class DeliveryError(Exception):
    failure_class = FailureClass.PERMANENT

    def __init__(
        self, reason: FailureReason, details: str, *, http_status: int | None = None
    ) -> None:
        super().__init__(f"{reason.value}: {details}")
        self.reason = reason
        self.details = details
        self.http_status = http_status


class RetryableDeliveryError(DeliveryError):
    failure_class = FailureClass.RETRYABLE

    def __init__(
        self,
        reason: FailureReason,
        details: str,
        retry_after: float | None = None,
        *,
        http_status: int | None = None,
    ) -> None:
        super().__init__(reason, details, http_status=http_status)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    failure_class = FailureClass.PERMANENT


class ChannelSender(Protocol):
    """One delivery channel."""

    name: str
    # True for a channel that delivers into the agent itself (in-app): nothing leaves the host,
    # so simulated (sk_test_) messages go through it too, marked as such.
    local: bool

    async def send(self, message: Message) -> DeliveryResult: ...

    async def close(self) -> None: ...


class HasDestinations(Protocol):
    """Optional for a channel: ``destination_key(to)`` names the far end an address reaches
    (a webhook URL's host), so the dispatcher caps concurrent deliveries per destination. A
    channel without it is one destination (its name)."""

    def destination_key(self, to: str) -> str: ...


def parse_retry_after(value: str | None, max_seconds: float = 3600.0) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), capped; else None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            import time

            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), max_seconds)


def classify_status(status: int, retry_after: str | None, body_excerpt: str) -> None:
    """Raise the right DeliveryError for a non-2xx HTTP status; return for 2xx."""
    if 200 <= status < 300:
        return
    details = f"HTTP {status}: {body_excerpt[:200]}"
    if status == 429:
        raise RetryableDeliveryError(
            FailureReason.RATE_LIMITED, details, parse_retry_after(retry_after),
            http_status=status,
        )
    if status in (408, 425) or status >= 500:
        raise RetryableDeliveryError(
            FailureReason.PROVIDER_UNAVAILABLE, details, parse_retry_after(retry_after),
            http_status=status,
        )
    raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details, http_status=status)
