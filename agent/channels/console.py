"""The console channel: one structured log line per notification (the embedded catch-all)."""

from __future__ import annotations

from typing import Any

from agent.channels.base import DeliveryResult, Message


class ConsoleChannel:
    name = "console"
    local = False

    def __init__(self, logger: Any) -> None:
        self._log = logger

    async def send(self, message: Message) -> DeliveryResult:
        self._log.info(
            "console_notification",
            notification_id=message.notification_id,
            to=message.to,
            severity=message.severity,
            priority=message.priority,
            subject=message.subject,
            text=message.text,
        )
        return DeliveryResult()

    async def close(self) -> None:
        return None
