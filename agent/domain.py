"""The shared vocabulary: channels, severities, statuses, ids and time helpers."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    """Every channel name the API accepts. Not every one is configured for delivery."""

    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    EMAIL = "email"
    PUSH = "push"
    SLACK = "slack"
    IN_APP = "in-app"
    SMS = "sms"
    TEAMS = "teams"
    WEBHOOK = "webhook"
    CONSOLE = "console"
    APPRISE = "apprise"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Status(StrEnum):
    """Seed 000's statuses. Here a row goes queued -> delivered | failed, and queued ->
    cancelled: the outcome is recorded in one write after the channel answered (``sent_at`` and
    ``delivered_at`` together). A channel whose provider reports the outcome later (sms and
    whatsapp through Twilio) leaves it queued -> sent (``sent_at`` only), and the provider's
    status callback moves it on to delivered | failed. ``acknowledged`` and ``read`` are not
    set yet (a WhatsApp read receipt sets ``read_at`` on a delivered row)."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    READ = "read"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FailureReason(StrEnum):
    """Why a delivery failed; a bounded set so it can label metrics."""

    CHANNEL_NOT_CONFIGURED = "channel_not_configured"
    TEMPLATE_RENDER_ERROR = "template_render_error"
    INVALID_RECIPIENT = "invalid_recipient"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    NETWORK_ERROR = "network_error"
    RETRIES_EXHAUSTED = "retries_exhausted"
    CHANNEL_PAUSED = "channel_paused"  # waiting, not failed: the channel's credentials refused
    THROTTLED = "throttled"  # waiting, not failed: the channel's own rate limit (Rate buckets)
    # Waiting, not failed: the alert group's earlier message (which this one edits) is not out yet.
    WAITING_FOR_EARLIER = "waiting_for_earlier"
    # The recipient is not an approved member of the directory (or no longer is).
    RECIPIENT_NOT_APPROVED = "recipient_not_approved"


class NotificationFailureClass(StrEnum):
    """Why a notification ended ``failed``, in GOV.UK Notify's classes (not the per-attempt
    ``FailureClass`` of channels.base): what an operator does about a dead letter."""

    PERMANENT = "permanent"  # the far side refused this message or recipient: fix, don't retry
    TEMPORARY = "temporary"  # retries exhausted or the retry deadline passed: re-drive later
    TECHNICAL = "technical"  # our side: a channel crash, a config or template error


def new_id(prefix: str) -> str:
    """A resource id with the seed API's prefix, e.g. ``ntf_3f9a...`` (80 random bits)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def ack_code(notification_id: str) -> str:
    """The code a text reply ``ACK <code>`` names a notification by: the first six hex digits
    of its id (the reply comes from the member's own number, checked; the code only picks
    among that member's open alerts)."""
    return notification_id.removeprefix("ntf_")[:6]


def now() -> float:
    """Wall-clock seconds since the epoch; the one clock the daemon stores."""
    return time.time()


_ISO_MIN = datetime.min.replace(tzinfo=UTC)
_ISO_MAX = datetime.max.replace(tzinfo=UTC)


def iso(ts: float | None) -> str | None:
    """Unix seconds -> ISO 8601 UTC with millisecond precision, ``None`` stays ``None``.

    Total, because it formats stored values for every list and render: a time beyond what
    ``datetime`` holds (years 1 to 9999) shows as that bound, NaN and infinities as ``None``.
    """
    if ts is None or not math.isfinite(ts):
        return None
    try:
        dt = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, ValueError, OSError):
        dt = _ISO_MAX if ts > 0 else _ISO_MIN
    # Not strftime: its %Y drops the leading zeros of years before 1000.
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z")


