"""The shared vocabulary: channels, severities, statuses, ids and time helpers."""

from __future__ import annotations

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


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Status(StrEnum):
    """Lifecycle (seed 000): queued -> sent -> delivered | failed; queued -> cancelled."""

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


def new_id(prefix: str) -> str:
    """A resource id with the seed API's prefix, e.g. ``ntf_3f9a...`` (80 random bits)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def now() -> float:
    """Wall-clock seconds since the epoch; the one clock the daemon stores."""
    return time.time()


def iso(ts: float | None) -> str | None:
    """Unix seconds -> ISO 8601 UTC with millisecond precision, ``None`` stays ``None``."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


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
