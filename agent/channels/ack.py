"""Which messages carry an Acknowledge button (Slack's Block Kit button, Telegram's inline
keyboard): the rule both chat channels share."""

from __future__ import annotations

from agent.channels.base import Message


def offers_ack(message: Message) -> bool:
    """A firing alert notification (its metadata lists the alert ids), not yet acknowledged
    (metadata ``acknowledged``, set on the edit that says so), and not simulated: a resolved
    message, a plain API send or a test-key message has nothing to acknowledge."""
    ids = message.metadata.get("alert_ids")
    return (message.status == "firing" and isinstance(ids, list) and bool(ids)
            and not message.metadata.get("acknowledged") and not message.simulated)
