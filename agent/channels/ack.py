"""Which messages carry an Acknowledge button (Slack's Block Kit button, Telegram's inline
keyboard): the rule both chat channels share."""

from __future__ import annotations

from agent.channels.base import Message


def offers_ack(message: Message) -> bool:
    """A firing alert notification (its metadata lists the alert ids), not yet acknowledged
    (the edit that says who did carries ``acknowledged_by``), and not simulated: a resolved
    message, a plain API send or a test-key message has nothing to acknowledge."""
    ids = message.metadata.get("alert_ids")
    meta = message.metadata
    acked = "acknowledged_by" in meta or meta.get("acknowledged") or meta.get(
        "reason") == "acknowledged"
    return (message.status == "firing" and isinstance(ids, list) and bool(ids)
            and not acked and not message.simulated)
