"""The channel interface: a rendered message and an address in, a result or a delivery error out.

Error hierarchy::

    DeliveryError                 carries a FailureReason, details safe to store and show, the
    │                             far side's HTTP status when there was one, and a scope: what
    │                             the failure is about (this message, this recipient, or the
    │                             whole channel, e.g. a revoked token)
    ├── RetryableDeliveryError    try again later; ``retry_after`` when the far side named a delay
    └── PermanentDeliveryError    do not retry (bad address, rejected content, not configured)

Every failed attempt is recorded with its ``FailureClass``: the class of the error raised, or
``technical`` when the channel crashed with anything else. A ``channel``-scoped error pauses the
whole channel in the dispatcher (delivery/pause.py) instead of failing each row one by one.

A channel knows nothing of rules, storage or the API, and never retries by itself: retries live
in the dispatcher, the one stage that owns the outbox. Each channel declares its ``limits`` and
checks addresses with ``validate_address`` (at the API edge and for rule-file targets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict

from agent.addresses import AddressError
from agent.domain import FailureReason

MessageStatus = Literal["firing", "resolved"]
# How a later message of the same thread (alert group) relates to the earlier one it
# ``replaces``: edit it in place, reply in its thread, or post a new one.
UpdateMode = Literal["edit", "thread", "new"]
# What a channel does with a message over its size budget (channels/budget.py).
OverflowMode = Literal["split", "truncate"]


@dataclass(frozen=True, slots=True)
class AckLink:
    """A signed acknowledge link: ``url`` (GET shows a page) and the form body a POST to it
    acknowledges with."""

    url: str
    form: str


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel delivers: the rendered text, where it goes, and what it belongs to."""

    notification_id: str
    channel: str
    to: str
    text: str
    subject: str | None
    severity: str
    priority: str
    created_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    # The alert group this message speaks for (None for a plain API send): chat channels thread
    # or edit by it.
    thread_key: str | None = None
    status: MessageStatus = "firing"
    # The provider ref of an earlier message this one replaces (edit in place), as the channel
    # returned it in DeliveryResult.provider_ref; the dispatcher looks it up, None for a new one.
    replaces: dict[str, Any] | None = None
    attempt: int = 1  # 1 for the first try of this notification
    # The route's ``update:`` option: what to do with ``replaces`` (a channel that cannot edit
    # treats "edit" as "thread" where it can thread, else as "new").
    update: UpdateMode = "edit"
    # The route's ``retract: true``: a resolved message deletes ``replaces`` where the channel can.
    retract: bool = False
    # The route's ``overflow:`` option; None: the channel's own default (``Limits.overflow``).
    overflow: OverflowMode | None = None
    # Where the whole notification can be read on the agent (``public_url``): a truncated
    # message links to it.
    link: str | None = None
    # A signed link that acknowledges the alert as the member this message reaches (channels
    # without buttons show it); None when there is none. A GET shows a page, never changing
    # anything; a POST of ``ack_form`` (form-encoded) acknowledges.
    ack_url: str | None = None
    # The form body a one-tap POST to ``ack_url`` carries ("csrf=…"): for a channel whose
    # button makes the request itself, only when tapped (ntfy's ``http`` action).
    ack_form: str | None = None
    # A short code a text reply "ACK <code>" names this message's alert by (SMS, WhatsApp).
    ack_code: str | None = None
    # Only channels that deliver into the agent itself (``local = True``) see simulated
    # messages; they keep them apart for test keys.
    simulated: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    """What a channel can carry and do. ``None``: no limit of the channel's own."""

    max_text_chars: int | None = None
    max_subject_chars: int | None = None
    can_edit: bool = False
    can_delete: bool = False
    # Can place a later message in the earlier one's thread without editing it (email's
    # In-Reply-To): the dispatcher hands it ``replaces`` as it does to a channel that can edit.
    can_thread: bool = False
    # What happens to a message over budget unless the route says: chat channels split into
    # numbered parts, the others truncate with a visible marker.
    overflow: OverflowMode = "truncate"


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket a delivery must take a token from: ``key`` names it (the channel, or a
    destination such as one Slack channel or one Telegram chat), refilled at ``per_second`` up
    to ``burst`` tokens. The dispatcher keeps the buckets; waiting for a token defers the row
    without spending an attempt."""

    key: str
    per_second: float
    burst: float = 1.0


class HasRates(Protocol):
    """Optional for a channel: the buckets a message to ``to`` must pass (the provider's
    published limits, from the channel's settings), the destination's own bucket last: a
    provider's ``429`` with ``Retry-After`` holds that one."""

    def rates(self, to: str) -> Sequence[Rate]: ...


class FailureClass(StrEnum):
    """How a failed attempt failed: worth retrying, not worth it, or a crash of the channel."""

    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    TECHNICAL = "technical"


class ErrorScope(StrEnum):
    """What a delivery error is about, so the dispatcher knows how far it reaches."""

    MESSAGE = "message"  # this message only (too long, a 5xx for this request)
    RECIPIENT = "recipient"  # this address (unknown chat, bot blocked): others still work
    CHANNEL = "channel"  # every message of the channel (bad or revoked token): pause it


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
    # The provider will report the outcome later under this id (a Twilio message ``sid``):
    # the notification is then ``sent``, not ``delivered``, until a receipt says which.
    receipt_id: str | None = None
    # Seconds after sending at which to look the message up if no receipt came (None: never).
    receipt_check_after: float | None = None


class DeliveryError(Exception):
    failure_class = FailureClass.PERMANENT

    def __init__(
        self,
        reason: FailureReason,
        details: str,
        *,
        http_status: int | None = None,
        scope: ErrorScope = ErrorScope.MESSAGE,
    ) -> None:
        super().__init__(f"{reason.value}: {details}")
        self.reason = reason
        self.details = details
        self.http_status = http_status
        self.scope = scope


class RetryableDeliveryError(DeliveryError):
    failure_class = FailureClass.RETRYABLE

    def __init__(
        self,
        reason: FailureReason,
        details: str,
        retry_after: float | None = None,
        *,
        http_status: int | None = None,
        scope: ErrorScope = ErrorScope.MESSAGE,
    ) -> None:
        super().__init__(reason, details, http_status=http_status, scope=scope)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    failure_class = FailureClass.PERMANENT


class ChannelConfigError(Exception):
    """A channel cannot be built from its settings; the message names the setting, never a
    secret's value."""


def _base_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


# A provider's base URL setting (``api_url``): http(s), kept without its trailing slash.
BaseUrl = Annotated[str, AfterValidator(_base_url)]


class ChannelSettings(BaseModel):
    """The settings of one channel (``channels.<name>``): each channel module has a subclass
    beside it, listed with the channel in the registry."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class ChannelSender(Protocol):
    """One delivery channel."""

    name: str
    # True for a channel that delivers into the agent itself (in-app): nothing leaves the host,
    # so simulated (sk_test_) messages go through it too, marked as such.
    local: bool
    limits: Limits

    def validate_address(self, to: str) -> str:
        """``to`` in its canonical form; raises AddressError when it cannot be an address."""
        ...

    async def send(self, message: Message) -> DeliveryResult: ...

    async def close(self) -> None: ...


def require_text_address(to: str, max_chars: int = 1024) -> str:
    """The check every channel shares: a non-blank address of bounded length, no control chars."""
    if not to.strip():
        raise AddressError("'to' must not be blank.")
    if len(to) > max_chars:
        raise AddressError(f"'to' is longer than {max_chars} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in to):
        raise AddressError("'to' must not contain control characters.")
    return to


class HasPauseKeys(Protocol):
    """Optional for a channel with several providers (push: ntfy and FCM): ``pause_key(to)``
    names the provider an address goes through, so credentials refused by one pause that one
    only. ``pause_keys`` lists them all (for the metrics). Without it the channel is one."""

    pause_keys: tuple[str, ...]

    def pause_key(self, to: str) -> str: ...


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


def classify_status(status: int, retry_after: str | None, body_excerpt: str,
                    auth_scope: ErrorScope = ErrorScope.MESSAGE) -> None:
    """Raise the right DeliveryError for a non-2xx HTTP status; return for 2xx.

    A 401 (credentials refused) gets ``auth_scope``: ``channel`` for a channel with one provider
    token (every message would fail alike until the operator fixes it), the default for a
    channel whose addresses each carry their own (webhook URLs).
    """
    if 200 <= status < 300:
        return
    details = f"HTTP {status}: {body_excerpt[:200]}" if body_excerpt else f"HTTP {status}"
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
    scope = auth_scope if status == 401 else ErrorScope.MESSAGE
    raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details, http_status=status,
                                 scope=scope)


__all__ = ["AddressError"]  # re-exported: channels import it from here
