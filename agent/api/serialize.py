"""Stored records -> the seed API's JSON objects."""

from __future__ import annotations

from typing import Any

from agent.domain import InboxItem, Notification, Status, Template, iso
from agent.store.deliveries import Attempt

__all__ = ["iso", "notification", "attempt", "template", "inbox_item"]


def notification(n: Notification) -> dict[str, Any]:
    acknowledged = n.acknowledged_at is not None
    return {
        "id": n.id,
        "object": "notification",
        "status": n.status,
        "channel": n.channel,
        "to": n.recipient,
        "message": n.message,
        "subject": n.subject,
        "severity": n.severity,
        "template_id": n.template_id,
        "metadata": n.metadata,
        "priority": n.priority,
        "acknowledged": acknowledged,
        "acknowledged_by": n.acknowledged_by,
        "acknowledged_at": iso(n.acknowledged_at),
        "idempotency_key": n.idempotency_key,
        # Local deliveries cost nothing; the field stays for seed compatibility.
        "credits_used": 0 if n.simulated else 1,
        "simulated": n.simulated,
        # How many times delivery started (claims). ``attempts``, the list of attempt records,
        # is added by the handlers that read them (by id, the list, a re-drive).
        "attempt_count": n.attempts,
        "batch_id": n.batch_id,
        # A send to a team or member: the parent counts its recipients, each child names its
        # parent and the member it reaches.
        "parent_id": n.parent_id,
        "member_id": n.member_id,
        "recipients": n.fanout or None,
        "schedule_at": iso(n.schedule_at),
        "created_at": iso(n.created_at),
        "sent_at": iso(n.sent_at),
        "delivered_at": iso(n.delivered_at),
        "read_at": iso(n.read_at),
        "failed_at": iso(n.failed_at),
        "cancelled_at": iso(n.cancelled_at),
        "failure_reason": n.failure_reason if n.status == Status.FAILED else None,
        "failure_details": n.failure_details if n.status == Status.FAILED else None,
        "failure_class": n.failure_class if n.status == Status.FAILED else None,
        "last_error": n.failure_reason if n.status == Status.QUEUED else None,
    }


def attempt(a: Attempt) -> dict[str, Any]:
    """One delivery attempt, as listed in a notification's ``attempts``."""
    return {
        "attempt": a.attempt,
        "channel": a.channel,
        "started_at": iso(a.started_at),
        "finished_at": iso(a.finished_at),
        "outcome": a.outcome,
        "failure_reason": a.failure_reason,
        "failure_class": a.failure_class,
        "failure_details": a.failure_details,
        "http_status": a.http_status,
        "retry_after": a.retry_after,
    }


def template(t: Template) -> dict[str, Any]:
    return {
        "id": t.id,
        "object": "template",
        "name": t.name,
        "channel": t.channel,
        "body": t.body,
        "variables": t.variables,
        "description": t.description,
        "metadata": t.metadata,
        "usage_count": t.usage_count,
        "last_used_at": iso(t.last_used_at),
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def inbox_item(i: InboxItem) -> dict[str, Any]:
    return {
        "object": "inbox_item",
        "notification_id": i.notification_id,
        "to": i.recipient,
        "title": i.title,
        "body": i.body,
        "severity": i.severity,
        "metadata": i.metadata,
        "created_at": iso(i.created_at),
        "read_at": iso(i.read_at),
    }
