"""The in-app channel: the notification lands in the local inbox, read back through the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agent.channels.base import DeliveryResult, Message
from agent.domain import InboxItem, now

InboxWriter = Callable[[InboxItem], Awaitable[None]]


class InAppChannel:
    name = "in-app"
    local = True

    def __init__(self, write: InboxWriter) -> None:
        # The writer is injected: the channel does not know where the inbox is kept.
        self._write = write

    async def send(self, message: Message) -> DeliveryResult:
        await self._write(
            InboxItem(
                notification_id=message.notification_id,
                recipient=message.to,
                title=message.subject,
                body=message.text,
                severity=message.severity,
                metadata=message.metadata,
                created_at=now(),
                read_at=None,
                mode="test" if message.simulated else "live",
            )
        )
        # The inbox row is keyed by its notification and recipient.
        return DeliveryResult(
            provider_ref={"inbox_notification_id": message.notification_id, "to": message.to}
        )

    async def close(self) -> None:
        return None
