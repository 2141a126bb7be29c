"""The console channel: one structured log line per notification (the embedded catch-all)."""

from __future__ import annotations

from typing import Any

from agent.channels.base import (
    ChannelSettings,
    DeliveryResult,
    Limits,
    Message,
    require_text_address,
)


class ConsoleSettings(ChannelSettings):
    """``channels.console``: nothing but on/off."""


class ConsoleChannel:
    name = "console"
    local = False
    limits = Limits()

    def __init__(self, logger: Any) -> None:
        self._log = logger

    def validate_address(self, to: str) -> str:
        """Any label works: it only names who the log line is for."""
        return require_text_address(to)

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