def parse_iso(value: str) -> float:
    """ISO 8601 -> unix seconds; a naive timestamp is taken as UTC. Raises ValueError."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(slots=True)
class NewNotification:
    """A validated send request, ready to be queued."""

    id: str
    channel: str
    recipient: str
    message: str | None
    subject: str | None
    template_id: str | None
    template_body: str | None
    severity: str
    priority: str
    metadata: dict[str, Any]
    idempotency_key: str | None
    request_hash: str | None
    simulated: bool
    api_key_id: str | None
    schedule_at: float | None
    due_at: float
    created_at: float
    batch_id: str | None = None
    # Built without validation because its key was seen: must replay, never be inserted.
    replay_only: bool = False
    # A send to a team or member (agent/directory.py) is a parent row that is never delivered
    # itself (``fanout``: how many children) and one child row per recipient (``parent_id``).
    parent_id: str | None = None
    member_id: str | None = None  # the directory member the recipient address belongs to
    fanout: int = 0
    # (failure_reason, details): stored failed at once (nobody it names is reachable).
    failure: tuple[str, str] | None = None


@dataclass(slots=True)
class Notification:
    """A notification as stored: its request, its lifecycle timestamps and its outcome."""

    id: str
    seq: int
    status: str
    channel: str
    recipient: str
    message: str | None
    subject: str | None
    template_id: str | None
    template_body: str | None
    severity: str
    priority: str
    metadata: dict[str, Any]
    idempotency_key: str | None
    simulated: bool
    attempts: int
    schedule_at: float | None
    due_at: float
    created_at: float
    sent_at: float | None = None
    delivered_at: float | None = None
    read_at: float | None = None
    failed_at: float | None = None
    cancelled_at: float | None = None
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    failure_reason: str | None = None
    failure_details: str | None = None
    batch_id: str | None = None
    deferrals: int = 0  # waits the far side asked for (not attempts), for spacing them out
    failure_class: str | None = None  # a NotificationFailureClass while ``failed``
    # A dead letter re-driven (POST .../retry) gets a new retry budget: its deadline counts from
    # ``redriven_at`` and its attempt budget from ``redrive_attempts`` (the attempts made before);
    # attempt numbers go on from ``attempts``.
    redriven_at: float | None = None
    redrive_attempts: int = 0
    parent_id: str | None = None
    member_id: str | None = None
    fanout: int = 0  # > 0: a parent row; its status sums up its children's

    @property
    def retry_from(self) -> float:
        """When the retry deadline (``delivery.retry_for``) started: creation or re-drive."""
        return self.created_at if self.redriven_at is None else self.redriven_at

    @property
    def budget_attempts(self) -> int:
        """Attempts that count against ``delivery.max_attempts``: those since the re-drive."""
        return self.attempts - self.redrive_attempts


@dataclass(slots=True)
class Template:
    id: str
    name: str
    channel: str
    body: str
    variables: list[str]
    description: str | None
    metadata: dict[str, Any]
    usage_count: int
    last_used_at: float | None
    created_at: float
    updated_at: float
    seq: int = 0


@dataclass(slots=True)
class InboxItem:
    notification_id: str
    recipient: str
    title: str | None
    body: str
    severity: str
    metadata: dict[str, Any]
    created_at: float
    read_at: float | None
    seq: int = 0
    mode: str = "live"  # "test": written by a simulated (sk_test_) notification


# The mode of the API key behind a stored row: "live" rows page people, "test" rows
# (sk_test_ keys) are simulated and visible to test keys only.
LIVE_MODE, TEST_MODE = "live", "test"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(slots=True)
class Alert:
    """One alert as a source reported it, normalized. Pure data: no ids, no storage state."""

    source: str  # "alertmanager" | "grafana" | "generic:<name>" | "api"
    fingerprint: str
    status: str  # AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float | None = None
    ends_at: float | None = None  # None: no end known (Alertmanager's zero time)
    generator_url: str | None = None
    # Source-specific fields kept for templates and the stored record (Grafana's silenceURL,
    # dashboardURL, panelURL, values, valueString; anything a newer sender adds).
    extra: dict[str, Any] | None = None
    # "test" for alerts posted with an sk_test_ key: stored apart, routed to simulated
    # notifications, invisible to live keys, never inhibiting live alerts.
    mode: str = "live"


@dataclass(slots=True)
class IngestBatch:
    """What one inbound payload carried: its alerts and the group-level fields around them."""

    source: str
    alerts: list[Alert]
    # receiver, groupKey, groupLabels, commonLabels, commonAnnotations, externalURL,
    # truncatedAlerts, status, ... and unknown top-level fields, kept verbatim.
    group: dict[str, Any]


def fingerprint_of(labels: dict[str, str]) -> str:
    """Prometheus' label-set fingerprint: FNV-1a 64 over sorted name/value pairs, 16 hex digits."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ 0xFF) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


class AlertType(StrEnum):
    """Seed 002's alert types."""

    DOWN = "down"
    UP = "up"
    SLOW = "slow"
    ERROR = "error"
    CUSTOM = "custom"


@dataclass(slots=True)
class GroupRef:
    """A group an incoming alert joins: which route, which labels, and that route's timing."""

    key: str
    route_id: str
    labels: dict[str, str]
    route: dict[str, Any]  # JSON snapshot of the route's delivery settings
    group_wait: float
    group_interval: float


@dataclass(slots=True)
class AlertIntake:
    """An alert with what routing decided for it, ready to be stored in one transaction."""

    alert: Alert
    severity: str
    type: str
    monitor_id: str | None
    message: str | None
    groups: list[GroupRef]


@dataclass(slots=True)
class StoredAlert:
    seq: int
    id: str
    source: str
    fingerprint: str
    status: str  # "active" | "resolved"
    type: str
    monitor_id: str | None
    alertname: str | None
    message: str | None
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    extra: dict[str, Any] | None
    generator_url: str | None
    starts_at: float | None
    ends_at: float | None
    created_at: float
    updated_at: float
    resolved_at: float | None
    last_received_at: float
    receive_count: int
    mode: str = "live"  # "live" | "test": the mode of the key that created it
    # The first acknowledgment: when, by whom (a member id or the caller's text), through what
    # ("api", "cli", "slack", "telegram", "link", "sms").
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    acknowledged_via: str | None = None


@dataclass(slots=True)
class GroupMember:
    """One alert's place in a group. ``alert`` is loaded only for the alerts a notification
    can show (a storm's group may hold 100,000): decisions need just seq, status and severity."""

    alert: StoredAlert | None
    status: str  # "firing" | "resolved", as last received
    notified: str | None  # what the last notification said about it; None: never notified
    seq: int = 0
    severity: str = "info"
    key: tuple[str, str] = ("", "")  # (source, fingerprint)
    acknowledged: bool = False  # someone acknowledged the alert: the group does not repeat it

    def __post_init__(self) -> None:
        if self.alert is not None:
            self.seq = self.alert.seq
            self.severity = self.alert.severity
            self.key = (self.alert.source, self.alert.fingerprint)


@dataclass(slots=True)
class GroupSnapshot:
    id: int
    key: str
    route_id: str
    route: dict[str, Any]
    labels: dict[str, str]
    version: int
    last_flush_at: float | None
    created_at: float
    members: list[GroupMember]
    inhibited: frozenset[int] = frozenset()  # seqs of firing members muted right now
    # Set when the store could not read this group back (a stored value this build cannot
    # decode): the grouper fails and backs off this group alone.
    error: Exception | None = None


@dataclass(slots=True)
class FlushResult:
    """What a group flush decided; applied in one transaction."""

    group_id: int
    version_seen: int
    notifications: list[NewNotification]
    alert_seqs: list[int]  # the alerts the notifications are about
    notified: dict[int, str]  # alert_seq -> status now notified
    remove: list[int]  # alert_seqs leaving the group (resolved and done)
    last_flush_at: float | None
    next_flush_at: float | None  # None: the group is empty and goes away
    retry_at: float  # when to look again if new alerts arrived meanwhile
    # A new incident of a route with an escalation policy: its steps, to store unless the group
    # already escalates (dicts of run, step, steps, until, due_at, targets, notification).
    escalation: list[dict[str, Any]] | None = None
